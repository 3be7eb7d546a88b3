#!/usr/bin/env bash
# Sanitizer lane: build pyruntime._core with sanitizers into build/<kind> and run tests
# against a staging copy of the package there, so the normal dev build is never touched.
#
#   tools/sanitize.sh [asan|tsan] [pytest args...]
#     asan (default): -fsanitize=address,undefined, UBSan non-recoverable, every report
#                     fatal (halt_on_error), leak checking off (CPython "leaks" by design).
#     tsan:           -fsanitize=thread over the worker pool, concurrency and stress tests
#                     (see README "Reliability").
#   PYRUNTIME_SANITIZE_OPT: the optimization flags (default -O1 -g1);
#   PYRUNTIME_SANITIZE_JOBS: build jobs (default nproc); PYRUNTIME_SANITIZE_BUILD_ONLY=1:
#   build the lane's _core and stop.
#   Default pytest args: the kernel, executor (session/concurrency/stress), loader and
#   bad-input tests. Exit status is pytest's; any sanitizer report aborts the process.
#   A lane that cannot run (TSan cannot start Python) exits 1, never 0, unless
#   PYRUNTIME_LANES_MAY_SKIP=1 (then it says SKIPPED and exits 0). CI never sets it.
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-asan}"; shift || true
case "$kind" in
  asan) flags="address,undefined" ;;
  tsan) flags="thread" ;;
  *) echo "usage: tools/sanitize.sh [asan|tsan] [pytest args...]" >&2; exit 2 ;;
esac
bdir="build/$kind"
# The real interpreter, not a launcher script (pyenv's shims crash under LD_PRELOADed TSan).
py="$("$(command -v python3 || command -v python)" -c 'import sys; print(sys.executable)')"
# The runtime's threads are its own worker pool (cpp/runtime/threadpool.cpp: std::thread,
# atomics, a mutex and condition variable per worker), which TSan sees in full; there is
# no OpenMP (whose uninstrumented barriers made every region a false report).
# Whether TSan can start Python at all, before spending minutes on the build.
runner=()
tsan_lib="$(gcc -print-file-name=libtsan.so)"
if [ "$kind" = tsan ] && ! LD_PRELOAD="$tsan_lib" "$py" -c pass 2>/dev/null; then
  # GCC's TSan cannot map its shadow memory under high ASLR entropy (newer kernels'
  # vm.mmap_rnd_bits): retry without address randomisation, else say so and fail (or skip, if allowed).
  if LD_PRELOAD="$tsan_lib" setarch "$(uname -m)" -R "$py" -c pass 2>/dev/null; then
    runner=(setarch "$(uname -m)" -R)
  else
    # Fail closed: a lane that did not run is a failure (CI relies on it), unless the
    # caller allows skipping (a developer's machine where TSan cannot work).
    if [ "${PYRUNTIME_LANES_MAY_SKIP:-0}" = 1 ]; then
      echo "tools/sanitize.sh: ThreadSanitizer cannot start a Python process here (even with setarch -R): TSan lane SKIPPED (PYRUNTIME_LANES_MAY_SKIP=1)" >&2
      exit 0
    fi
    echo "tools/sanitize.sh: ThreadSanitizer cannot start a Python process here (even with setarch -R): TSan lane FAILED (set PYRUNTIME_LANES_MAY_SKIP=1 to skip it on purpose)" >&2
    LD_PRELOAD="$tsan_lib" "$py" -c pass || true   # show TSan's own message
    exit 1
  fi
fi
# -O1 -g1: the usual sanitizer trade-off (fast enough to run the tests, line numbers in
# reports) at about half the compile time of -O2 -g; asserts stay on (no -DNDEBUG).
# PYRUNTIME_SANITIZE_OPT overrides it (CI builds the TSan lane, 10 s of tests, at -O0 -g1:
# about half the compile time again).
cmake -S . -B "$bdir" -G Ninja -DCMAKE_BUILD_TYPE=Sanitize \
  -DCMAKE_CXX_FLAGS_SANITIZE="${PYRUNTIME_SANITIZE_OPT:--O1 -g1}" \
  -DPYRUNTIME_SANITIZE="$flags" \
  -Dpybind11_DIR="$("$py" -m pybind11 --cmakedir)" -DPython_EXECUTABLE="$py" >/dev/null
cmake --build "$bdir" -j"${PYRUNTIME_SANITIZE_JOBS:-$(nproc)}"
# PYRUNTIME_SANITIZE_BUILD_ONLY=1: stop here (.ci/run builds a lane on one core while
# the tests of another run on the other, then runs this script again: the build is then
# a no-op).
[ "${PYRUNTIME_SANITIZE_BUILD_ONLY:-0}" = 1 ] && exit 0
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
  export LD_PRELOAD="$tsan_lib"
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:${TSAN_OPTIONS:-}"
fi
if [ "$#" -eq 0 ] && [ "$kind" = tsan ]; then
  set -- tests/test_threadpool.py tests/test_concurrency.py tests/test_stress_*.py \
         tests/test_serve_native.py
elif [ "$#" -eq 0 ]; then
  # Every kernel test file (tests/test_kernels_*.py: new kernels land here automatically),
  # the CPU plan's own steps (tests/test_cpu_*.py: fused blocks, planar depthwise,
  # layout transposes), the executor (session, concurrency, stress), the native serving
  # engine, the loaders (weight formats included) and the bad inputs/fuzzing.
  set -- $(cd "$stage" && ls tests/test_kernels_*.py tests/test_cpu_*.py) tests/test_session.py \
         tests/test_threadpool.py tests/test_concurrency.py tests/test_stress_*.py \
         tests/test_serve_native.py tests/test_fileformat.py tests/test_formats.py \
         tests/test_onnx_import.py tests/test_bad_inputs.py tests/test_fuzz_*.py
fi
cd "$stage"
# The staged package (with the sanitized _core) comes first on the path; -p no:cacheprovider
# keeps the stage read-only apart from our own files.
export PYTHONPATH="$PWD"
export PYRUNTIME_SANITIZED="$kind"
exec ${runner[@]+"${runner[@]}"} "$py" -m pytest -q -p no:cacheprovider -x "$@"
