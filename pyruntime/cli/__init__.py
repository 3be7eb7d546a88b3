"""The `pyruntime` command line: cli/main.py parses and dispatches; each subcommand lives
in its own module (serve.py) with `add_parser(subparsers)` and `run(args) -> int`."""

from __future__ import annotations

from .main import main

__all__ = ["main"]
