#!/usr/bin/env bash
# A short run of every fuzz target, seeded from the committed corpus (copied,
# so new inputs do not dirty the tree).
set -euo pipefail
secs="${FUZZ_SECONDS:-20}"
cd fuzz
cargo +nightly fuzz build
for target in $(cargo +nightly fuzz list); do
    work="$(mktemp -d)"
    cp -r "corpus/$target/." "$work/" 2>/dev/null || true
    echo "--- fuzz $target for ${secs}s"
    log="$work.log"
    if ! cargo +nightly fuzz run "$target" "$work" -- -max_total_time="$secs" >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "fuzz target $target found a failure"
        exit 1
    fi
    grep -E "^Done" "$log"
    rm -rf "$work"
done
