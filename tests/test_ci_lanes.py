"""The CI lanes fail closed: tools/fuzz.sh and tools/sanitize.sh exit non-zero when their
lane cannot run or did not do the work asked for, and "skipped" (exit 0) only when the
caller allows it with PYRUNTIME_LANES_MAY_SKIP=1 (CI never does). A fake `python3` first
on PATH plays the missing atheris, a fuzzer that stops early, or a Python that TSan
cannot start, so these run in a second and build nothing."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

#: FAKE=noatheris | short | slow | full | nocount | notsan
FAKE_PY = r"""#!/usr/bin/env bash
case "$1 $2" in
  "-c import atheris") [ "$FAKE" = noatheris ] && exit 1; exit 0 ;;
  "-c import sys; print(sys.executable)") echo "$0"; exit 0 ;;
  "-c pass") [ "$FAKE" = notsan ] && { echo "FATAL: ThreadSanitizer: unexpected memory mapping" >&2; exit 66; }; exit 0 ;;
esac
case "$1" in
  fuzz/fuzz_*.py)
    case "$FAKE" in
      short) echo "Done 7 in 0 second(s)" ;;
      slow) sleep 1.1; echo "Done 7 in 1 second(s)" ;;
      full) echo "Done 100 in 0 second(s)" ;;
      nocount) echo "INFO: Seed: 1" ;;
    esac
    exit 0 ;;
esac
echo "fake python: unexpected $*" >&2
exit 3
"""


def run_lane(tmp_path: Path, fake: str, args: list[str], allow_skip: bool = False):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("python3", "python"):
        p = bin_dir / name
        p.write_text(FAKE_PY)
        p.chmod(p.stat().st_mode | stat.S_IXUSR)
    env = {k: v for k, v in os.environ.items() if k != "PYRUNTIME_LANES_MAY_SKIP"}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", FAKE=fake,
               FUZZ_DIR=str(tmp_path / "fuzz"))
    if allow_skip:
        env["PYRUNTIME_LANES_MAY_SKIP"] = "1"
    return subprocess.run(["bash", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_fuzz_without_atheris_fails_unless_skipping_is_allowed(tmp_path):
    r = run_lane(tmp_path, "noatheris", ["tools/fuzz.sh", "100", "60"])
    assert r.returncode == 1 and "FAILED" in r.stderr, r.stderr
    r = run_lane(tmp_path, "noatheris", ["tools/fuzz.sh", "100", "60"], allow_skip=True)
    assert r.returncode == 0 and "SKIPPED" in r.stderr, r.stderr


def test_fuzz_fails_when_a_target_stops_early(tmp_path):
    r = run_lane(tmp_path, "short", ["tools/fuzz.sh", "100", "60"])
    assert r.returncode == 1, r.stdout + r.stderr
    assert "7 executions" in r.stderr and "fewer than the 100" in r.stderr


def test_fuzz_fails_without_an_execution_count(tmp_path):
    r = run_lane(tmp_path, "nocount", ["tools/fuzz.sh", "100", "60"])
    assert r.returncode == 1 and "no execution count" in r.stderr, r.stderr


def test_fuzz_passes_when_every_target_ran_its_executions(tmp_path):
    r = run_lane(tmp_path, "full", ["tools/fuzz.sh", "100", "60"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("100 executions") == 3


def test_fuzz_time_budget_counts_as_done(tmp_path):
    """A target that spent its whole time budget is done even with fewer executions than
    asked (a slow target; RUNS=0, the long run); one that returned early is not."""
    r = run_lane(tmp_path, "full", ["tools/fuzz.sh", "0", "60"])
    assert r.returncode == 1 and "under the 60 s budget" in r.stderr, r.stderr
    for runs in ("100", "0"):
        r = run_lane(tmp_path, "slow", ["tools/fuzz.sh", runs, "1"])
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.count("7 executions") == 3


def test_tsan_lane_fails_when_tsan_cannot_start_python(tmp_path):
    if shutil.which("gcc") is None or shutil.which("setarch") is None:
        pytest.skip("needs gcc and setarch")
    r = run_lane(tmp_path, "notsan", ["tools/sanitize.sh", "tsan"])
    assert r.returncode == 1 and "TSan lane FAILED" in r.stderr, r.stderr
    r = run_lane(tmp_path, "notsan", ["tools/sanitize.sh", "tsan"], allow_skip=True)
    assert r.returncode == 0 and "SKIPPED" in r.stderr, r.stderr
