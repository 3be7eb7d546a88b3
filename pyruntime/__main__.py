"""`python -m pyruntime ...`: the command line (pyruntime/cli/)."""

from __future__ import annotations

from .cli.main import main

raise SystemExit(main())
