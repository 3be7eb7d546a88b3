#!/usr/bin/env bash
# Sanitizer lane: build pyruntime._core with sanitizers into build/<kind> and run tests
# against a staging copy of the package there, so the normal dev build is never touched.
#
#   tools/sanitize.sh [asan|tsan] [pytest args...]
#     asan (default): -fsanitize=address,undefined, UBSan non-recoverable, every report
#                     fatal (halt_on_error), leak checking off (CPython "leaks" by design).
#     tsan:           -fsanitize=thread (see README "Reliability" for what TSan can and
#                     cannot say about an OpenMP + CPython process).
#   Default pytest args: the kernel, executor (session/concurrency/stress), loader and
#   bad-input tests. Exit status is pytest's; any sanitizer report aborts the process.
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-asan}"; shift || true
case "$kind" in
  asan) flags="address,undefined" ;;
  tsan) flags="thread" ;;  # OpenMP off unless PYRUNTIME_TSAN_OPENMP=1 (see below)
  *) echo "usage: tools/sanitize.sh [asan|tsan] [pytest args...]" >&2; exit 2 ;;
esac
bdir="build/$kind"
# The real interpreter, not a launcher script (pyenv's shims crash under LD_PRELOADed TSan).
py="$("$(command -v python3 || command -v python)" -c 'import sys; print(sys.executable)')"
extra=()
# libgomp is not TSan-instrumented: its barriers are invisible to TSan, so every OpenMP
# parallel region reports false races. The TSan lane therefore builds without OpenMP
# (steps run serially) and checks the executor's own shared state across Python threads.
if [ "$kind" = tsan ] && [ "${PYRUNTIME_TSAN_OPENMP:-0}" != 1 ]; then
  extra+=(-DCMAKE_DISABLE_FIND_PACKAGE_OpenMP=ON)
elif [ "$kind" = tsan ]; then
  bdir="build/tsan-omp"
fi
# -O1 -g1: the usual sanitizer trade-off (fast enough to run the tests, line numbers in
# reports) at about half the compile time of -O2 -g; asserts stay on (no -DNDEBUG).
cmake -S . -B "$bdir" -G Ninja -DCMAKE_BUILD_TYPE=Sanitize -DCMAKE_CXX_FLAGS_SANITIZE="-O1 -g1" \
  -DPYRUNTIME_SANITIZE="$flags" "${extra[@]}" \
  -Dpybind11_DIR="$("$py" -m pybind11 --cmakedir)" -DPython_EXECUTABLE="$py" >/dev/null
cmake --build "$bdir" -j"$(nproc)"
stage="$bdir/stage"
rm -rf "$stage" && mkdir -p "$stage"
cp -r pyruntime tests "$stage"/
rm -f "$stage"/pyruntime/_core*.so
cp "$bdir"/_core*.so "$stage"/pyruntime/
[ -f pyproject.toml ] && cp pyproject.toml "$stage"/

if [ "$kind" = asan ]; then
  export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
  export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:allocator_may_return_null=1:detect_stack_use_after_return=0:${ASAN_OPTIONS:-}"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}"
else
  export LD_PRELOAD="$(gcc -print-file-name=libtsan.so)"
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:${TSAN_OPTIONS:-}"
fi
runner=()
if [ "$kind" = tsan ] && ! "$py" -c pass 2>/dev/null; then
  # GCC's TSan cannot map its shadow memory under high ASLR entropy (newer kernels'
  # vm.mmap_rnd_bits): retry without address randomisation, else say so and skip.
  if setarch "$(uname -m)" -R "$py" -c pass 2>/dev/null; then
    runner=(setarch "$(uname -m)" -R)
  else
    echo "tools/sanitize.sh: ThreadSanitizer cannot start a Python process here: TSan lane skipped" >&2
    exit 0
  fi
fi
if [ "$#" -eq 0 ] && [ "$kind" = tsan ]; then
  set -- tests/test_concurrency.py tests/test_stress_*.py tests/test_serve_native.py
elif [ "$#" -eq 0 ]; then
  # Every kernel test file (tests/test_kernels_*.py: new kernels land here automatically),
  # the CPU plan's own steps (tests/test_cpu_*.py: fused blocks, planar depthwise,
  # layout transposes), the executor (session, concurrency, stress), the native serving
  # engine, the loaders and the bad inputs/fuzzing.
  set -- $(cd "$stage" && ls tests/test_kernels_*.py tests/test_cpu_*.py) tests/test_session.py \
         tests/test_concurrency.py tests/test_stress_*.py tests/test_serve_native.py \
         tests/test_fileformat.py \
         tests/test_onnx_import.py tests/test_bad_inputs.py tests/test_fuzz_*.py
fi
cd "$stage"
# The staged package (with the sanitized _core) comes first on the path; -p no:cacheprovider
# keeps the stage read-only apart from our own files.
export PYTHONPATH="$PWD"
export PYRUNTIME_SANITIZED="$kind"
exec ${runner[@]+"${runner[@]}"} "$py" -m pytest -q -p no:cacheprovider -x "$@"
