#!/usr/bin/env bash
# The dashboard in headless Chromium against each running demo (axum and
# actix-web; debug builds). Each demo listens on a port the system picks
# (--addr 127.0.0.1:0; the banner says which), sends no traffic of its own
# and keeps a small ring, so the test drives every event and can make a page
# fall behind. Prints each run's summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked -p nexus-trace-demo --examples
(cd crates/nexus-trace-axum/tests/browser && npm ci --no-audit --no-fund)
capacity=512
bin="${CARGO_TARGET_DIR:-target}/debug/examples"
pid=""
# Ctrl-C (what the demos document), then SIGKILL if it has not exited in 10 s.
stop_demo() {
    [ -n "$pid" ] || return 0
    kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
}
trap stop_demo EXIT
for demo in demo demo-actix; do
    log="/tmp/nexus-$demo.log"
    "$bin/$demo" --addr 127.0.0.1:0 --no-traffic --capacity "$capacity" >"$log" 2>&1 &
    pid=$!
    url=""
    for _ in $(seq 1 300); do
        url=$(sed -n 's|.* listening on \(http://[0-9.:]*\).*|\1|p' "$log" | head -n 1)
        if [ -n "$url" ] && curl -fsS "$url/users/1" >/dev/null 2>&1; then break; fi
        url=""
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$url" ]; then
        echo "the $demo did not start listening"
        cat "$log"
        exit 1
    fi
    echo "--- dashboard of $demo at $url"
    status=0
    (cd crates/nexus-trace-axum/tests/browser &&
        DEMO_URL="$url" DEMO_CAPACITY="$capacity" SCREENSHOT="/tmp/nexus-dashboard-$demo.png" \
            timeout 180 node dashboard.test.mjs) || status=$?
    stop_demo
    [ "$status" = 0 ] || { echo "browser test failed against $demo"; tail -20 "$log"; exit 1; }
done
