"""`pyruntime serve --ray`: the Ray Serve deployment on a local single-node Ray that the
server process starts (no dashboard, RAY_AUTH_MODE=disabled), answering a real v2 infer
request over HTTP from httpx (JSON) and tritonclient (binary). Skipped without ray."""

from __future__ import annotations

import numpy as np
import pytest

import pyruntime as rt

pytest.importorskip("ray.serve", reason="ray[serve] is not installed (extra `ray`)")
httpx = pytest.importorskip("httpx")
th = pytest.importorskip("tritonclient.http")

from serve_helpers import free_port, running_server  # noqa: E402


def test_ray_serve_answers_v2_infer(tmp_path):
    rt.save(rt.zoo.mlp(), tmp_path / "mlp.pyrt")
    env = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_DISABLE_DOCKER_CPU_WARNING": "1"}
    x = np.random.default_rng(0).standard_normal((2, 784)).astype(np.float32)
    want = rt.compile(rt.zoo.mlp(), threads=1).run(x)
    with running_server(str(tmp_path / "mlp.pyrt"), "--ray", "--max-batch-size", "8",
                        port=free_port(), env=env, startup_s=240, stop_s=60) as s:
        r = httpx.post(f"{s.url}/v2/models/mlp/infer", timeout=60, json={
            "inputs": [{"name": "input", "shape": [2, 784], "datatype": "FP32",
                        "data": x.ravel().tolist()}]})
        assert r.status_code == 200, r.text
        out = r.json()["outputs"][0]
        assert out["shape"] == [2, 10]
        np.testing.assert_allclose(np.array(out["data"]).reshape(2, 10), want, rtol=1e-5,
                                   atol=1e-5)
        c = th.InferenceServerClient(s.host_port, network_timeout=60)
        assert c.get_model_metadata("mlp")["inputs"][0]["shape"] == [-1, 784]
        i = th.InferInput("input", [2, 784], "FP32")
        i.set_data_from_numpy(x)
        got = c.infer("mlp", [i]).as_numpy(out["name"])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        bad = httpx.post(f"{s.url}/v2/models/mlp/infer", timeout=60, json={
            "inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32",
                        "data": [1, 2, 3]}]})
        assert bad.status_code == 400 and "expected shape" in bad.json()["error"]
        s.proc.terminate()
        assert s.proc.wait(60) == 0, s.read_rest(5)
