"""Serving: replicas of a compiled model behind a load balancer with dynamic batching,
backpressure, deadlines, priorities, failover and metrics (`rt.serve.LoadBalancer`).

Over the network (imported on demand, they need extras): v2.py (the KServe v2 protocol),
server.py (`pyruntime serve`: uvicorn, extra `serve`), prom.py (Prometheus metrics),
ray.py (a Ray Serve deployment, extra `ray`)."""

from __future__ import annotations

from .balancer import LoadBalancer, default_layout
from .errors import Closed, DeadlineExceeded, Overloaded, ReplicaFailed, ServeError
from .policies import POLICIES, Policy

__all__ = ["LoadBalancer", "default_layout", "Closed", "DeadlineExceeded", "Overloaded",
           "ReplicaFailed", "ServeError", "POLICIES", "Policy"]
