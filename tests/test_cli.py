"""The `pyruntime` command line: info, convert, export, bench (serve, compress and demo
have their own test files). Exit codes 0 / 1 (a file problem) / 2 (usage), one error line
on stderr naming the file or value, --help on every command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pyruntime as rt
from pyruntime.cli.main import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mlp_onnx(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("cli") / "mlp.onnx"
    rt.to_onnx(rt.zoo.mlp((12, 16, 5)), str(p))
    return p


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "expected an error line on stderr"
    return err[-1]


def test_every_command_has_help(capsys):
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert {"info", "convert", "export", "bench", "serve"} <= set(sub.choices)
    for name in sub.choices:
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0
        assert f"pyruntime {name}" in capsys.readouterr().out


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    kernels = rt.info()["kernels"]
    for entry, kernel in kernels.items():
        assert entry in out and kernel in out
    assert main(["info", "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["kernels"] == kernels


def test_convert_and_export_round_trip(tmp_path, mlp_onnx, capsys):
    out = tmp_path / "m.pyrt"
    assert main(["convert", str(mlp_onnx), "-o", str(out)]) == 0
    g = rt.load(str(out))
    x = np.random.default_rng(0).standard_normal((3, 12)).astype(np.float32)
    want = rt.compile(rt.load_onnx(str(mlp_onnx))).run(x)
    np.testing.assert_array_equal(rt.compile(g).run(x), want)
    assert "m.pyrt" in capsys.readouterr().out
    back = tmp_path / "back.onnx"
    assert main(["--quiet", "export", str(out), "--to", "onnx", "-o", str(back)]) == 0
    assert capsys.readouterr().out == ""  # --quiet
    np.testing.assert_allclose(rt.compile(rt.load_onnx(str(back))).run(x), want, rtol=1e-6)
    art = tmp_path / "m.pyrtx"
    assert main(["export", str(out), "--to", "xla", "-o", str(art), "--platforms", "cpu"]) == 0
    np.testing.assert_allclose(np.asarray(rt.xla.load(str(art)).run(x)), want,
                               rtol=1e-5, atol=1e-5)


def test_file_problems_exit_1_with_one_line(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "missing.onnx")]) == 1
    line = _err_line(capsys)
    assert line.startswith("pyruntime convert: error:") and "missing.onnx" in line
    bad = tmp_path / "bad.pyrt"
    bad.write_bytes(b"not a model at all")
    assert main(["export", str(bad), "--to", "onnx", "-o", str(tmp_path / "x.onnx")]) == 1
    line = _err_line(capsys)
    assert "ModelFormatError" in line and "Traceback" not in capsys.readouterr().err
    assert main(["--debug", "export", str(bad), "--to", "onnx", "-o",
                 str(tmp_path / "x.onnx")]) == 1
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize("argv,what", [
    (["nope"], "invalid choice"),
    (["bench", "m.onnx", "--batch", "1,abc"], "'abc' is not an integer"),
    (["bench", "m.onnx", "--batch", "0"], "integers >= 1"),
    (["bench", "m.onnx", "--threads", "-2"], "integer >= 1"),
    (["convert", "model.txt"], "expected a .onnx or .pyrt model file"),
    (["export", "m.pyrt", "--to", "tflite", "-o", "x"], "invalid choice"),
    (["info", "--bogus"], "unrecognized arguments"),
])
def test_usage_errors_exit_2(argv, what, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert what in capsys.readouterr().err


def test_bench_json_layout_and_plot(tmp_path, mlp_onnx, capsys):
    pyrt = tmp_path / "mlp.pyrt"
    assert main(["convert", str(mlp_onnx), "-o", str(pyrt), "--quiet"]) == 0
    js, png = tmp_path / "b.json", tmp_path / "b.png"
    argv = ["bench", str(mlp_onnx), str(pyrt), "--batch", "1,4", "--threads", "1",
            "--rounds", "2", "--calls", "3", "--json", str(js), "--quiet"]
    try:
        import matplotlib  # noqa: F401
        argv += ["--plot", str(png)]
    except ImportError:
        png = None
    assert main(argv) == 0
    d = json.loads(js.read_text())
    assert d["schema"] == "pyruntime-bench/1" and d["machine"]["threads"] == 1
    recs = d["records"]
    assert len(recs) == 2 * 2 * 2  # models x batches x engines
    for r in recs:
        assert r["engine"] in ("pyruntime", "onnxruntime") and r["calls"] == 6
        assert 0 < r["p50_ms"] <= r["p99_ms"]
        assert r["throughput_rows_s"] == pytest.approx(r["batch"] / (r["mean_ms"] / 1e3))
        if r["engine"] == "pyruntime":
            assert r["ratio_to_baseline"] > 0 and r["max_rel_diff"] < 1e-4
    if png is not None:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_console_entry_point_runs_as_a_module():
    # cwd: the tests folder, so the child imports the package under test (installed, or on
    # PYTHONPATH), never the source checkout that lacks the compiled module
    r = subprocess.run([sys.executable, "-m", "pyruntime", "info", "--json"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT / "tests")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["version"] == rt.__version__
