#!/usr/bin/env bash
# ThreadSanitizer on the stress test (nightly, std rebuilt with TSan, own
# target dir). No suppressions for project code.
set -euo pipefail
export RUSTFLAGS="-Zsanitizer=thread"
export RUSTDOCFLAGS="-Zsanitizer=thread"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR_TSAN:-target-tsan}"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
export NEXUS_STRESS_EVENTS="${NEXUS_STRESS_EVENTS:-200000}"
cargo +nightly test --locked -Zbuild-std --target x86_64-unknown-linux-gnu \
    -p nexus-trace-core --test stress --test bus
