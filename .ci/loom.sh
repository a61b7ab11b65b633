#!/usr/bin/env bash
# Loom models of the ring (private cfg nexus_loom, own target dir so the
# changed RUSTFLAGS do not rebuild the main workspace). Each model runs once
# as written (must pass) and once per mutation (loom must find the bug).
set -euo pipefail
export RUSTFLAGS="--cfg nexus_loom"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR_LOOM:-target-loom}"
export LOOM_MAX_PREEMPTIONS=2
cargo test --locked --release -p nexus-trace-loom-tests -- --test-threads=1
