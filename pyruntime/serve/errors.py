"""Typed serving errors. Each is an `rt.Error`, so callers can catch every failure the
runtime reports in one place, and a builtin type too, so generic code still works."""

from __future__ import annotations

from ..errors import Error


class ServeError(Error, RuntimeError):
    """Base of the errors a LoadBalancer gives a request instead of a result."""


class Overloaded(ServeError):
    """The bounded queue is full: `submit` refuses at once instead of queueing forever."""


class ReplicaFailed(ServeError):
    """Every try of this request failed in a replica (or no replica is in service).
    `__cause__` is the last replica exception."""


class Closed(ServeError):
    """The balancer is closed (or was closed without draining before this ran)."""


class DeadlineExceeded(Error, TimeoutError):
    """The request's timeout passed before its compute started; it was never computed."""


__all__ = ["ServeError", "Overloaded", "ReplicaFailed", "Closed", "DeadlineExceeded"]
