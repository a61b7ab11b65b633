#!/usr/bin/env bash
# The dashboard in headless Chromium against each running demo (axum and
# actix-web; debug builds). Prints each run's summary line.
set -euo pipefail
cargo build --locked -p nexus-trace-demo --examples
(cd crates/nexus-trace-axum/tests/browser && npm ci --no-audit --no-fund)
port=18080
for demo in demo demo-actix; do
    port=$((port + 1))
    ./target/debug/examples/$demo --addr "127.0.0.1:$port" >"/tmp/nexus-$demo.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
        curl -fsS "http://127.0.0.1:$port/users/1" >/dev/null 2>&1 && break
        sleep 0.2
    done
    echo "--- dashboard of $demo"
    status=0
    (cd crates/nexus-trace-axum/tests/browser &&
        DEMO_URL="http://127.0.0.1:$port" SCREENSHOT="/tmp/nexus-dashboard-$demo.png" \
            timeout 180 node dashboard.test.mjs) || status=$?
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    [ "$status" = 0 ] || { echo "browser test failed against $demo"; tail -20 "/tmp/nexus-$demo.log"; exit 1; }
done
