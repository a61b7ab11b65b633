#!/usr/bin/env bash
# The dashboard in headless Chromium against a running demo (debug build,
# made by the workspace tests). Prints the test's summary line.
set -euo pipefail
port="${DEMO_PORT:-18080}"
cargo build --locked -p nexus-trace-axum --example demo
./target/debug/examples/demo --addr "127.0.0.1:$port" >/tmp/nexus-demo.log 2>&1 &
demo=$!
trap 'kill $demo 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
    curl -fsS "http://127.0.0.1:$port/users/1" >/dev/null 2>&1 && break
    sleep 0.2
done
cd crates/nexus-trace-axum/tests/browser
npm ci --no-audit --no-fund
DEMO_URL="http://127.0.0.1:$port" SCREENSHOT="${SCREENSHOT:-/tmp/nexus-dashboard.png}" \
    timeout 180 node dashboard.test.mjs
