#!/usr/bin/env bash
# The GPU check (issue 13), on a machine with an NVIDIA GPU where CuPy and numba-cuda are
# already installed and no package registry is reachable: install the project from this
# checkout (no downloads), run the GPU tests on the real device and bench/gpu.py, and
# write JSON and logs to OUT (default ./gpu-check). Meant to finish well inside 5 minutes.
#   tools/gpu_check.sh [OUT]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-gpu-check}}"
mkdir -p "$OUT"
export NUMBA_ENABLE_CUDASIM=0
python -m pip install -q --no-build-isolation --no-deps . > "$OUT/install.log" 2>&1
echo "install rc=$?" | tee "$OUT/summary.txt"
python -c "import json, pyruntime as rt; print(json.dumps(rt.info(), indent=1))" > "$OUT/info.json" 2>&1
# the Numba kernels on the real device (the CI runs them under the simulator), cuBLAS, and
# rt.compile(device="cuda") with CuPy and capture
timeout 240 python -m pytest -q -p no:cacheprovider tests/test_cuda_kernels.py tests/test_cuda_blas.py \
  tests/test_cuda_session.py > "$OUT/tests.log" 2>&1
echo "tests rc=$? $(tail -1 "$OUT/tests.log")" | tee -a "$OUT/summary.txt"
timeout 120 python tools/cuda_ptx_check.py > "$OUT/ptx.json" 2> "$OUT/ptx.err"
echo "ptx rc=$?" | tee -a "$OUT/summary.txt"
timeout 180 python bench/gpu.py --json "$OUT/gpu.json" > "$OUT/bench.log" 2>&1
echo "bench rc=$?" | tee -a "$OUT/summary.txt"
