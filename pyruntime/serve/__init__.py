"""Serving: replicas of a compiled model behind a load balancer with dynamic batching,
backpressure, deadlines, priorities, failover and metrics (`rt.serve.LoadBalancer`)."""

from __future__ import annotations

from .balancer import LoadBalancer, default_layout
from .errors import Closed, DeadlineExceeded, Overloaded, ReplicaFailed, ServeError
from .policies import POLICIES, Policy

__all__ = ["LoadBalancer", "default_layout", "Closed", "DeadlineExceeded", "Overloaded",
           "ReplicaFailed", "ServeError", "POLICIES", "Policy"]
