"""atheris target: rt.load over model-file bytes.

    python fuzz/fuzz_load.py [corpus_dir] [-atheris_runs=N | -max_total_time=S] [libFuzzer flags]

Property: rt.load returns a Graph or raises ModelFormatError / UnsupportedOpError; a
loaded graph compiles (or fails with a typed pyruntime.Error) and runs. When the first
byte is odd, the header CRC is repaired after mutation so the checks behind the checksum
(JSON schema, shapes, offsets, graph validity) get fuzzed too.
"""

from __future__ import annotations

import struct
import sys
import zlib

import atheris

with atheris.instrument_imports(include=["pyruntime"]):
    import common
    import pyruntime as rt
    from pyruntime import fileformat

_PREFIX = struct.Struct("<8sIIQII")


def repair_header_crc(b: bytes) -> bytes:
    if len(b) < _PREFIX.size:
        return b
    magic, ver, flags, hlen, _crc, res = _PREFIX.unpack_from(b)
    if hlen > len(b) - _PREFIX.size:
        return b
    h = b[_PREFIX.size:_PREFIX.size + hlen]
    return _PREFIX.pack(magic, ver, flags, hlen, zlib.crc32(h), res) + b[_PREFIX.size:]


def test_one_input(data: bytes) -> None:
    if not data:
        return
    body = data[1:]
    if data[0] & 1:
        body = repair_header_crc(body)
    try:
        g = rt.load(body)
    except (rt.ModelFormatError, rt.UnsupportedOpError):
        return
    common.use_graph(g)


def seeds() -> list[bytes]:
    return [b"\x01" + fileformat.dumps(g) for g in common.seed_models() + common.sparse_models()
            + common.quantized_models()]


if __name__ == "__main__":
    common.main(test_one_input, seeds)
