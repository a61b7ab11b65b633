#!/usr/bin/env bash
# Runs every benchmark and writes benches/RESULTS.md: the criterion groups
# (bus vs peers), heap per retained event, heap allocations per request,
# and the HTTP overhead runs.
#   benches/run.sh            # everything
#   QUICK=1 benches/run.sh    # shorter criterion runs
#   SKIP_HTTP=1 benches/run.sh
#   REPORT=/tmp/r.md benches/run.sh   # write the report elsewhere
# Fails as soon as a bench fails (its log is shown). The report uses only
# what this run measured: criterion estimates older than the run are left
# out, and it names the run (date, commit, machine).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target"
extra=()
if [ "${QUICK:-0}" = 1 ]; then
    extra=(--warm-up-time 1 --measurement-time 2)
fi
BENCH_RUN_STARTED=$(date +%s)
export BENCH_RUN_STARTED
rm -f "$target/memory.txt" "$target/alloc.txt" "$target/http.txt"

# One criterion bench: its output goes to a log; the summary lines are shown.
criterion() {
    local log="$target/bench-$1.log"
    if ! cargo bench -p nexus-trace-benches --bench "$1" -- "${extra[@]}" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "benches/run.sh: bench $1 failed (full log: $log)" >&2
        return 1
    fi
    grep -E "^[a-z].*time:" "$log" || true # summary lines only, for the console
}

criterion bus
criterion middleware
cargo bench -q -p nexus-trace-benches --bench memory >"$target/memory.txt"
cargo bench -q -p nexus-trace-benches --bench alloc >"$target/alloc.txt"
if [ "${SKIP_HTTP:-0}" != 1 ]; then
    benches/http.sh >"$target/http.txt"
fi
report="${REPORT:-benches/RESULTS.md}"
BENCH_QUICK="${QUICK:-0}" python3 benches/report.py >"$report"
cat "$report"
