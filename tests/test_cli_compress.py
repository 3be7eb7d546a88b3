"""`pyruntime compress`: exit codes 0/1/2, one-line errors naming the file or value,
--quiet/--debug, and the written model equals what rt.compress returns."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import pyruntime as rt
from pyruntime.cli.main import main
from pyruntime.train import digits



@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_compress")
    g = digits.teacher_cnn(seed=2)
    rt.save(g, d / "m.pyrt")
    rng = np.random.default_rng(0)
    x = rng.random((48, 1, 8, 8), dtype=np.float32)
    y = rng.integers(0, 10, 48)
    np.savez(d / "val.npz", x=x, y=y)
    np.savez(d / "cal.npz", image=x[:16])
    np.savez(d / "noy.npz", x=x)
    (d / "bad.npz").write_bytes(b"not a zip")
    (d / "r.toml").write_text('[[step]]\nkind = "prune"\nsparsity = 0.75\n'
                              '[[step]]\nkind = "quantize"\ndtype = "bf16"\n')
    (d / "bad.toml").write_text('[[step]]\nkind = "prune"\nsparsity = 2\n')
    return d, g, x, y


def usage_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("extra, words", [
    (["--prune", "1.5"], ["--prune", "1.5"]),
    (["--prune", "0.5", "--block", "16"], ["--block", "'16'"]),
    (["--quantize", "int4"], ["--quantize", "int4"]),
    (["--bogus"], ["--bogus"]),
    (["--block", "16,1"], ["--block needs --prune"]),
    (["--quantize", "fp16", "--epochs", "3"], ["--epochs needs --finetune"]),
    (["--auto"], ["--auto needs --data"]),
    (["--quantize", "fp16", "--calibration", "c.npz"], ["needs --quantize int8, not fp16"]),
    (["--prune", "0.5", "--calibration", "c.npz"], ["needs --quantize int8"]),
    ([], ["nothing to do"]),
])
def test_usage_errors_exit_2(files, capsys, extra, words):
    d, *_ = files
    err = usage_error(["compress", str(d / "m.pyrt"), "-o", str(d / "o.pyrt")] + extra,
                      capsys)
    for w in words:
        assert w in err


@pytest.mark.parametrize("model, extra, words", [
    ("missing.pyrt", ["--prune", "0.5"], ["missing.pyrt"]),
    ("m.pyrt", ["--quantize", "int8", "--calibration", "bad.npz"], ["bad.npz", "npz"]),
    ("m.pyrt", ["--quantize", "int8", "--calibration", "nope.npz"], ["nope.npz"]),
    ("m.pyrt", ["--auto", "--data", "noy.npz"], ["noy.npz", "x and y"]),
    ("m.pyrt", ["--recipe", "bad.toml"], ["bad.toml", "step 1 (prune)", "sparsity"]),
    ("val.npz", ["--prune", "0.5"], ["val.npz", ".onnx or .pyrt"]),
])
def test_failures_exit_1_with_one_line(files, capsys, model, extra, words):
    d, *_ = files
    extra = [str(d / a) if a.endswith((".npz", ".toml")) else a for a in extra]
    assert main(["compress", str(d / model), "-o", str(d / "o.pyrt")] + extra) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)


def test_debug_prints_the_traceback(files, capsys):
    d, *_ = files
    assert main(["compress", str(d / "m.pyrt"), "-o", str(d / "o.pyrt"), "--quantize",
                 "int8", "--calibration", str(d / "bad.npz"), "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_flags_write_what_the_api_returns(files, capsys):
    d, g, x, y = files
    out = d / "flags.pyrt"
    assert main(["compress", str(d / "m.pyrt"), "-o", str(out), "--prune", "0.8",
                 "--block", "16,1", "--quantize", "int8", "--calibration",
                 str(d / "cal.npz"), "--data", str(d / "val.npz"), "--no-latency",
                 "--report", str(d / "rep.json")]) == 0
    cap = capsys.readouterr()
    assert "| quantize int8 |" in cap.out
    want, rep = rt.compress(g, [{"prune": {"sparsity": 0.8, "block": [16, 1]}},
                                {"quantize": {"dtype": "int8"}}], data=(x, y),
                            calibration=x[:16], latency=False, progress=False)
    np.testing.assert_array_equal(rt.compile(rt.load(out)).run(x), rt.compile(want).run(x))
    got = json.loads((d / "rep.json").read_text())
    assert [r["accuracy"] for r in got["rows"]] == [r.accuracy for r in rep.rows]


def test_recipe_file_and_quiet(files, capsys):
    d, g, x, _ = files
    out = d / "recipe.pyrt"
    assert main(["--quiet", "compress", str(d / "m.pyrt"), "-o", str(out), "--recipe",
                 str(d / "r.toml"), "--no-latency"]) == 0
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err == ""
    h = rt.load(out)
    assert rt.sparsity(h)["overall"]["sparsity"] > 0.7
    assert {h.weights[k].format for k in ("conv2.weight", "conv3.weight")} <= {"csr", "bf16"}


def test_auto_on_the_command_line(files, capsys):
    d, g, x, y = files
    out = d / "auto.pyrt"
    assert main(["compress", str(d / "m.pyrt"), "-o", str(out), "--auto", "--max-drop",
                 "0", "--data", str(d / "val.npz"), "--no-latency", "--quiet",
                 "--time-budget", "30"]) == 0
    base = np.mean(rt.compile(g).run(x).argmax(1) == y)
    assert np.mean(rt.compile(rt.load(out)).run(x).argmax(1) == y) >= base


def test_subprocess_help_and_usage_exit_codes(files):
    d, *_ = files
    # cwd: the tests folder, so the child imports the package under test (installed, or
    # on PYTHONPATH), never the source checkout that lacks the compiled module
    env, here = dict(os.environ), os.path.dirname(os.path.abspath(__file__))
    r = subprocess.run([sys.executable, "-m", "pyruntime", "compress", "--help"],
                       capture_output=True, text=True, env=env, timeout=120, cwd=here)
    assert r.returncode == 0 and "--max-drop" in r.stdout and "--recipe" in r.stdout
    r = subprocess.run([sys.executable, "-m", "pyruntime", "compress", str(d / "m.pyrt"),
                        "-o", str(d / "o.pyrt"), "--prune", "1.5"],
                       capture_output=True, text=True, env=env, timeout=120, cwd=here)
    assert r.returncode == 2 and "1.5" in r.stderr and "Traceback" not in r.stderr
