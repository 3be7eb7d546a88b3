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
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-50000}"; secs="${2:-60}"
dir="${FUZZ_DIR:-build/fuzz}"
py="$(command -v python3 || command -v python)"
mkdir -p "$dir"
if ! "$py" -c "import atheris" 2>/dev/null; then
  echo "fuzz: atheris is not installed (pip install atheris; Linux x86_64 wheels): skipped" >&2
  exit 0
fi
for t in load onnx run; do
  log="$dir/$t.log"
  args=("$dir/$t" "-max_total_time=$secs" "-seed=1" "-print_final_stats=1" "-artifact_prefix=$dir/"
        "-rss_limit_mb=4096")
  [ "$runs" -gt 0 ] && args+=("-atheris_runs=$runs")
  if ! "$py" "fuzz/fuzz_$t.py" "${args[@]}" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz $t: FAILED (log $log)" >&2
    exit 1
  fi
  n="$(grep -Eo '(Done|number_of_executed_units:) [0-9]+' "$log" | tail -n 1 | grep -Eo '[0-9]+$' || true)"
  echo "fuzz $t: ${n:-?} executions"
done
