"""What the subcommands share: argparse value parsers that make a bad value a usage
error (exit 2) with the value named, and the model loader (ONNX or .pyrt by suffix)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

from ..errors import ModelFormatError

MODEL_SUFFIXES = (".onnx", ".pyrt")


def int_list(lo: int) -> Callable[[str], list[int]]:
    """"1,64" -> [1, 64], each >= lo."""
    def parse(s: str) -> list[int]:
        out = []
        for part in s.split(","):
            try:
                v = int(part)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"expected comma-separated integers >= {lo}, got {s!r} ({part!r} is not "
                    "an integer)") from None
            if v < lo:
                raise argparse.ArgumentTypeError(
                    f"expected comma-separated integers >= {lo}, got {v} in {s!r}")
            out.append(v)
        return out
    return parse


def int_at_least(lo: int) -> Callable[[str], int]:
    """An integer >= lo (a port, a thread count, a batch size)."""
    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {lo}, got {s!r}") \
                from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"expected an integer >= {lo}, got {v}")
        return v
    return parse


positive_int = int_at_least(1)


def number(lo: float, strict: bool) -> Callable[[str], float]:
    """A finite number > lo (strict) or >= lo (a delay, a size limit, a time budget)."""
    def parse(s: str) -> float:
        try:
            v = float(s)
        except ValueError:
            v = float("nan")
        if not (v > lo if strict else v >= lo) or v != v or v == float("inf"):
            raise argparse.ArgumentTypeError(
                f"expected a finite number {'>' if strict else '>='} {lo:g}, got {s!r}")
        return v
    return parse


def model_path(s: str) -> Path:
    """A model file argument: its suffix is checked here (usage), its content at load."""
    p = Path(s)
    if p.suffix.lower() not in MODEL_SUFFIXES:
        raise argparse.ArgumentTypeError(f"expected a .onnx or .pyrt model file, got {s!r}")
    return p


def load_model(path: Path) -> Any:
    """The Graph in `path`; a missing or unreadable file is a ModelFormatError naming it."""
    if not path.is_file():
        raise ModelFormatError(f"{path}: no such model file")
    from ..serve.models import load_graph
    try:
        return load_graph(path)
    except OSError as e:
        raise ModelFormatError(f"{path}: cannot read it: {e.strerror or e}") from None
