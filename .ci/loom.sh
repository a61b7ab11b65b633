#!/usr/bin/env bash
# Loom models of the ring (private cfg nexus_loom, own target dir so the
# changed RUSTFLAGS do not rebuild the main workspace). Each model runs once
# as written (must pass) and once per mutation (loom must find the bug, with
# the message of the property that mutation breaks).
#
# Exploration is bounded at two preemptions per execution; within the bound
# loom explores every interleaving. The run fails if fewer models ran than
# the suite defines (a lost cfg would otherwise compile them all away).
set -euo pipefail
export RUSTFLAGS="--cfg nexus_loom"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR_LOOM:-target-loom}"
export LOOM_MAX_PREEMPTIONS=2
log=$(mktemp)
cargo test --locked --release -p nexus-trace-loom-tests -- --test-threads=1 2>&1 | tee "$log"
ran=$(grep -Eo 'test result: ok\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
want=$(grep -cE '^\s+[a-z_]+ => \[' loom-tests/tests/ring.rs)
canaries=$(grep -E '^\s+[a-z_]+ => \[' loom-tests/tests/ring.rs | grep -Eo '[A-Z][A-Za-z]+' | wc -l)
rm -f "$log"
if [ "$ran" -ne $((want + canaries)) ]; then
    echo "loom: $ran runs passed, expected $want models + $canaries canaries" >&2
    exit 1
fi
echo "loom: $want models and $canaries canaries passed"
