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


def test_setup_runs_the_demo_and_images_exist():
    """The first set-up command installs and runs `pyruntime demo`; every image the
    README embeds is committed."""
    if not README.exists():
        pytest.skip("README.md not beside the tests")
    text = README.read_text()
    first = re.findall(r"```bash\n(.*?)```", text, flags=re.S)[0].splitlines()[0]
    assert first.split("#")[0].strip() == 'pip install ".[test]" && pyruntime demo'
    from pyruntime.cli.main import build_parser
    assert build_parser().parse_args(["demo"]).command == "demo"
    for img in re.findall(r"!\[[^]]*\]\(([^)]+)\)", text):
        assert (README.parent / img).is_file(), img
