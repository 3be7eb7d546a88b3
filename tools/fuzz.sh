#!/usr/bin/env bash
# Bounded coverage-guided fuzz runs of the three atheris targets (fuzz/): rt.load (model
# bytes), rt.load_onnx (ONNX bytes), Session.run (shapes/dtypes/strides).
#
#   tools/fuzz.sh [RUNS] [SECONDS]     each target: at most RUNS executions / SECONDS
#                                      (defaults 50000 / 60: the CI size)
#   tools/fuzz.sh 0 3600               the long run: an hour per target, no run limit
#
# Corpora persist in $FUZZ_DIR (default build/fuzz/<target>); a crash writes its input to
# $FUZZ_DIR/crash-* and fails the script. Replay one: python fuzz/fuzz_load.py <file>.
# Prints one "fuzz <target>: <executions> executions" line per target.
#
# Fails closed: a target that stopped before RUNS executions without spending its time
# budget, or whose execution count is missing from its log, fails the script; so does a
# missing atheris, unless PYRUNTIME_LANES_MAY_SKIP=1 (then SKIPPED, exit 0; CI never
# sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-50000}"; secs="${2:-60}"
dir="${FUZZ_DIR:-build/fuzz}"
py="$(command -v python3 || command -v python)"
mkdir -p "$dir"
if ! "$py" -c "import atheris" 2>/dev/null; then
  if [ "${PYRUNTIME_LANES_MAY_SKIP:-0}" = 1 ]; then
    echo "fuzz: atheris is not installed (pip install atheris; Linux x86_64 wheels): SKIPPED (PYRUNTIME_LANES_MAY_SKIP=1)" >&2
    exit 0
  fi
  echo "fuzz: atheris is not installed (pip install atheris; Linux x86_64 wheels): FAILED (set PYRUNTIME_LANES_MAY_SKIP=1 to skip on purpose)" >&2
  exit 1
fi
[ "$runs" -gt 0 ] || [ "$secs" -gt 0 ] || { echo "fuzz: RUNS or SECONDS must be > 0" >&2; exit 2; }
for t in load onnx run; do
  log="$dir/$t.log"
  args=("$dir/$t" "-max_total_time=$secs" "-seed=1" "-print_final_stats=1" "-artifact_prefix=$dir/"
        "-rss_limit_mb=4096")
  [ "$runs" -gt 0 ] && args+=("-atheris_runs=$runs")
  t0="$(date +%s.%N)"
  if ! "$py" "fuzz/fuzz_$t.py" "${args[@]}" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz $t: FAILED (log $log)" >&2
    exit 1
  fi
  elapsed="$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
  n="$(grep -Eo '(Done|number_of_executed_units:) [0-9]+' "$log" | tail -n 1 | grep -Eo '[0-9]+$' || true)"
  if [ -z "$n" ]; then
    tail -n 20 "$log" >&2
    echo "fuzz $t: FAILED: no execution count in its log ($log)" >&2
    exit 1
  fi
  # Done means RUNS executions, or the whole time budget spent (libFuzzer stops once
  # SECONDS have passed since it started, which is after this process started).
  if { [ "$runs" -eq 0 ] || [ "$n" -lt "$runs" ]; } &&
     ! awk -v e="$elapsed" -v s="$secs" 'BEGIN { exit !(s > 0 && e >= s) }'; then
    tail -n 20 "$log" >&2
    echo "fuzz $t: FAILED: $n executions in ${elapsed} s, fewer than the $runs asked for and under the ${secs} s budget (log $log)" >&2
    exit 1
  fi
  echo "fuzz $t: $n executions in ${elapsed} s"
done
