#!/usr/bin/env bash
# HTTP overhead: hello-world servers bare, with the nexus middleware, and
# with the usual logging middleware, loaded by wrk from a second process.
# Prints a Markdown table (requests/s, latency percentiles, ratio to bare).
# On a multi-core machine the server and wrk get disjoint CPU sets.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${HTTP_DURATION:-10s}"
CONNS="${HTTP_CONNECTIONS:-64}"
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
cargo build -q --release -p nexus-trace-benches --example hello_axum
actix=0
if cargo build -q --release -p nexus-trace-benches --example hello_actix 2>/dev/null; then actix=1; fi

ncpu=$(nproc)
half=$(( ncpu / 2 > 0 ? ncpu / 2 : 1 ))
server_cpus="0-$((half - 1))"
client_cpus="$half-$((ncpu - 1))"
[ "$ncpu" -lt 2 ] && client_cpus=0

run() { # name binary mode port
    local name=$1 bin=$2 mode=$3 port=$4
    taskset -c "$server_cpus" "target/release/examples/$bin" "$port" "$mode" &
    local pid=$!
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

results=()
results+=("$(run "axum bare" hello_axum bare 18201)")
results+=("$(run "axum + NexusTraceLayer" hello_axum nexus 18202)")
results+=("$(run "axum + tower-http TraceLayer" hello_axum tower-http 18203)")
if [ $actix = 1 ]; then
    results+=("$(run "actix bare" hello_actix bare 18204)")
    results+=("$(run "actix + NexusTrace" hello_actix nexus 18205)")
    results+=("$(run "actix + Logger" hello_actix logger 18206)")
fi

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
