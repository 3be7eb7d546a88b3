"""bench/run.py's plots: the ratio chart and the roofline are drawn from a run's rows and
meta (here a small synthetic run, so no benchmark is timed), and `--plot-json` redraws a
saved run next to its JSON."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                reason="needs matplotlib (the test extra)")

BENCH = Path(__file__).resolve().parents[1] / "bench"

ROWS = [
    {"case": "gemm 64x1024x1024", "baseline": "numpy BLAS", "flops": 2.0 * 64 * 1024 * 1024,
     "bytes": 4.0 * (64 * 1024 + 1024 * 1024 + 64 * 1024), "gflops": 150.0,
     "ratio": 0.9, "ratio_q1": 0.85, "ratio_q3": 0.95},
    {"case": "MLP b1", "baseline": "onnxruntime", "flops": 2.0 * 535_000,
     "bytes": float("nan"), "min_bytes": 2.2e6, "gflops": 8.0,
     "ratio": 1.2, "ratio_q1": 1.1, "ratio_q3": 1.3},
    {"case": "broken", "error": "output differs from the baseline's"},
]
META = {"cpu": "test CPU", "threads": 2, "peak_gflops": 400.0, "peak_isa": "avx512",
        "copy_gbps": 20.0, "read_gbps_by_kib": {"4096": 120.0, "64": 300.0}}


@pytest.fixture()
def bench_run(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    sys.modules.pop("run", None)
    import run
    yield run
    sys.modules.pop("run", None)


def is_png(p: Path) -> bool:
    return p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_plot_writes_ratio_and_roofline(bench_run, tmp_path):
    paths = bench_run.plot(ROWS, META, tmp_path / "bench_x")
    assert [p.name for p in paths] == ["bench_x_ratio.png", "bench_x_roofline.png"]
    assert all(is_png(p) for p in paths)


def test_plot_json_redraws_a_saved_run(bench_run, tmp_path, capsys):
    saved = tmp_path / "bench_y.json"
    saved.write_text(json.dumps({"meta": META, "rows": ROWS}, default=str))
    assert bench_run.main(["--plot-json", str(saved)]) == 0
    assert is_png(tmp_path / "bench_y_ratio.png") and is_png(tmp_path / "bench_y_roofline.png")
    assert "bench_y_roofline.png" in capsys.readouterr().out
