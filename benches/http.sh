#!/usr/bin/env bash
# HTTP overhead: hello-world servers bare, with the nexus middleware, and
# with the usual logging middleware, loaded by wrk from a second process.
# Prints a Markdown table (requests/s, latency percentiles, ratio to bare).
# On a multi-core machine the server and wrk get disjoint CPU sets. Each
# server listens on a port the system picks (it prints which).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${HTTP_DURATION:-10s}"
CONNS="${HTTP_CONNECTIONS:-64}"
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
cargo build -q --release -p nexus-trace-benches --example hello_axum --example hello_actix

ncpu=$(nproc)
half=$(( ncpu / 2 > 0 ? ncpu / 2 : 1 ))
server_cpus="0-$((half - 1))"
client_cpus="$half-$((ncpu - 1))"
[ "$ncpu" -lt 2 ] && client_cpus=0

examples="${CARGO_TARGET_DIR:-target}/release/examples"

run() { # name binary mode
    local name=$1 bin=$2 mode=$3
    local banner port=""
    banner=$(mktemp)
    taskset -c "$server_cpus" "$examples/$bin" 0 "$mode" >"$banner" &
    local pid=$!
    for _ in $(seq 1 100); do
        port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$banner")
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    rm -f "$banner"
    if [ -z "$port" ]; then
        echo "$name: the server did not start" >&2
        kill "$pid" 2>/dev/null || true
        return 1
    fi
    for _ in $(seq 1 50); do curl -fsS "http://127.0.0.1:$port/hello/x" >/dev/null 2>&1 && break; sleep 0.1; done
    taskset -c "$client_cpus" wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$port/hello/x" >/dev/null
    local out
    out=$(taskset -c "$client_cpus" wrk -t1 -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:$port/hello/x")
    kill $pid; wait $pid 2>/dev/null || true
    local rps p50 p90 p99
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p90=$(awk '$1=="90%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    echo "$name|$rps|$p50|$p90|$p99"
}

servers=("axum bare|hello_axum|bare" "axum + NexusTraceLayer|hello_axum|nexus"
    "axum + tower-http TraceLayer|hello_axum|tower-http"
    "actix bare|hello_actix|bare" "actix + NexusTrace|hello_actix|nexus"
    "actix + Logger|hello_actix|logger")
results=()
for s in "${servers[@]}"; do
    IFS='|' read -r name bin mode <<<"$s"
    line=$(run "$name" "$bin" "$mode")
    results+=("$line")
done

echo "wrk -t1 -c$CONNS -d$DURATION; server on CPUs $server_cpus, wrk on CPUs $client_cpus."
echo
echo "| server | requests/s | vs bare | p50 | p90 | p99 |"
echo "|---|---|---|---|---|---|"
bare=""
for r in "${results[@]}"; do
    IFS='|' read -r name rps p50 p90 p99 <<<"$r"
    case "$name" in *bare) bare=$rps ;; esac
    pct=$(python3 -c "print(f'{100*$rps/$bare:.1f}%')")
    echo "| $name | $rps | $pct | $p50 | $p90 | $p99 |"
done
