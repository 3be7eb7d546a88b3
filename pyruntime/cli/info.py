"""`pyruntime info`: the runtime, this CPU's features and ISA, the kernel of every table
entry, and the CUDA driver and devices if any (rt.info())."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("info", parents=parents, help="the runtime, CPU features, kernels, GPU",
                       description="Print what this runtime runs here: version, compiler, "
                                   "CPU features and the ISA chosen, the kernel of every "
                                   "entry of the kernel table, and CUDA devices if any.")
    p.add_argument("--json", action="store_true", help="print rt.info() as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..info import info
    i = info()
    if args.json:
        print(json.dumps(i, indent=1, default=str))
        return 0
    print(f"pyruntime {i['version']} ({i['compiler']}, {i['threading']}, "
          f"{i['max_threads']} threads)")
    print(f"CPU features: {' '.join(i['cpu_features'])}")
    print(f"ISA: {i['isa']} (best {i['best_isa']}; supported {', '.join(i['supported_isas'])})")
    print("kernels:")
    width = max(map(len, i["kernels"]))
    for entry, kernel in i["kernels"].items():
        print(f"  {entry:<{width}}  {kernel}")
    cuda = i.get("cuda") or {}
    devices = cuda.get("devices") or []
    if devices:
        print(f"CUDA: driver {cuda.get('driver')}, runtime {cuda.get('runtime')}, CuPy "
              f"{cuda.get('cupy')}, numba-cuda {cuda.get('numba_cuda')}")
        for d in devices:
            print(f"  {d}")
    else:
        print(f"CUDA: none ({cuda.get('error') or 'no device'})")
    return 0
