"""The README's API tour runs as written (in a temporary directory)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_api_tour_runs(tmp_path, monkeypatch):
    if not README.exists():
        pytest.skip("README.md not beside the tests")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python block"
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), ns)  # noqa: S102 - our own README
    assert ns["probs"].shape == (8, 10)
    assert abs(float(ns["probs"].sum()) - 8.0) < 1e-4  # softmax rows sum to 1
    assert set(ns["outs"]) == {ns["sess"].outputs[0].name}
    assert (tmp_path / "model.pyrt").exists()
