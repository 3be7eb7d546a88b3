"""Deprecated path (until 0.2): the conformance harness is pyruntime/onnx/conformance.py,
`python -m pyruntime.onnx.conformance`. Kept because earlier READMEs documented
`python -m pyruntime.onnx_backend --isolate`."""

from __future__ import annotations

import sys
import warnings

from .onnx.conformance import *  # noqa: F403
from .onnx.conformance import main

warnings.warn("pyruntime.onnx_backend is deprecated: use pyruntime.onnx.conformance",
              DeprecationWarning, stacklevel=2)

if __name__ == "__main__":
    sys.exit(main())
