"""rt.xla.export / load: a jax.export artifact for cpu+cuda+tpu with a symbolic batch,
loaded and run on this CPU, against the Session; platform, shape and file errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

jax = pytest.importorskip("jax")

import pyruntime as rt  # noqa: E402
from pyruntime import nn, xla  # noqa: E402
from pyruntime.xla.export import MAGIC  # noqa: E402


def small_cnn() -> rt.Graph:
    x = nn.Input((3, 10, 12), name="image")
    h = nn.Conv2D(8, 3, strides=2, padding="same", activation="relu", seed=1)(x)
    h = nn.BatchNorm(random_stats=True, seed=2)(h)
    r = h
    h = nn.DepthwiseConv2D(3, padding="same", activation="relu6", seed=3)(h)
    h = nn.Conv2D(8, 1, seed=4)(h)
    h = nn.Add()([h, r])
    h = nn.MaxPool2D(2, padding="same")(h)
    h = nn.Flatten()(h)
    y = nn.Dense(5, activation="softmax", seed=5)(h)
    return nn.Model(x, y, name="small_cnn").to_graph()


@pytest.fixture(scope="module")
def graph() -> rt.Graph:
    return rt.passes.optimize(small_cnn())


@pytest.fixture(scope="module")
def artifact(graph, tmp_path_factory):
    path = tmp_path_factory.mktemp("xla") / "model.pyrtx"
    xla.export(graph, path, platforms=("cpu", "cuda", "tpu"))
    return path


def test_round_trip_symbolic_batch(graph, artifact):
    model = xla.load(artifact)
    assert model.platforms == ("cpu", "cuda", "tpu")
    assert tuple(model.exported.platforms) == ("cpu", "cuda", "tpu")   # jax's own record
    assert model.inputs[0].shape == (None, 3, 10, 12)
    assert model.outputs[0].shape == (None, 5)
    assert jax.export.is_symbolic_dim(model.exported.in_avals[0].shape[0])
    assert len(model.exported.in_avals) == 1          # weights are inside, not arguments
    sess = rt.compile(graph, threads=1)
    rng = np.random.default_rng(0)
    for batch in (1, 4, 7):
        x = rng.standard_normal((batch, 3, 10, 12)).astype(np.float32)
        y = model(x)
        assert y.dtype == np.float32 and y.shape == (batch, 5)
        np.testing.assert_allclose(y, sess.run(x), rtol=2e-5, atol=2e-6)
    assert model.run({"image": x})[graph.outputs[0]].shape == (7, 5)
    assert model(np.zeros((0, 3, 10, 12), np.float32)).shape == (0, 5)
    assert model(x.astype(np.float64)).dtype == np.float32          # converted like Session


def test_artifact_file_is_self_contained(graph, artifact):
    data = artifact.read_bytes()
    assert data[:8] == MAGIC
    model = xla.load(data)                            # from bytes, no other file needed
    x = np.ones((2, 3, 10, 12), np.float32)
    np.testing.assert_allclose(model(x), rt.compile(graph, threads=1).run(x), rtol=2e-5,
                               atol=2e-6)
    assert b"pickle" not in data[:200]


def test_wrong_shapes_and_dtypes(artifact):
    model = xla.load(artifact)
    with pytest.raises(rt.ShapeError, match=r"expected shape \(None, 3, 10, 12\)"):
        model(np.ones((2, 3, 10, 11), np.float32))
    with pytest.raises(rt.ShapeError):
        model(np.ones((3, 10, 12), np.float32))
    with pytest.raises(rt.DTypeError):
        model(np.ones((1, 3, 10, 12), bool))
    with pytest.raises(rt.InputError, match="expected inputs"):
        model({"other": np.ones((1, 3, 10, 12), np.float32)})


def test_fixed_batch(graph, tmp_path):
    path = tmp_path / "fixed.pyrtx"
    xla.export(graph, path, platforms=("cpu",), batch=4)
    model = xla.load(path)
    assert model.inputs[0].shape == (4, 3, 10, 12) and model.batch == 4
    x = np.random.default_rng(1).standard_normal((4, 3, 10, 12)).astype(np.float32)
    np.testing.assert_allclose(model(x), rt.compile(graph, threads=1).run(x), rtol=2e-5,
                               atol=2e-6)
    with pytest.raises(rt.ShapeError, match=r"expected shape \(4, 3, 10, 12\)"):
        model(x[:3])


def test_wrong_platform(graph, tmp_path):
    path = tmp_path / "tpu_only.pyrtx"
    xla.export(graph, path, platforms=("tpu",))
    with pytest.raises(xla.PlatformError, match="lowered for \\('tpu',\\).*'cpu'"):
        xla.load(path)
    model = xla.load(path, check_platform=False)     # inspecting is fine
    assert model.platforms == ("tpu",)
    with pytest.raises(xla.PlatformError):
        model(np.ones((1, 3, 10, 12), np.float32))
    assert issubclass(xla.PlatformError, rt.Error)
    for bad in (("gpu",), ("cpu", "cpu"), (), "metal"):
        with pytest.raises(xla.PlatformError):
            xla.export(graph, tmp_path / "x.pyrtx", platforms=bad)
    with pytest.raises(rt.InputError):
        xla.export(graph, tmp_path / "x.pyrtx", batch=0)


def test_corrupt_and_foreign_files(graph, artifact, tmp_path):
    data = artifact.read_bytes()
    for bad, what in [(data[:20], "too short"), (data[:-1], "truncated"),
                      (data[:-5] + b"xxxxx", "checksum"), (b"\x00" * 64, "not a pyruntime XLA")]:
        with pytest.raises(rt.ModelFormatError, match=what):
            xla.load(bad)
    rt.save(graph, tmp_path / "m.pyrt")
    with pytest.raises(rt.ModelFormatError, match="rt.load"):
        xla.load(tmp_path / "m.pyrt")


def test_multi_input_output(tmp_path):
    a = nn.Input((6,), name="a")
    b = nn.Input((6,), name="b")
    s = nn.Add()([nn.Dense(6, seed=1)(a), b])
    t = nn.Dense(3, activation="tanh", seed=2)(s)
    g = nn.Model([a, b], [s, t], name="two").to_graph()
    xla.export(g, tmp_path / "two.pyrtx", platforms=("cpu", "tpu"))
    model = xla.load(tmp_path / "two.pyrtx")
    rng = np.random.default_rng(2)
    feeds = {"a": rng.standard_normal((3, 6)).astype(np.float32),
             "b": rng.standard_normal((3, 6)).astype(np.float32)}
    got, want = model(feeds), rt.compile(g, threads=1).run(feeds)
    assert list(got) == g.outputs
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=2e-5, atol=2e-6)
    with pytest.raises(rt.ShapeError, match="same batch size"):
        model({"a": feeds["a"], "b": feeds["b"][:2]})
    with pytest.raises(rt.InputError, match="pass a dict"):
        model(feeds["a"])


def test_missing_jax_gives_clear_error(monkeypatch, graph, tmp_path):
    monkeypatch.setitem(sys.modules, "jax", None)     # `import jax` now raises ImportError
    with pytest.raises(rt.MissingDependencyError, match=r"pyruntime\[xla\]"):
        xla.lower(graph)
    with pytest.raises(rt.MissingDependencyError, match=r"pyruntime\[xla\]"):
        xla.export(graph, tmp_path / "m.pyrtx")


def test_modules_import_without_jax():
    """pyruntime.xla and pyruntime.train import with JAX absent; calls then name the extra."""
    from conftest import run_python
    code = ("import sys; sys.modules['jax'] = None; sys.modules['optax'] = None\n"
            "import pyruntime as rt, pyruntime.xla, pyruntime.train\n"
            "assert 'jax' not in {k for k, v in sys.modules.items() if v is not None}\n"
            "try:\n    pyruntime.train.distill(None, None, None)\n"
            "except rt.MissingDependencyError as e:\n    print(e)\n")
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    assert "pip install pyruntime[xla]" in out.stdout
