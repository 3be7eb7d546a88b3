"""atheris target: rt.load_onnx over ONNX bytes (seeded with small valid models).

    python fuzz/fuzz_onnx.py [corpus_dir] [-atheris_runs=N | -max_total_time=S]

Property: load_onnx returns a Graph or raises a typed pyruntime.Error (never a protobuf,
onnx or numpy exception, never a crash); a loaded graph compiles (or fails typed) and runs.
"""

from __future__ import annotations

import atheris

with atheris.instrument_imports(include=["pyruntime"]):
    import common
    import pyruntime as rt


def test_one_input(data: bytes) -> None:
    try:
        g = rt.load_onnx(data)
    except rt.Error:
        return
    common.use_graph(g)


if __name__ == "__main__":
    common.main(test_one_input, common.onnx_seeds)
