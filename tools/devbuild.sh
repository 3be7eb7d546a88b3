#!/usr/bin/env bash
# Developer build: compile pyruntime._core into build/dev and copy it into pyruntime/,
# so `PYTHONPATH=$PWD pytest` tests the source tree. Usage: tools/devbuild.sh [extra cmake args]
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build/dev -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -Dpybind11_DIR="$(python -m pybind11 --cmakedir)" -DPython_EXECUTABLE="$(command -v python)" "$@" >/dev/null
cmake --build build/dev -j2
# Replace atomically (new inode): overwriting the file in place would change the code
# under any Python process that has the old one loaded (a running test, a fuzzer).
for so in build/dev/_core*.so; do
  cp "$so" "pyruntime/.$(basename "$so").tmp" && mv -f "pyruntime/.$(basename "$so").tmp" "pyruntime/$(basename "$so")"
done
