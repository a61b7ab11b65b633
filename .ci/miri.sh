#!/usr/bin/env bash
# Miri on the unit, integration and doc tests of the core and of the HTTP kit
# (sizes shrink under cfg(miri)).
set -euo pipefail
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR_MIRI:-target-miri}"
# Isolation off: the tests read the clock and proptest reads its config.
export MIRIFLAGS="-Zmiri-disable-isolation"
cargo +nightly miri test --locked -p nexus-trace-core -p nexus-trace-http
