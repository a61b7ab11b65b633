#!/usr/bin/env bash
# HTTP overhead: hello-world servers bare, with the nexus middleware, and
# with the usual logging middleware, loaded by wrk from a second process.
# Prints a Markdown table: per server, the median over the rounds of its
# requests/s, of its ratio to bare in the same round (with the range of that
# ratio), and of its latency percentiles.
# On a multi-core machine the server and wrk get disjoint CPU sets. Each
# server listens on a port the system picks (it prints which).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${HTTP_DURATION:-5s}"
CONNS="${HTTP_CONNECTIONS:-64}"
# Rounds: each round runs every server once, so that a slow minute of the
# machine hits a whole round, and the ratio to bare is taken within a round.
ROUNDS="${HTTP_ROUNDS:-3}"
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
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for round in $(seq 1 "$ROUNDS"); do
    for s in "${servers[@]}"; do
        IFS='|' read -r name bin mode <<<"$s"
        # Not inside the echo: `set -e` stops the script on a failed run only
        # when its status is that of an assignment.
        line=$(run "$name" "$bin" "$mode")
        echo "$round|$line" >>"$results"
    done
done

echo "wrk -t1 -c$CONNS -d$DURATION, $ROUNDS rounds (each runs every server once); server on CPUs $server_cpus, wrk on CPUs $client_cpus."
echo "Medians over the rounds; *vs bare* is the median of each round's ratio to that round's bare server, with its range."
echo
python3 - "$results" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("|") for l in open(sys.argv[1]) if l.strip()]
for row in rows:
    if len(row) != 6 or not row[2]:
        sys.exit(f"http.sh: incomplete result {row!r} (round|server|requests/s|p50|p90|p99)")
order, by = [], {}
for rnd, name, rps, p50, p90, p99 in rows:
    if name not in by:
        order.append(name)
        by[name] = {}
    by[name][rnd] = (float(rps), p50, p90, p99)

def ms(v):
    # wrk prints 411.00us, 1.04ms or 2.10s
    for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if v.endswith(unit):
            return float(v[: -len(unit)]) * f
    return float("nan")

print("| server | requests/s | vs bare | range | p50 | p90 | p99 |")
print("|---|---|---|---|---|---|---|")
bare = None
for name in order:
    runs = by[name]
    if name.endswith("bare"):
        bare = runs
    ratios = [100 * r[0] / bare[k][0] for k, r in runs.items() if k in bare]
    med = lambda i: statistics.median(ms(r[i]) for r in runs.values())
    print(
        f"| {name} | {statistics.median(r[0] for r in runs.values()):.0f} "
        f"| {statistics.median(ratios):.1f}% | {min(ratios):.1f}–{max(ratios):.1f}% "
        f"| {med(1):.2f}ms | {med(2):.2f}ms | {med(3):.2f}ms |"
    )
PY
