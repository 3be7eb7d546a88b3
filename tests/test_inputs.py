"""One input check for every Session kind and the load balancer: the CPU Session, the
loaded XLA artifact and LoadBalancer.submit accept the same feeds and reject the same
bad ones with the same error type and message."""

from __future__ import annotations

import numpy as np
import pytest

import pyruntime as rt
from pyruntime import nn, serve
from pyruntime.inputs import InputSpec, IOInfo
from pyruntime.reference import run_reference


def _two_inputs() -> rt.Graph:
    a = nn.Input((6,), name="a")
    b = nn.Input((6,), name="b")
    y = nn.Dense(3, seed=1)(nn.Add()([nn.Dense(6, seed=2)(a), b]))
    return nn.Model([a, b], y, name="two").to_graph()


_A = np.ones((2, 6), np.float32)
#: (case, feeds, error type, message pattern) for the two-input model
BAD = [
    ("bare array", _A, rt.InputError, r"2 inputs \['a', 'b'\]: pass a dict"),
    ("missing name", {"a": _A}, rt.InputError, r"expected inputs \['a', 'b'\]; missing \['b'\]"),
    ("unknown name", {"a": _A, "b": _A, "c": _A}, rt.InputError, r"unknown \['c'\]"),
    ("bool dtype", {"a": _A.astype(bool), "b": _A}, rt.DTypeError, r"input 'a': expected float32"),
    ("strings", {"a": np.array([["x"] * 6]), "b": _A[:1]}, rt.DTypeError, r"got <U1"),
    ("wrong tail", {"a": np.ones((2, 5), np.float32), "b": _A}, rt.ShapeError,
     r"input 'a': expected shape \(None, 6\), got \(2, 5\)"),
    ("wrong rank", {"a": np.ones((2, 6, 1), np.float32), "b": _A}, rt.ShapeError,
     r"input 'a': expected shape"),
    ("batches differ", {"a": _A, "b": _A[:1]}, rt.ShapeError, r"same batch size, got a: 2, b: 1"),
    ("unconvertible", {"a": [[1, 2], [3]], "b": _A}, rt.InputError, r"input 'a': cannot convert"),
]


@pytest.fixture(scope="module")
def runners(tmp_path_factory):
    """name -> callable(feeds) for every entry point that checks inputs."""
    g = _two_inputs()
    sess = rt.compile(g, threads=1)
    out = {"session": sess.run}
    lb = serve.LoadBalancer([sess], max_delay_ms=0)
    out["balancer"] = lambda f: lb.submit(f).result(timeout=30)
    try:
        from pyruntime import xla
        import jax  # noqa: F401
        path = tmp_path_factory.mktemp("xla") / "two.pyrtx"
        xla.export(g, path, platforms=("cpu",))
        out["xla"] = xla.load(path).run
    except ImportError:
        pass
    yield out
    lb.close()


@pytest.mark.parametrize("case,feeds,err,pattern", BAD, ids=[b[0] for b in BAD])
def test_every_entry_point_rejects_alike(runners, case, feeds, err, pattern):
    messages = {}
    for name, run in runners.items():
        with pytest.raises(err, match=pattern) as e:
            run(feeds)
        messages[name] = str(e.value).replace("request input", "input").replace("request: ", "")
    assert len(set(messages.values())) == 1, messages


def test_every_entry_point_accepts_alike(runners):
    rng = np.random.default_rng(0)
    feeds = {"a": rng.standard_normal((3, 6)),           # float64: converted
             "b": rng.integers(-3, 3, size=(3, 6))}       # int64: converted
    want = run_reference(_two_inputs(), {k: v.astype(np.float32)
                                                      for k, v in feeds.items()})
    for name, run in runners.items():
        got = run(feeds)
        got = got if isinstance(got, np.ndarray) else next(iter(got.values()))
        np.testing.assert_allclose(got, next(iter(want.values())), rtol=1e-5, atol=1e-5,
                                   err_msg=name)


def test_copy_past_the_memory_cap_is_refused_before_it_is_made():
    spec = InputSpec([IOInfo("x", (None, 8), np.dtype(np.float32))])
    huge = np.broadcast_to(np.ones(8, np.float64), (1 << 40, 8))   # a zero-stride view
    with pytest.raises(rt.ShapeError, match="too large"):
        spec.array(0, huge)
    called = []
    spec = InputSpec(spec.inputs, before_copy=called.append)
    x = np.ones((4, 8))
    assert spec.array(0, x).dtype == np.float32 and called and called[0] is x
    f32 = np.ones((4, 8), np.float32)
    assert spec.array(0, f32) is f32                 # float32 C-contiguous: no copy
