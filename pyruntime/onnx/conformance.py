"""Conformance with onnx's own backend node tests (`onnx.backend.test`).

The node tests of every op pyruntime imports (cases from
`onnx.backend.test.loader.load_model_tests(kind="node")`, generated in memory) are run
through a pluggable runner (`run_pyruntime(graph, feeds) -> {name: array}`), and the
outputs are compared with the expected ones. Cases whose inputs are float32 tensors are
in scope (pyruntime runs float32 models); integer/sequence cases are left out.

Node tests feed parameters (Conv/Gemm weights, BatchNorm statistics, Clip bounds,
Reshape shapes, Dropout ratio/training_mode) as graph inputs. pyruntime compiles
parameters into the plan, like any ahead-of-time compiler, so those inputs are bound as
initializers with the case's own values before import; data inputs stay inputs.

A case ends as: passed; rejected (the importer or compiler raised UnsupportedOpError for
an op variant outside pyruntime's scope, e.g. 3-D pooling; each is listed with its reason
in DOCUMENTED_REJECTIONS (importer) or SESSION_REJECTIONS (compiled CPU backend)); or
failed (wrong numbers, wrong shape, a crash, any other error).

    python -m pyruntime.onnx.conformance [--runner session|reference] [--isolate] [--json F]

prints the per-op table; `--isolate` runs the cases in child processes so that a native
crash fails one case instead of the run.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import UnsupportedOpError
from ..graph import Graph
from .importer import load_onnx
from .proto import QUANT_OPS, SUPPORTED_OPS, import_onnx

__all__ = ["SESSION_REJECTIONS", "documented_rejections", "run_isolated", "Case", "CaseResult", "TOLERANCE_OVERRIDES", "load_cases", "DOCUMENTED_REJECTIONS", "PARAM_INPUTS", "RTOL", "ATOL",
           "node_cases", "select_cases", "bind_parameters", "run_case", "run_all",
           "summary_table", "run_pyruntime", "run_reference_runner", "run_session_runner"]

RTOL = 1e-4
ATOL = 1e-5

#: Input positions that are parameters (bound as initializers) per op.
PARAM_INPUTS: dict[str, frozenset[int]] = {
    "Gemm": frozenset({1, 2}), "MatMul": frozenset({1}), "Conv": frozenset({1, 2}),
    "BatchNormalization": frozenset({1, 2, 3, 4}), "Clip": frozenset({1, 2}),
    "Reshape": frozenset({1}), "Dropout": frozenset({1, 2}),
    "QuantizeLinear": frozenset({1, 2}), "DequantizeLinear": frozenset({1, 2}),
    "QLinearConv": frozenset(range(1, 9)), "QLinearMatMul": frozenset(range(1, 8)),
    "MatMulInteger": frozenset({1, 2, 3}), "ConvInteger": frozenset({1, 2, 3}),
}

#: Quantized ops whose cases run in the QDQ form (pyruntime's graphs are float in and
#: out): an integer data input i is fed as its dequantized float value through a
#: QuantizeLinear with the node's own (scale, zero point) inputs, an integer output
#: read through a DequantizeLinear with the node's output (scale, zero point); the
#: expected output is dequantized the same way. op -> ({input: (scale, zp)}, (scale, zp)
#: of the output or None).
QUANT_WRAP: dict[str, tuple[dict[int, tuple[int, int]], tuple[int, int] | None]] = {
    "QuantizeLinear": ({}, (1, 2)), "DequantizeLinear": ({0: (1, 2)}, None),
    "QLinearConv": ({0: (1, 2)}, (6, 7)), "QLinearMatMul": ({0: (1, 2)}, (6, 7)),
}

# Test modules (onnx/backend/test/case/node/<module>.py) holding the cases of our ops.
_MODULES = ("add", "averagepool", "batch_normalization", "clip", "constant", "conv",
            "dropout", "flatten", "gelu", "gemm", "globalaveragepool", "globalmaxpool",
            "identity", "matmul", "maxpool", "relu", "reshape", "sigmoid", "softmax", "tanh",
            "quantizelinear", "dequantizelinear", "qlinearconv", "qlinearmatmul",
            "matmulinteger", "convinteger", "dynamicquantizelinear")

_POOL3D = "3-D pooling (only 2-D spatial pooling is supported)"
_POOL1D = "1-D pooling (only 2-D spatial pooling is supported)"
_RESHAPE = "Reshape to a non-2-D target (the IR's Reshape is 2-D only; Flatten covers N-D->2-D)"
_MATMUL = "MatMul that is not 2-D @ constant 2-D (batched/1-D matmul is not supported)"

_QAXIS = "per-axis quantization of an activation (the IR's QDQ is per tensor)"
_Q16 = "16-bit quantization (the IR's QDQ is uint8 / int8)"
_QBLOCK = "blocked quantization (block_size)"
_QINT = ("integer in, int32 out with no scale (only quantize_dynamic's pattern around it, "
         "with an int8 weight, maps onto a float op with a qc8 weight)")
_QDYN = "outputs the integers and run-time scale of DynamicQuantizeLinear (pyruntime is float out)"

#: Every case pyruntime rejects on purpose, with the reason (the scope of issue 2).
DOCUMENTED_REJECTIONS: dict[str, str] = {
    "test_averagepool_1d_default": _POOL1D,
    "test_averagepool_3d_default": _POOL3D,
    "test_averagepool_3d_dilations_small": _POOL3D,
    "test_averagepool_3d_dilations_large_count_include_pad_is_0_ceil_mode_is_True": _POOL3D,
    "test_averagepool_3d_dilations_large_count_include_pad_is_0_ceil_mode_is_False": _POOL3D,
    "test_averagepool_3d_dilations_large_count_include_pad_is_1_ceil_mode_is_True": _POOL3D,
    "test_averagepool_3d_dilations_large_count_include_pad_is_1_ceil_mode_is_False": _POOL3D,
    "test_maxpool_1d_default": _POOL1D,
    "test_maxpool_3d_default": _POOL3D,
    "test_maxpool_3d_dilations": _POOL3D,
    "test_maxpool_3d_dilations_use_ref_impl": _POOL3D,
    "test_maxpool_3d_dilations_use_ref_impl_large": _POOL3D,
    "test_maxpool_with_argmax_2d_precomputed_pads": "MaxPool's Indices output",
    "test_maxpool_with_argmax_2d_precomputed_strides": "MaxPool's Indices output",
    "test_batchnorm_example_training_mode": "BatchNormalization training_mode=1",
    "test_batchnorm_epsilon_training_mode": "BatchNormalization training_mode=1",
    "test_dropout_default_mask": "Dropout's mask output",
    "test_dropout_default_mask_ratio": "Dropout's mask output",
    "test_training_dropout_default": "Dropout in training mode (random)",
    "test_training_dropout_default_mask": "Dropout in training mode (random)",
    "test_training_dropout": "Dropout in training mode (random)",
    "test_training_dropout_mask": "Dropout in training mode (random)",
    "test_training_dropout_zero_ratio_mask": "Dropout's mask output",
    "test_gelu_tanh_1": "Gelu approximate='tanh' (the IR's Gelu is the exact erf form)",
    "test_gelu_tanh_2": "Gelu approximate='tanh' (the IR's Gelu is the exact erf form)",
    "test_constant": "a graph whose output is a constant (no inputs)",
    "test_matmul_3d": _MATMUL,
    "test_matmul_4d": _MATMUL,
    "test_matmul_bcast": _MATMUL,
    "test_matmul_1d_3d": _MATMUL,
    "test_matmul_4d_1d": _MATMUL,
    "test_matmul_1d_1d": _MATMUL,
    "test_reshape_reordered_all_dims": _RESHAPE,
    "test_reshape_reordered_last_dims": _RESHAPE,
    "test_reshape_extended_dims": _RESHAPE,
    "test_reshape_one_dim": _RESHAPE,
    "test_reshape_negative_dim": _RESHAPE,
    "test_reshape_negative_extended_dims": _RESHAPE,
    "test_reshape_zero_dim": _RESHAPE,
    "test_reshape_zero_and_negative_dim": _RESHAPE,
    "test_reshape_allowzero_reordered": _RESHAPE,
    "test_quantizelinear_axis": _QAXIS, "test_dequantizelinear_axis": _QAXIS,
    "test_quantizelinear_uint16": _Q16, "test_quantizelinear_int16": _Q16,
    "test_dequantizelinear_uint16": _Q16, "test_dequantizelinear_int16": _Q16,
    "test_quantizelinear_blocked_asymmetric": _QBLOCK,
    "test_quantizelinear_blocked_symmetric": _QBLOCK,
    "test_dequantizelinear_blocked": _QBLOCK,
    "test_qlinearmatmul_3D_uint8_float32": _MATMUL, "test_qlinearmatmul_3D_uint8_float16": _MATMUL,
    "test_qlinearmatmul_3D_int8_float32": _MATMUL, "test_qlinearmatmul_3D_int8_float16": _MATMUL,
    "test_matmulinteger": _QINT, "test_convinteger_without_padding": _QINT,
    "test_convinteger_with_padding": _QINT,
    "test_dynamicquantizelinear": _QDYN, "test_dynamicquantizelinear_max_adjusted": _QDYN,
    "test_dynamicquantizelinear_min_adjusted": _QDYN,
}


#: Cases whose expected outputs are printed literals with few digits: their own tolerance.
TOLERANCE_OVERRIDES: dict[str, tuple[float, float, str]] = {
    "test_averagepool_2d_ceil_last_window_starts_on_pad":
        (1e-3, 1e-7, "expected output is a literal rounded to 4 decimals"),
}


#: Cases the compiled CPU Session refuses at compile time (UnsupportedOpError from
#: rt.compile) although the importer accepts them: limits of the native backend. The
#: Session runner must reject exactly these (plus DOCUMENTED_REJECTIONS) and pass every
#: other case; a case that starts passing fails tests/test_onnx_backend.py until it is
#: taken off this list.
SESSION_REJECTIONS: dict[str, str] = {}


@dataclasses.dataclass
class Case:
    """What a conformance run needs from an onnx TestCase (which it mirrors)."""
    name: str
    model: Any
    data_sets: list[tuple[list[np.ndarray], list[np.ndarray]]]


@dataclasses.dataclass
class CaseResult:
    name: str
    op: str
    status: str          # "passed" | "rejected" | "failed"
    detail: str = ""


Runner = Callable[[Graph, dict], dict]


def node_cases(full: bool = False) -> list[Any]:
    """onnx's node test cases for our ops (TestCase objects with in-memory models).

    full=True calls `load_model_tests(kind="node")`, which generates all ~1900 cases
    (slow); the default imports only the test modules of our ops, which register the
    same cases for these ops (checked by `--full` in the CLI)."""
    import_onnx()
    from onnx.backend.test import loader  # noqa: PLC0415
    if full:
        return list(loader.load_model_tests(kind="node"))
    import onnx.backend.test.case.node as node_pkg  # noqa: PLC0415
    if not hasattr(node_pkg, "_NodeTestCases"):  # layout changed: take the slow path
        return list(loader.load_model_tests(kind="node"))
    for mod in _MODULES:
        try:
            importlib.import_module(f"onnx.backend.test.case.node.{mod}")
        except ImportError:
            continue
    return list(node_pkg._NodeTestCases)


def _data_inputs(model: Any) -> list[Any]:
    """Graph inputs that are data (not a parameter position of any node)."""
    params = {n.input[i] for n in model.graph.node
              for i in PARAM_INPUTS.get(n.op_type, ()) if i < len(n.input) and n.input[i]}
    return [vi for vi in model.graph.input if vi.name not in params]


def load_cases(cache_dir: str | os.PathLike | None = None, full: bool = False) -> list[Case]:
    """The selected cases (see select_cases), optionally cached in `cache_dir`.

    Generating the pooling cases runs onnx's slow pure-Python reference (~10 s), so test
    runs cache the selected cases as .npz files (no pickle) keyed by the onnx version."""
    onnx = import_onnx()
    path = None
    if cache_dir is not None:
        # keyed by what decides the selection, so a changed filter never reads old cases
        key = hashlib.sha256(repr((sorted(SUPPORTED_OPS + QUANT_OPS), _MODULES, sorted(
            (k, sorted(v)) for k, v in PARAM_INPUTS.items()), full)).encode()).hexdigest()
        path = Path(cache_dir) / f"onnx-{onnx.__version__}-{key[:16]}.npz"
        if path.is_file():
            try:
                return _read_cache(onnx, path)
            except Exception:  # noqa: BLE001 - a broken cache is regenerated
                pass
    cases = [Case(c.name, c.model, [(list(i), list(o)) for i, o in c.data_sets[:1]])
             for c in select_cases(node_cases(full=full))]
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_cache(path, cases)
        except OSError:
            pass
    return cases


def _write_cache(path: Path, cases: Sequence[Case]) -> None:
    arrays: dict[str, np.ndarray] = {}
    meta = []
    for k, c in enumerate(cases):
        ins, outs = c.data_sets[0]
        arrays[f"{k}_model"] = np.frombuffer(c.model.SerializeToString(), dtype=np.uint8)
        for j, a in enumerate(ins):
            arrays[f"{k}_in{j}"] = np.asarray(a)
        for j, a in enumerate(outs):
            arrays[f"{k}_out{j}"] = np.asarray(a)
        meta.append({"name": c.name, "n_in": len(ins), "n_out": len(outs)})
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _read_cache(onnx: Any, path: Path) -> list[Case]:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(z["meta"].tobytes().decode())
        cases = []
        for k, m in enumerate(meta):
            model = onnx.load_model_from_string(z[f"{k}_model"].tobytes())
            ins = [z[f"{k}_in{j}"] for j in range(m["n_in"])]
            outs = [z[f"{k}_out{j}"] for j in range(m["n_out"])]
            cases.append(Case(m["name"], model, [(ins, outs)]))
    return cases


#: TensorProto element types of quantized cases in scope: FLOAT, UINT8, INT8, UINT16,
#: INT16, INT32, FLOAT16.
_NUMPY_TYPES = (1, 2, 3, 4, 5, 6, 10)


def select_cases(cases: Sequence[Any]) -> list[Any]:
    """Cases built only from ops pyruntime imports whose data inputs are float32 tensors."""
    onnx = import_onnx()
    out, seen = [], set()
    for c in cases:
        if c.model is None or c.name in seen:
            continue
        if not all(n.op_type in SUPPORTED_OPS + QUANT_OPS and n.domain in ("", "ai.onnx")
                   for n in c.model.graph.node):
            continue
        # a quantized op's cases are all in scope: integer data is run in the QDQ form
        # (QUANT_WRAP) or rejected with the importer's reason
        quant = len(c.model.graph.node) == 1 and c.model.graph.node[0].op_type in QUANT_OPS
        # float8, 4- and 2-bit tensors have no numpy dtype here: left out like sequences
        if quant and any(vi.type.tensor_type.elem_type not in _NUMPY_TYPES
                         for vi in list(c.model.graph.input) + list(c.model.graph.output)):
            continue
        ok = quant or all(vi.type.HasField("tensor_type")
                          and vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
                          for vi in _data_inputs(c.model))
        if ok:
            out.append(c)
            seen.add(c.name)
    return out


def bind_parameters(case: Any, data_set: int = 0) -> tuple[Any, dict[str, np.ndarray]]:
    """The case's model with parameter inputs turned into initializers, and the feeds
    for the remaining (data) inputs."""
    onnx = import_onnx()
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    inputs, _ = case.data_sets[data_set]
    values = dict(zip([vi.name for vi in case.model.graph.input], inputs))
    data = {vi.name for vi in _data_inputs(case.model)}
    keep = [vi for vi in model.graph.input if vi.name in data]
    for vi in model.graph.input:
        if vi.name not in data:
            model.graph.initializer.append(
                onnx.numpy_helper.from_array(np.asarray(values[vi.name]), vi.name))
    del model.graph.input[:]
    model.graph.input.extend(keep)
    return model, {k: np.asarray(values[k]) for k in data}


def wrap_quantized(model: Any, feeds: dict, expected: Sequence[np.ndarray]
                   ) -> tuple[Any, dict, list[str], list[np.ndarray]]:
    """A one-node quantized case in the QDQ form (see QUANT_WRAP): (model, feeds, output
    names, expected outputs). Cases whose op is not in QUANT_WRAP come back unchanged."""
    onnx = import_onnx()
    h, tp = onnx.helper, onnx.TensorProto
    names = [o.name for o in model.graph.output]
    node = model.graph.node[0] if len(model.graph.node) == 1 else None
    if node is None or node.op_type not in QUANT_WRAP:
        return model, feeds, names, list(expected)
    ins, out = QUANT_WRAP[node.op_type]
    init = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    feeds = dict(feeds)
    new_inputs = []
    for vi in model.graph.input:
        pos = [i for i, x in enumerate(node.input) if x == vi.name]
        if not pos or pos[0] not in ins or vi.name not in feeds:
            new_inputs.append(vi)
            continue
        s_i, z_i = ins[pos[0]]
        s, z = init[node.input[s_i]], init.get(node.input[z_i] if len(node.input) > z_i
                                               else "", np.zeros((), feeds[vi.name].dtype))
        if s.size != 1 or z.size != 1:
            new_inputs.append(vi)   # per-axis activation: the importer rejects it
            continue
        fname = f"{vi.name}__float"
        q = feeds.pop(vi.name)
        feeds[fname] = ((q.astype(np.float64) - float(z.reshape(-1)[0]))
                        * float(s.reshape(-1)[0])).astype(np.float32)
        node_q = h.make_node("QuantizeLinear", [fname, node.input[s_i]] + (
            [node.input[z_i]] if len(node.input) > z_i and node.input[z_i] else []),
            [vi.name])
        model.graph.node.insert(0, node_q)
        new_inputs.append(h.make_tensor_value_info(fname, tp.FLOAT, [
            d.dim_value for d in vi.type.tensor_type.shape.dim]))
    del model.graph.input[:]
    model.graph.input.extend(new_inputs)
    expected = list(expected)
    if out is not None and len(node.input) > out[0]:
        s = init.get(node.input[out[0]])
        zn = node.input[out[1]] if len(node.input) > out[1] else ""
        y = model.graph.output[0]
        if s is not None and s.size == 1 and np.asarray(expected[0]).dtype.kind in "iu":
            z = init.get(zn, np.zeros((), np.uint8))
            fname = f"{y.name}__float"
            model.graph.node.append(h.make_node(
                "DequantizeLinear", [y.name, node.input[out[0]]] + ([zn] if zn else []),
                [fname]))
            del model.graph.output[:]
            model.graph.output.append(h.make_tensor_value_info(fname, tp.FLOAT, None))
            names = [fname]
            expected = [((np.asarray(expected[0]).astype(np.float64)
                          - float(z.reshape(-1)[0])) * float(np.float32(s.reshape(-1)[0])))
                        .astype(np.float32)]
    return model, feeds, names, expected


def run_reference_runner(graph: Graph, feeds: dict) -> dict:
    """The float64 reference evaluator (pyruntime/reference.py)."""
    from ..reference import run_reference  # noqa: PLC0415
    return run_reference(graph, feeds)


def run_session_runner(graph: Graph, feeds: dict) -> dict:
    """The compiled CPU Session."""
    from ..backends import compile  # noqa: PLC0415
    sess = compile(graph, device="cpu", threads=2)
    return sess.run({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in feeds.items()})


def run_pyruntime(graph: Graph, feeds: dict) -> dict:
    """The default runner: the compiled CPU Session. There is no fallback: a Session
    that raises (UnsupportedOpError included) is that case's rejection or failure."""
    return run_session_runner(graph, feeds)


RUNNERS: dict[str, Runner] = {"reference": run_reference_runner,
                              "session": run_session_runner}


def _compare(case: Any, got: dict, expected: Sequence[np.ndarray],
             names: Sequence[str]) -> str:
    """'' when every output matches, else what differs."""
    rtol, atol, _ = TOLERANCE_OVERRIDES.get(case.name, (RTOL, ATOL, ""))
    for name, want in zip(names, expected):
        if name not in got:
            return f"output {name!r} missing (got {sorted(got)})"
        g = np.asarray(got[name])
        want = np.asarray(want)
        if g.shape != want.shape:
            return f"output {name!r}: shape {g.shape}, expected {want.shape}"
        if not np.allclose(g, want, rtol=rtol, atol=atol, equal_nan=True):
            err = np.abs(g.astype(np.float64) - want.astype(np.float64))
            return (f"output {name!r}: max abs error {np.nanmax(err):.3g} "
                    f"(rtol {rtol}, atol {atol})")
    return ""


def run_case(case: Any, runner: Runner) -> CaseResult:
    op = case.model.graph.node[0].op_type if case.model.graph.node else "?"
    try:
        model, feeds = bind_parameters(case)
        model, feeds, names, expected = wrap_quantized(model, feeds, case.data_sets[0][1])
        graph = load_onnx(model)
        got = runner(graph, feeds)
    except UnsupportedOpError as e:
        return CaseResult(case.name, op, "rejected", str(e).splitlines()[1].strip("- ")
                          if "\n" in str(e) else str(e))
    except Exception as e:  # noqa: BLE001 - any other error is a failed case
        return CaseResult(case.name, op, "failed", f"{type(e).__name__}: {e}")
    diff = _compare(case, got, expected, names)
    return CaseResult(case.name, op, "failed" if diff else "passed", diff)


def run_all(runner: Runner, cases: Sequence[Any] | None = None) -> list[CaseResult]:
    cases = load_cases() if cases is None else cases
    return [run_case(c, runner) for c in cases]


def summary_table(results: Sequence[CaseResult]) -> str:
    """Per-op passed/rejected/failed counts and the totals, as a Markdown table."""
    ops = sorted({r.op for r in results})
    rows = ["| op | cases | passed | rejected (documented) | failed |",
            "|---|---:|---:|---:|---:|"]
    for op in ops:
        rs = [r for r in results if r.op == op]
        rows.append(f"| {op} | {len(rs)} | {sum(r.status == 'passed' for r in rs)} | "
                    f"{sum(r.status == 'rejected' for r in rs)} | "
                    f"{sum(r.status == 'failed' for r in rs)} |")
    p = sum(r.status == "passed" for r in results)
    j = sum(r.status == "rejected" for r in results)
    f = sum(r.status == "failed" for r in results)
    rows.append(f"| **total** | {len(results)} | {p} | {j} | {f} |")
    return "\n".join(rows)


def documented_rejections(runner: str) -> dict[str, str]:
    """Cases this runner rejects (exactly these): the importer's, plus the Session's
    compile-time ones."""
    if runner == "session":
        return {**DOCUMENTED_REJECTIONS, **SESSION_REJECTIONS}
    return dict(DOCUMENTED_REJECTIONS)


def run_isolated(runner: str, cache_dir: str | os.PathLike | None = None,
                 timeout: float = 600.0) -> list[CaseResult]:
    """Run every case through `runner` in child processes. A crash (e.g. a segfault in
    the native Session) or a hang is recorded as that case's failure, and the run
    resumes with the next case, so one bad kernel cannot take the test suite down."""
    results: list[CaseResult] = []
    after: str | None = None
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    for _ in range(1000):
        with tempfile.TemporaryDirectory() as d:
            log = Path(d) / "log.jsonl"
            cmd = [sys.executable, "-X", "faulthandler", "-m", "pyruntime.onnx.conformance",
                   "--runner", runner,
                   "--log", str(log), "--quiet"]
            cmd += ["--cache", str(cache_dir)] if cache_dir is not None else []
            cmd += ["--after", after] if after is not None else []
            try:
                # cwd: a fresh directory, so `-m` cannot pick up a source checkout
                # (without the compiled module) instead of the package that imported us.
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                      env=env, check=False, cwd=d)
                rc = proc.returncode
                why = (f"killed by {signal.Signals(-rc).name}" if rc < 0 and
                       -rc in signal.valid_signals() else f"exit status {rc}")
                err = proc.stderr
            except subprocess.TimeoutExpired as e:
                proc, why = None, f"no result within {timeout:g} s"
                err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) \
                    else (e.stderr or "")
            started: dict[str, str] | None = None
            lines = log.read_text().splitlines() if log.exists() else []
            for line in lines:
                rec = json.loads(line)
                if "start" in rec:
                    started = rec["start"]
                else:
                    results.append(CaseResult(**rec["result"]))
                    started = None
        if started is None:
            if proc is not None and proc.returncode in (0, 1):
                return results
            raise RuntimeError(f"conformance child process failed ({why}):\n{err[-2000:]}")
        frames = [ln.strip() for ln in err.splitlines() if ln.strip().startswith("File ")]
        tail = " <- ".join(frames[:3])
        results.append(CaseResult(started["name"], started["op"], "failed",
                                  f"the {runner} runner crashed ({why}): {tail}"))
        after = started["name"]
    raise RuntimeError("conformance run did not finish")  # pragma: no cover


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pyruntime.onnx.conformance",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--runner", choices=list(RUNNERS), default="session",
                    help="session: the compiled CPU Session (default); reference: the "
                         "float64 evaluator")
    ap.add_argument("--full", action="store_true",
                    help="generate cases with load_model_tests(kind='node') (all ops, slow)")
    ap.add_argument("--cache", help="directory to cache the generated cases in")
    ap.add_argument("--json", help="also write the per-case results to this JSON file")
    ap.add_argument("--isolate", action="store_true",
                    help="run the cases in child processes (a crashing runner fails one case)")
    ap.add_argument("-v", "--verbose", action="store_true", help="list every case")
    ap.add_argument("--log", help=argparse.SUPPRESS)     # child protocol of run_isolated
    ap.add_argument("--after", help=argparse.SUPPRESS)   # resume after this case
    ap.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    name = args.runner
    if args.isolate:
        results = run_isolated(name, args.cache)
    else:
        cases = load_cases(args.cache, full=args.full)
        if args.after is not None:
            names = [c.name for c in cases]
            cases = cases[names.index(args.after) + 1:] if args.after in names else []
        results = []
        log = open(args.log, "a") if args.log else None  # noqa: SIM115
        try:
            for c in cases:
                if log:
                    op = c.model.graph.node[0].op_type if c.model.graph.node else "?"
                    log.write(json.dumps({"start": {"name": c.name, "op": op}}) + "\n")
                    log.flush()
                r = run_case(c, RUNNERS[name])
                results.append(r)
                if log:
                    log.write(json.dumps({"result": dataclasses.asdict(r)}) + "\n")
                    log.flush()
        finally:
            if log:
                log.close()
    documented = documented_rejections(name)
    undocumented = [r.name for r in results
                    if r.status == "rejected" and r.name not in documented]
    failed = sum(r.status == "failed" for r in results)
    p = sum(r.status == "passed" for r in results)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"runner": name, "passed": p, "total": len(results),
                       "cases": [dataclasses.asdict(r) for r in results]}, fh, indent=1)
    if args.quiet:
        return 1 if failed or undocumented else 0
    print(f"onnx backend node tests through pyruntime ({name} runner), float32 cases of "
          f"the imported ops:\n")
    print(summary_table(results))
    print(f"\npassed {p}/{len(results)}; rejected cases are out-of-scope variants:")
    for r in results:
        if r.status != "passed":
            print(f"  {r.status:8} {r.name}: {r.detail}")
        elif args.verbose:
            print(f"  {r.status:8} {r.name}")
    if undocumented:
        print(f"\nUNDOCUMENTED rejections: {undocumented}")
    return 1 if failed or undocumented else 0


if __name__ == "__main__":
    sys.exit(main())
