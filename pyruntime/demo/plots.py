"""The demo's three PNGs (matplotlib on the Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PNGS = {"accuracy_bytes": "accuracy against bytes on disk",
        "latency": "latency per variant beside onnxruntime",
        "sparse_speedup": "sparse speed-up against sparsity"}


def _pyplot() -> Any:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def draw(rows: list[dict[str, Any]], sweep: list[dict[str, Any]], folder: Path
         ) -> list[Path]:
    """Write the three plots into `folder`; returns their paths (PNGS order)."""
    plt = _pyplot()
    paths = []

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        ax.scatter(r["bytes"] / 1024, 100 * r["accuracy"], s=30)
    ax.set_xscale("log")
    ax.margins(x=0.3, y=0.15)
    fig.tight_layout()                 # the layout first: labels are placed in pixels
    _label_points(fig, ax, [(r["bytes"] / 1024, 100 * r["accuracy"], r["variant"])
                            for r in rows])
    ax.set_xlabel("bytes on disk (KiB, log scale; .pyrt, or the .pyrtx artifact)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("digits: accuracy against size")
    ax.grid(True, which="both", alpha=0.3)
    paths.append(_save(fig, folder / "accuracy_bytes.png", plt))

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    names = [r["variant"] for r in rows]
    ys = range(len(rows))
    for ax, b in zip(axes, (1, 64)):
        ours = [r[f"b{b}_us"] for r in rows]
        ort = [r[f"b{b}_ort_us"] or 0.0 for r in rows]
        ax.barh([y - 0.2 for y in ys], ours, height=0.4, label="pyruntime")
        ax.barh([y + 0.2 for y in ys], ort, height=0.4, label="onnxruntime")
        ax.set_title(f"batch {b}")
        ax.set_xlabel("microseconds per call (median of blocks)")
        ax.grid(True, axis="x", alpha=0.3)
    axes[0].set_yticks(list(ys), names, fontsize=8)
    axes[0].invert_yaxis()
    axes[0].legend(fontsize=8)
    fig.suptitle("latency per variant (onnxruntime where the variant exports to ONNX)")
    paths.append(_save(fig, folder / "latency.png", plt))

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for b in sorted({s["batch"] for s in sweep}):
        pts = [s for s in sweep if s["batch"] == b]
        ax.plot([100 * s["sparsity"] for s in pts], [s["speedup"] for s in pts], "o-",
                label=f"batch {b}")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_xlabel("sparsity of conv2 and conv3 (%)")
    ax.set_ylabel("speed-up over the dense teacher (x)")
    ax.set_title("digits teacher: sparse kernel against dense")
    ax.grid(True, alpha=0.3)
    ax.legend()
    paths.append(_save(fig, folder / "sparse_speedup.png", plt))
    return paths


#: label positions tried in turn (points from the marker; horizontal alignment)
_OFFSETS = ((5, 4, "left"), (5, -11, "left"), (-5, 4, "right"), (-5, -11, "right"),
            (5, 14, "left"), (5, -21, "left"), (-5, 14, "right"), (-5, -21, "right"))


def _label_points(fig: Any, ax: Any, points: list[tuple[float, float, str]]) -> None:
    """Label each point at the first offset whose text overlaps no label placed before
    (variants of one model sit close together: same accuracy, similar sizes)."""
    renderer = fig.canvas.get_renderer()
    placed: list[Any] = []
    for x, y, text in points:
        for dx, dy, ha in _OFFSETS:
            t = ax.annotate(text, (x, y), fontsize=7, xytext=(dx, dy), ha=ha,
                            textcoords="offset points")
            box = t.get_window_extent(renderer)
            if not any(box.overlaps(b) for b in placed):
                break
            t.remove()
        else:
            t = ax.annotate(text, (x, y), fontsize=7, xytext=_OFFSETS[0][:2],
                            textcoords="offset points")
            box = t.get_window_extent(renderer)
        placed.append(box)


def _save(fig: Any, path: Path, plt: Any) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
