"""onnx's own backend node tests through pyruntime (pyruntime/onnx/conformance.py).

Every float32 case of an op pyruntime imports either passes (outputs equal the case's
expected outputs to rtol 1e-4 / atol 1e-5) or is a documented rejection (an op variant
outside pyruntime's scope, listed with its reason in DOCUMENTED_REJECTIONS). Cases run
through the float64 reference evaluator and, when it is built, the compiled Session.
`python -m pyruntime.onnx.conformance` prints the passed/total table for the README.
"""

from __future__ import annotations

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnx.backend.test")

from pyruntime.onnx import conformance as B  # noqa: E402
from pyruntime.onnx import SUPPORTED_OPS  # noqa: E402

_CASES: list | None = None


def _cases(config: pytest.Config | None = None) -> list:
    """The selected cases, generated once per session (cached across runs)."""
    global _CASES
    if _CASES is None:
        cache = getattr(config, "cache", None) if config is not None else None
        cache_dir = cache.mkdir("pyruntime-onnx-node-cases") if cache is not None else None
        _CASES = B.load_cases(cache_dir)
    return _CASES


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        cases = _cases(metafunc.config)
        metafunc.parametrize("case", cases, ids=[c.name for c in cases])


_SESSION_RESULTS: dict | None = None


def _session_results(config: pytest.Config) -> dict:
    """Every case through the compiled Session, in child processes (a native crash fails
    one case instead of the test run), once per test session."""
    global _SESSION_RESULTS
    if _SESSION_RESULTS is None:
        cache = getattr(config, "cache", None)
        cache_dir = cache.mkdir("pyruntime-onnx-node-cases") if cache is not None else None
        _SESSION_RESULTS = {r.name: r for r in B.run_isolated("session", cache_dir)}
    return _SESSION_RESULTS


@pytest.fixture(scope="session")
def session_built() -> bool:
    return B.session_available()


@pytest.mark.parametrize("runner", ["reference", "session"])
def test_node_case(case, runner, request, session_built) -> None:
    if runner == "session":
        if not session_built:
            pytest.skip("rt.compile is not implemented in this build")
        r = _session_results(request.config)[case.name]
    else:
        r = B.run_case(case, B.RUNNERS[runner])
    if case.name in B.DOCUMENTED_REJECTIONS:
        assert r.status == "rejected", (
            f"{case.name} is documented as rejected "
            f"({B.DOCUMENTED_REJECTIONS[case.name]}) but {r.status}: {r.detail}")
    elif case.name in B.documented_rejections(runner):
        assert r.status in ("passed", "rejected"), f"{case.name}: {r.status}: {r.detail}"
    else:
        assert r.status == "passed", f"{case.name}: {r.status}: {r.detail}"


def test_cases_cover_every_imported_op() -> None:
    cases = _cases()
    ops = {n.op_type for c in cases for n in c.model.graph.node}
    assert ops == set(SUPPORTED_OPS)
    assert len(cases) >= 120


def test_documented_rejections_are_real_cases() -> None:
    names = {c.name for c in _cases()}
    stale = sorted((set(B.DOCUMENTED_REJECTIONS) | set(B.SESSION_REJECTIONS)) - names)
    assert not stale, f"documented rejections that are no longer onnx cases: {stale}"
    assert set(B.TOLERANCE_OVERRIDES) <= names


def test_parameters_are_bound_as_initializers() -> None:
    case = next(c for c in _cases() if c.name == "test_basic_conv_with_padding")
    model, feeds = B.bind_parameters(case)
    assert list(feeds) == ["x"]
    assert [i.name for i in model.graph.initializer] == ["W"]
    assert [i.name for i in model.graph.input] == ["x"]


def test_summary_counts_and_table() -> None:
    results = B.run_all(B.run_reference_runner, _cases())
    table = B.summary_table(results)
    passed = sum(r.status == "passed" for r in results)
    assert f"| **total** | {len(results)} | {passed} |" in table
    assert not [r for r in results if r.status == "failed"]
    assert passed == len(results) - len(B.DOCUMENTED_REJECTIONS)


def test_cli_prints_table_and_writes_json(tmp_path, capsys, pytestconfig) -> None:
    import json

    cache = getattr(pytestconfig, "cache", None)  # absent under -p no:cacheprovider
    cache = cache.mkdir("pyruntime-onnx-node-cases") if cache is not None else None
    out = tmp_path / "r.json"
    args = ["--runner", "reference", "--json", str(out)] + (["--cache", str(cache)]
                                                             if cache else [])
    assert B.main(args) == 0
    text = capsys.readouterr().out
    assert "| **total** |" in text and "passed " in text
    data = json.loads(out.read_text())
    assert data["runner"] == "reference" and data["total"] == len(data["cases"])
    assert data["passed"] == sum(c["status"] == "passed" for c in data["cases"])


def test_default_runner_runs_a_case() -> None:
    case = next(c for c in _cases() if c.name == "test_relu")
    r = B.run_case(case, B.run_pyruntime)
    assert r.status == "passed", r.detail
