"""The native CPU backend: lower a Graph onto the C++ plan (`plan_builder`) and run it
through a `Session` (`session`). Kernels, dispatch and the executor live in cpp/."""

from __future__ import annotations

from .session import IOInfo, Session, compile_cpu

__all__ = ["Session", "IOInfo", "compile_cpu"]
