"""`pyruntime serve`: the KServe v2 HTTP server in a subprocess on a free loopback port,
talked to with Triton's own client (tritonclient.http) and, for the error cases, httpx.
Every server is stopped however a test ends; every wait is bounded."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import pyruntime as rt

httpx = pytest.importorskip("httpx")
th = pytest.importorskip("tritonclient.http")
pytest.importorskip("uvicorn")
pytest.importorskip("starlette")
pytest.importorskip("prometheus_client")
pytest.importorskip("onnx")

from serve_helpers import running_server  # noqa: E402

H = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("models")
    rt.save(rt.zoo.mlp(), d / "mlp.pyrt")
    rt.to_onnx(rt.zoo.mlp((8, 6, 3), seed=1), str(d / "small.onnx"))
    return d


@pytest.fixture(scope="module")
def server(model_dir):
    with running_server(str(model_dir), "--replicas", "1", "--threads-per-replica", "1",
                        "--max-request-mb", "1") as s:
        yield s


def _metric(url: str, name: str, **labels: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            got = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
            if all(got.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return float("nan")


def _wait_metric(url: str, name: str, want: float, timeout: float = 20.0, **labels) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if _metric(url, name, **labels) >= want:
            return
        time.sleep(0.02)
    raise AssertionError(f"{name}{labels} did not reach {want} within {timeout} s")


def test_tritonclient_health_metadata_and_infer(server, model_dir):
    c = th.InferenceServerClient(server.host_port, network_timeout=30)
    assert c.is_server_live() and c.is_server_ready()
    assert c.is_model_ready("mlp") and c.is_model_ready("small")
    meta = c.get_model_metadata("mlp")
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 784]}]
    assert meta["outputs"][0]["shape"] == [-1, 10]
    x = np.random.default_rng(0).standard_normal((3, 784)).astype(np.float32)
    want = rt.compile(rt.load(model_dir / "mlp.pyrt"), threads=1).run(x)
    out_name = meta["outputs"][0]["name"]
    for binary in (True, False):                    # binary tensor extension, then JSON
        i = th.InferInput("input", list(x.shape), "FP32")
        i.set_data_from_numpy(x, binary_data=binary)
        o = th.InferRequestedOutput(out_name, binary_data=binary)
        r = c.infer("mlp", [i], outputs=[o], request_id="r7")
        np.testing.assert_allclose(r.as_numpy(out_name), want, rtol=1e-5, atol=1e-5)
        assert r.get_response()["id"] == "r7"
    # The ONNX model of the same folder, no outputs named (all come back binary).
    xs = np.ones((2, 8), np.float32)
    i = th.InferInput(c.get_model_metadata("small")["inputs"][0]["name"], [2, 8], "FP32")
    i.set_data_from_numpy(xs)
    r = c.infer("small", [i])
    g = rt.load_onnx(str(model_dir / "small.onnx"))
    name = g.outputs[0]
    np.testing.assert_allclose(r.as_numpy(name), rt.compile(g).run(xs), rtol=1e-5, atol=1e-5)


def test_json_infer_with_plain_http(server):
    body = {"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32",
                        "data": [0.5] * 784}]}
    r = httpx.post(f"{server.url}/v2/models/mlp/infer", json=body, timeout=30)
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["shape"] == [1, 10] and out["datatype"] == "FP32" and len(out["data"]) == 10


def _bad(url: str, path: str, content: bytes, headers: dict | None = None) -> httpx.Response:
    return httpx.post(url + path, content=content, headers=headers or H, timeout=30)


def _inp(**kw) -> bytes:
    t = {"name": "input", "shape": [1, 784], "datatype": "FP32", "data": [0.0] * 784}
    t.update(kw)
    return json.dumps({"inputs": [t]}).encode()


@pytest.mark.parametrize("case,content,headers,status,says", [
    ("malformed JSON", b'{"inputs": [', None, 400, "JSON"),
    ("not an object", b"[1, 2]", None, 400, "expected a JSON object"),
    ("nested too deep", b"[" * 100000 + b"]" * 100000, None, 400, "malformed JSON"),
    ("not UTF-8", b'{"inputs": "\xff"}', None, 400, "malformed JSON"),
    ("data not numbers", _inp(data=["a"] * 784), None, 400, "expected numbers"),
    ("binary header not an integer", _inp(), {"Inference-Header-Content-Length": "x"}, 400,
     "expected an integer"),
    ("binary header past the body", _inp(), {"Inference-Header-Content-Length": "999999"},
     400, "expected 1.."),
    ("binary size wrong", _inp(data=None) .replace(b'"data": null', b'"parameters": '
                                                  b'{"binary_data_size": 12}'), None, 400,
     "binary_data_size 3136"),
    ("wrong datatype", _inp(datatype="INT64"), None, 400, "expected datatype FP32"),
    ("wrong shape", _inp(shape=[1, 783]), None, 400, "expected shape [-1, 784]"),
    ("data count", _inp(data=[1.0, 2.0]), None, 400, "expected 784 values"),
    ("unknown input", _inp(name="image"), None, 400, "expected one of ['input']"),
    ("no inputs", b'{"inputs": []}', None, 400, "non-empty list"),
    ("unknown output", _inp()[:-1] + b', "outputs": [{"name": "nope"}]}', None, 400,
     "unknown output 'nope'"),
    ("bad timeout", _inp()[:-1] + b', "parameters": {"timeout": -1}}', None, 400,
     "positive number of microseconds"),
])
def test_bad_requests_get_400_saying_what_was_expected(server, case, content, headers, status,
                                                       says):
    r = _bad(server.url, "/v2/models/mlp/infer", content, headers)
    assert r.status_code == status, (case, r.text)
    assert says in r.json()["error"], (case, r.json())


def test_unknown_model_404_and_oversized_body_413(server):
    r = _bad(server.url, "/v2/models/nope/infer", _inp())
    assert r.status_code == 404 and "unknown model 'nope'" in r.json()["error"]
    assert "mlp" in r.json()["error"]
    r = httpx.get(f"{server.url}/v2/models/nope", timeout=10)
    assert r.status_code == 404 and "expected one of" in r.json()["error"]
    r = httpx.get(f"{server.url}/v3/whatever", timeout=10)
    assert r.status_code == 404 and "expected /v2" in r.json()["error"]
    big = np.zeros((400, 784), np.float32)        # 1.25 MB > --max-request-mb 1
    r = _bad(server.url, "/v2/models/mlp/infer",
             json.dumps({"inputs": [{"name": "input", "shape": [400, 784], "datatype": "FP32",
                                     "parameters": {"binary_data_size": big.nbytes}}]}
                        ).encode() + big.tobytes())
    assert r.status_code == 413 and "expected at most 1048576 bytes" in r.json()["error"]


def test_client_disconnect_mid_body_costs_nobody(server):
    before = _metric(server.url, "pyruntime_requests_total", model="mlp",
                     outcome="disconnected")
    host, port = server.host_port.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
                  b'{"inputs": [')
    _wait_metric(server.url, "pyruntime_requests_total", before + 1, model="mlp",
                 outcome="disconnected")
    r = httpx.post(f"{server.url}/v2/models/mlp/infer", content=_inp(), headers=H, timeout=30)
    assert r.status_code == 200


def test_metrics_by_model_outcome_and_replica(server):
    httpx.post(f"{server.url}/v2/models/mlp/infer", content=_inp(), headers=H, timeout=30)
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert _metric(server.url, "pyruntime_requests_total", model="mlp", outcome="ok") >= 1
    for name in ("pyruntime_request_seconds_bucket", "pyruntime_queue_seconds_bucket",
                 "pyruntime_compute_seconds_bucket", "pyruntime_batch_rows_bucket"):
        assert name in text, name
    assert _metric(server.url, "pyruntime_batch_rows_count", model="mlp", replica="0") >= 1
    assert _metric(server.url, "pyruntime_replica_in_service", model="mlp", replica="0") == 1


@pytest.fixture(scope="module")
def wide_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("wide")
    rt.save(rt.zoo.mlp((1024, 2048, 2048, 10)), d / "wide.pyrt")
    return d


def _post_rows(url: str, rows: int, timeout_us: int | None = None) -> httpx.Response:
    x = np.ones((rows, 1024), np.float32)
    head = {"inputs": [{"name": "input", "shape": [rows, 1024], "datatype": "FP32",
                        "parameters": {"binary_data_size": x.nbytes}}],
            "parameters": {"binary_data_output": True}}
    if timeout_us is not None:
        head["parameters"]["timeout"] = timeout_us
    j = json.dumps(head).encode()
    return httpx.post(f"{url}/v2/models/wide/infer", content=j + x.tobytes(),
                      headers={"Inference-Header-Content-Length": str(len(j)),
                               "Content-Type": "application/octet-stream"}, timeout=120)


class _Bg:
    """One request in a thread; its response or error, joined with a bound."""

    def __init__(self, fn, *args) -> None:
        self.result: object = None
        self.t = threading.Thread(target=self._run, args=(fn, args), daemon=True)
        self.t.start()

    def _run(self, fn, args) -> None:
        try:
            self.result = fn(*args)
        except Exception as e:  # reported by get()
            self.result = e

    def get(self, timeout: float = 120) -> httpx.Response:
        self.t.join(timeout)
        assert not self.t.is_alive(), "request did not finish"
        assert isinstance(self.result, httpx.Response), self.result
        return self.result


def test_full_queue_503_at_once_and_timeout_504(wide_dir):
    with running_server(str(wide_dir / "wide.pyrt"), "--replicas", "1",
                        "--threads-per-replica", "1", "--max-queue", "1",
                        "--max-batch-size", "4") as s:
        running = dict(model="wide")
        a = _Bg(_post_rows, s.url, 4096)                   # a long batch on the one replica
        _wait_metric(s.url, "pyruntime_running_batches", 1, **running)
        b = _Bg(_post_rows, s.url, 1)                      # waits: the queue is now full
        _wait_metric(s.url, "pyruntime_queued_requests", 1, **running)
        r = _post_rows(s.url, 1)
        assert r.status_code == 503 and "queue full" in r.json()["error"]
        assert a.get().status_code == 200 and b.get().status_code == 200
        a = _Bg(_post_rows, s.url, 4096)
        _wait_metric(s.url, "pyruntime_running_batches", 1, **running)
        r = _post_rows(s.url, 1, timeout_us=1000)          # 1 ms: passes while it waits
        assert r.status_code == 504, r.text
        assert a.get().status_code == 200
        assert _metric(s.url, "pyruntime_requests_total", model="wide", outcome="timeout") == 1
        assert _metric(s.url, "pyruntime_requests_total", model="wide",
                       outcome="overloaded") == 1
        # A client that sends a whole request and leaves while it waits: cancelled, never
        # computed (the replica's rows are the served requests' alone).
        a = _Bg(_post_rows, s.url, 4096)
        _wait_metric(s.url, "pyruntime_running_batches", 1, **running)
        x = np.ones((1, 1024), np.float32)
        head = json.dumps({"inputs": [{"name": "input", "shape": [1, 1024],
                                       "datatype": "FP32", "data": x.ravel().tolist()}]})
        host, port = s.host_port.split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(f"POST /v2/models/wide/infer HTTP/1.1\r\nHost: x\r\nContent-Type: "
                         f"application/json\r\nContent-Length: {len(head)}\r\n\r\n{head}"
                         .encode())
            _wait_metric(s.url, "pyruntime_queued_requests", 1, **running)
        _wait_metric(s.url, "pyruntime_requests_total", 1, model="wide",
                     outcome="disconnected")
        assert a.get().status_code == 200
        _wait_metric(s.url, "pyruntime_batches_total", 4, model="wide", replica="0")
        assert _metric(s.url, "pyruntime_rows_total", model="wide", replica="0") == 3 * 4096 + 1
        assert s.proc.poll() is None


def test_sigterm_drains_in_flight_and_exits_0(wide_dir):
    with running_server(str(wide_dir / "wide.pyrt"), "--replicas", "1",
                        "--threads-per-replica", "1") as s:
        a = _Bg(_post_rows, s.url, 4096)
        _wait_metric(s.url, "pyruntime_running_batches", 1, model="wide")
        s.proc.terminate()
        r = a.get()
        assert r.status_code == 200                     # in flight: finished, not dropped
        assert s.proc.wait(30) == 0, s.read_rest(5)
        assert "balancers closed" in s.read_rest(10)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{s.url}/v2/health/live", timeout=5)


def test_cli_exit_codes(tmp_path, capsys, monkeypatch):
    from pyruntime.cli.main import main
    with pytest.raises(SystemExit) as e:
        main(["serve", "m.pyrt", "--replicas", "0"])
    assert e.value.code == 2 and "expected an integer >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["serve", "m.pyrt", "--device", "tpu"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err
    assert main(["serve", str(tmp_path / "missing.pyrt")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file" in err and "Traceback" not in err
    (tmp_path / "bad.pyrt").write_bytes(b"not a model")
    assert main(["serve", str(tmp_path / "bad.pyrt"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ModelFormatError" in err
    rt.save(rt.zoo.mlp((4, 2)), tmp_path / "m.pyrt")
    # the real device path (other test files turn on Numba's CUDA simulator in-process)
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "0")
    try:
        rt.compile(rt.zoo.mlp((4, 2)), device="cuda")
    except rt.Error:            # no CUDA here: a clean exit 1, one line, no traceback
        assert main(["serve", str(tmp_path / "m.pyrt"), "--device", "cuda"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "cuda" in err and "Traceback" not in err
        assert main(["serve", str(tmp_path / "m.pyrt"), "--device", "cuda", "--debug"]) == 1
        assert "Traceback" in capsys.readouterr().err
