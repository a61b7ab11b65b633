#!/usr/bin/env bash
# Runs every benchmark and writes benches/RESULTS.md: the criterion groups
# (bus vs peers), heap per retained event, and the HTTP overhead runs.
#   benches/run.sh            # everything
#   QUICK=1 benches/run.sh    # shorter criterion runs
set -euo pipefail
cd "$(dirname "$0")/.."
extra=()
if [ "${QUICK:-0}" = 1 ]; then
    extra=(--warm-up-time 1 --measurement-time 2)
fi
cargo bench -p nexus-trace-benches --bench bus -- "${extra[@]}" 2>&1 | grep -E "^[a-z].*time:" || true
cargo bench -p nexus-trace-benches --bench middleware -- "${extra[@]}" 2>&1 | grep -E "^[a-z].*time:" || true
cargo bench -q -p nexus-trace-benches --bench memory > target/memory.txt
if [ -x benches/http.sh ] && [ "${SKIP_HTTP:-0}" != 1 ]; then
    benches/http.sh > target/http.txt
fi
python3 benches/report.py > benches/RESULTS.md
cat benches/RESULTS.md
