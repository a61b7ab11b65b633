#!/usr/bin/env bash
# Each adapter compiles with every combination of its optional features
# (`websocket`, `dashboard`, `reqwest`): none, each alone (the default, both, is what
# every other step builds). `cargo check` of the library only: cheap.
set -euo pipefail
cd "$(dirname "$0")/.."
for crate in nexus-trace-axum nexus-trace-actix; do
    for features in "" websocket dashboard reqwest; do
        echo "--- $crate --no-default-features --features '$features'"
        cargo check --quiet --locked -p "$crate" --no-default-features --features "$features"
    done
done
# The HTTP kit alone, without the dashboard page (and its build step).
echo "--- nexus-trace-http --no-default-features"
cargo check --quiet --locked -p nexus-trace-http --no-default-features
