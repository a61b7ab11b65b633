#!/usr/bin/env bash
# Interop with a real OpenTelemetry collector: rotel (a Rust collector on
# PyPI) receives both demos' OTLP/HTTP export, and .ci/interop_check.py
# checks that /orders -> payments /charge -> ledger.write has the same
# parents in /__nexus/traces/{id} and in what the collector received.
set -euo pipefail
cd "$(dirname "$0")/.."

ROTEL_VERSION=0.0.1a15
venv="${ROTEL_VENV:-target/rotel-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet "rotel==$ROTEL_VERSION"
agent="$("$venv/bin/python" -c 'import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), "rotel-agent"))')"

cargo build --locked -q -p nexus-trace-demo --example demo --example demo-actix
target="${CARGO_TARGET_DIR:-target}"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

for demo in demo demo-actix; do
    http_port="$(free_port)"
    grpc_port="$(free_port)"
    "$agent" start --otlp-http-endpoint "127.0.0.1:$http_port" \
        --otlp-grpc-endpoint "127.0.0.1:$grpc_port" \
        --exporter blackhole --debug-log traces --debug-log-verbosity detailed \
        >"$work/rotel-$demo.log" 2>&1 &
    rotel=$!
    pids+=("$rotel")
    for _ in $(seq 100); do
        grep -q "Starting Rotel" "$work/rotel-$demo.log" && break
        sleep 0.1
    done

    port="$(free_port)"
    OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$http_port" \
        "$target/debug/examples/$demo" --addr "127.0.0.1:$port" --no-traffic --otlp \
        >"$work/$demo.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$port/__nexus/stats" >/dev/null && break
        sleep 0.1
    done

    echo "interop: $demo exporting to rotel $ROTEL_VERSION on port $http_port"
    if ! python3 .ci/interop_check.py "http://127.0.0.1:$port" "$work/rotel-$demo.log" "$pid"; then
        echo "--- $demo log"; tail -20 "$work/$demo.log"
        echo "--- rotel log"; tail -40 "$work/rotel-$demo.log"
        exit 1
    fi
    wait "$pid" || true
    kill "$rotel" 2>/dev/null || true
    wait "$rotel" 2>/dev/null || true
done
echo "interop: both demos passed"
