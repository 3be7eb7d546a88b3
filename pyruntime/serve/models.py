"""The models a server serves: model files found on disk (ONNX, `.pyrt`, or a folder of
them; name = file stem), each compiled into its replicas behind its own LoadBalancer,
with the v2 metadata the protocol reports. Shared by the HTTP server and the CLI."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import InputError, ModelFormatError
from .balancer import LoadBalancer, default_layout
from .v2 import ModelNotFound, TensorInfo, model_metadata, tensor_info

__all__ = ["MODEL_SUFFIXES", "find_models", "load_graph", "ServedModel", "ModelSet"]

MODEL_SUFFIXES = (".onnx", ".pyrt")


def find_models(paths: Sequence[str | os.PathLike]) -> dict[str, Path]:
    """name (file stem) -> path, for files and the model files directly inside folders.
    A missing path, a folder without models, a file of another kind or two models with
    one name -> ModelFormatError / InputError naming it."""
    found: dict[str, Path] = {}
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.suffix.lower() in MODEL_SUFFIXES
                           and f.is_file())
            if not files:
                raise ModelFormatError(f"{p}: expected a folder with .onnx or .pyrt files, "
                                       f"found none")
        elif p.is_file():
            if p.suffix.lower() not in MODEL_SUFFIXES:
                raise ModelFormatError(f"{p}: expected a .onnx or .pyrt model file, got "
                                       f"{p.suffix or 'no suffix'}")
            files = [p]
        else:
            raise ModelFormatError(f"{p}: no such file or folder")
        for f in files:
            if f.stem in found:
                raise InputError(f"two models named {f.stem!r}: {found[f.stem]} and {f}; "
                                 f"names are file stems and must be unique")
            found[f.stem] = f
    if not found:
        raise InputError("expected at least one model file or folder")
    return found


def load_graph(path: Path) -> Any:
    """The Graph of a model file (ONNX or .pyrt), by suffix."""
    if path.suffix.lower() == ".onnx":
        from ..onnx import load_onnx
        return load_onnx(str(path))
    from ..fileformat import load
    return load(str(path))


@dataclass
class ServedModel:
    """One model: its balancer and what the protocol says about it."""
    name: str
    balancer: LoadBalancer
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, name: str, graph: Any, device: str = "cpu", replicas: int | None = None,
              threads_per_replica: int | None = None, **balancer: Any) -> "ServedModel":
        """Compile `replicas` Sessions for `device` and put them behind a LoadBalancer
        (`balancer`: its keyword arguments, e.g. max_batch_size, max_delay_ms)."""
        from ..backends import compile as rt_compile
        if device == "cuda":
            # one CUDA Session per replica, each with its own stream and arena (replicas
            # overlap on the GPU); threads do not apply; one replica unless asked
            n, t = replicas or 1, None
            sessions = [rt_compile(graph, device="cuda") for _ in range(n)]
        else:
            n, t = default_layout(replicas, threads_per_replica)
            sessions = [rt_compile(graph, device=device, threads=t) for _ in range(n)]
        lb = LoadBalancer(sessions, **balancer)
        lb.threads_per_replica = t
        ins = [tensor_info(i) for i in sessions[0].inputs]
        outs = [tensor_info(o) for o in sessions[0].outputs]
        return cls(name, lb, ins, outs, model_metadata(name, ins, outs))


class ModelSet:
    """The served models by name; closing it closes every balancer."""

    def __init__(self, models: Sequence[ServedModel]) -> None:
        self.models = {m.name: m for m in models}
        self.closing = False

    def get(self, name: str) -> ServedModel:
        m = self.models.get(name)
        if m is None:
            raise ModelNotFound(f"unknown model {name!r}; expected one of "
                                f"{sorted(self.models)}")
        return m

    def close(self, drain: bool = True) -> None:
        """Close every balancer (drain: finish what is queued first)."""
        self.closing = True
        for m in self.models.values():
            m.balancer.close(drain=drain)
