"""onnx's own backend node tests through pyruntime (pyruntime/onnx/conformance.py).

Every float32 case of an op pyruntime imports either passes (outputs equal the case's
expected outputs to rtol 1e-4 / atol 1e-5) or is a documented rejection (an op variant
outside pyruntime's scope, listed with its reason in DOCUMENTED_REJECTIONS, or a limit of
the compiled backend in SESSION_REJECTIONS). Cases run through the float64 reference
evaluator and through the compiled Session, whose per-op counts are pinned.
`python -m pyruntime.onnx.conformance` prints the passed/total table for the README.
"""

from __future__ import annotations

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnx.backend.test")

from pyruntime.onnx import conformance as B  # noqa: E402
from pyruntime.onnx import SUPPORTED_OPS  # noqa: E402
from pyruntime.onnx.proto import QUANT_OPS  # noqa: E402

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


@pytest.mark.parametrize("runner", ["reference", "session"])
def test_node_case(case, runner, request) -> None:
    """Each case ends exactly as pinned: rejected when listed (with its reason) in the
    runner's rejection lists, else passed. A case that starts passing fails here too, so
    the lists (and the counts below) are updated when the backend grows."""
    if runner == "session":
        r = _session_results(request.config)[case.name]
    else:
        r = B.run_case(case, B.RUNNERS[runner])
    documented = B.documented_rejections(runner)
    if case.name in documented:
        assert r.status == "rejected", (
            f"{case.name} is documented as rejected by the {runner} runner "
            f"({documented[case.name]}) but {r.status}: {r.detail}; if it passes now, "
            f"take it off the list and update SESSION_COUNTS")
    else:
        assert r.status == "passed", f"{case.name}: {r.status}: {r.detail}"


#: The compiled Session's result per op at this commit: (cases, passed, rejected); no
#: case fails. Printed by `python -m pyruntime.onnx.conformance --isolate`.
SESSION_COUNTS: dict[str, tuple[int, int, int]] = {
    "Add": (2, 2, 0), "AveragePool": (20, 13, 7), "BatchNormalization": (4, 2, 2),
    "Clip": (9, 9, 0), "Constant": (1, 0, 1), "Conv": (6, 6, 0), "Dropout": (12, 5, 7),
    "Flatten": (9, 9, 0), "Gelu": (4, 2, 2), "Gemm": (11, 11, 0),
    "GlobalAveragePool": (2, 2, 0), "GlobalMaxPool": (2, 2, 0), "Identity": (2, 2, 0),
    "MatMul": (7, 1, 6), "MaxPool": (18, 11, 7), "Relu": (1, 1, 0), "Reshape": (10, 1, 9),
    "Sigmoid": (2, 2, 0), "Softmax": (7, 7, 0), "Tanh": (2, 2, 0),
    # quantized ops, run in the QDQ form (conformance.QUANT_WRAP) on the int8 kernels
    "ConvInteger": (2, 0, 2), "DequantizeLinear": (5, 1, 4),
    "DynamicQuantizeLinear": (3, 0, 3), "MatMulInteger": (1, 0, 1),
    "QLinearConv": (1, 1, 0), "QLinearMatMul": (8, 4, 4), "QuantizeLinear": (6, 1, 5),
}


def test_session_counts_are_pinned(request) -> None:
    """The exact passed/rejected counts per op through the compiled Session (never a
    skip: a Session that cannot compile or run fails here)."""
    results = list(_session_results(request.config).values())
    got = {}
    for r in results:
        c, p, j = got.get(r.op, (0, 0, 0))
        got[r.op] = (c + 1, p + (r.status == "passed"), j + (r.status == "rejected"))
    assert got == SESSION_COUNTS, B.summary_table(results)
    assert sum(j for _, _, j in got.values()) == len(B.documented_rejections("session"))


def test_default_runner_is_the_session_without_fallback(monkeypatch) -> None:
    """UnsupportedOpError is a NotImplementedError; a Session that raises it must show as
    the case's rejection, never make the harness fall back to the reference (which once
    turned every Session case into a skip or a reference pass)."""
    import pyruntime.backends

    def refuse(*a, **k):
        raise B.UnsupportedOpError("this build's Session refuses everything")

    monkeypatch.setattr(pyruntime.backends, "compile", refuse)
    case = next(c for c in _cases() if c.name == "test_relu")
    r = B.run_case(case, B.run_pyruntime)
    assert r.status == "rejected" and "refuses everything" in r.detail


def test_cases_cover_every_imported_op() -> None:
    cases = _cases()
    ops = {n.op_type for c in cases for n in c.model.graph.node}
    assert ops == set(SUPPORTED_OPS) | set(QUANT_OPS)
    assert len(cases) >= 150


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
