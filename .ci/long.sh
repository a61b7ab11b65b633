#!/usr/bin/env bash
# Long runs, NOT part of .ci/run (they take minutes): run by hand or nightly.
#
#   .ci/long.sh                                  # 5 min per fuzz target, 10 min soak
#   FUZZ_MINUTES=0.5 SOAK_MINUTES=2 .ci/long.sh  # fractions work; 0 skips that part
#
# 1. Fuzz: every target in fuzz/ for FUZZ_MINUTES, seeded from a copy of the
#    committed corpus (the tree stays clean). Per target: runs, and corpus
#    entries before -> after. A crash fails the script; its input is in
#    fuzz/artifacts/<target>/: commit it to fuzz/corpus/<target>/ with a
#    regression test for the bug.
# 2. Soak: the release demo (axum) on a free loopback port, with its own
#    background traffic, under wrk load on its ordinary routes for
#    SOAK_MINUTES, while .ci/soak_client.py runs SOAK_SSE (8) SSE clients
#    resuming with Last-Event-ID and SOAK_WS (8) WebSocket clients resuming
#    with ?since=, each closing (WebSocket: alternately a close handshake and
#    an aborted connection) and reconnecting every 0.3-3 s and checking its
#    own ids (exactly the next id, or a lag notice that accounts for the gap
#    exactly). It samples the demo's RSS every 2 s and fails if the last
#    sample exceeds the first one after warm-up (20 s, or a fifth of a
#    shorter soak) by more than RSS_GROWTH_MIB (64 MiB). After the clients
#    leave, /__nexus/stats must show 0 live streams within 10 s.
#
# Prints one line of figures at the end; exits non-zero on any violation.
# Builds run under `nice -n 10`; the demo is built in target-long/ (or
# LONG_TARGET_DIR) so a long run never contends for the main target/ lock.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

FUZZ_MINUTES="${FUZZ_MINUTES:-5}"
SOAK_MINUTES="${SOAK_MINUTES:-10}"
SOAK_SSE="${SOAK_SSE:-8}"
SOAK_WS="${SOAK_WS:-8}"
RSS_GROWTH_MIB="${RSS_GROWTH_MIB:-64}"
WRK_CONNECTIONS="${WRK_CONNECTIONS:-8}"
long_target="${LONG_TARGET_DIR:-$root/target-long}"

# Minutes (fractions allowed) to whole seconds; 0 stays 0 (skip).
seconds() {
    awk -v m="$1" 'BEGIN { if (m !~ /^[0-9]*\.?[0-9]+$/) exit 1; s = int(m * 60 + 0.5); if (m > 0 && s < 1) s = 1; print s }' \
        || { echo "long.sh: expected minutes as a number, got '$1'" >&2; exit 2; }
}
fuzz_secs="$(seconds "$FUZZ_MINUTES")"
soak_secs="$(seconds "$SOAK_MINUTES")"

work="$(mktemp -d /tmp/nexus-long.XXXXXX)"
failures=()
demo_pid=""
wrk_pid=""
cleanup() {
    [ -n "$wrk_pid" ] && kill "$wrk_pid" 2>/dev/null || true
    [ -n "$demo_pid" ] && kill "$demo_pid" 2>/dev/null || true
}
trap cleanup EXIT
echo "long.sh: fuzz ${fuzz_secs}s per target, soak ${soak_secs}s; logs in $work"

# --- tools -----------------------------------------------------------------
if [ "$fuzz_secs" -gt 0 ]; then
    cargo +nightly --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal
    command -v cargo-fuzz >/dev/null || nice -n 10 cargo install --locked cargo-fuzz
fi
if [ "$soak_secs" -gt 0 ]; then
    if ! command -v wrk >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq wrk >/dev/null
    fi
    # The stream clients are Python (3.11+ for asyncio.timeout), so their
    # checks share no code with the project's own SSE parser.
    venv="$long_target/soak-venv"
    if ! "$venv/bin/python" -c 'import aiohttp, websockets' 2>/dev/null; then
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'aiohttp>=3.9' 'websockets>=13'
    fi
    python="$venv/bin/python"
fi

# --- 1. fuzz ---------------------------------------------------------------
fuzz_summary="fuzz skipped"
if [ "$fuzz_secs" -gt 0 ]; then
    (cd fuzz && nice -n 10 cargo +nightly fuzz build)
    targets="$(cd fuzz && cargo +nightly fuzz list)"
    total_runs=0
    total_new=0
    ntargets=0
    for target in $targets; do
        corpus="$work/corpus/$target"
        mkdir -p "$corpus"
        cp -r "fuzz/corpus/$target/." "$corpus/" 2>/dev/null || true
        before="$(find "$corpus" -type f | wc -l)"
        log="$work/fuzz-$target.log"
        status=ok
        if ! (cd fuzz && nice -n 10 cargo +nightly fuzz run "$target" "$corpus" -- \
            -max_total_time="$fuzz_secs" -print_final_stats=1) >"$log" 2>&1; then
            status=FAILED
        fi
        after="$(find "$corpus" -type f | wc -l)"
        # libFuzzer's final stats: "stat::number_of_executed_units: N", and
        # on a clean end "Done N runs in S second(s)".
        runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
        [ -n "$runs" ] || runs="$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)"
        [ -n "$runs" ] || runs=0
        new=$((after - before))
        echo "fuzz $target: $status, $runs runs in ${fuzz_secs}s, corpus $before -> $after (+$new)"
        if [ "$status" != ok ]; then
            tail -n 40 "$log"
            grep -E "Test unit written to|artifact_prefix" "$log" || true
            failures+=("fuzz target $target failed (log $log)")
        elif [ "$runs" -eq 0 ]; then
            failures+=("fuzz target $target reported no runs (log $log)")
        fi
        total_runs=$((total_runs + runs))
        total_new=$((total_new + new))
        ntargets=$((ntargets + 1))
    done
    [ "$ntargets" -gt 0 ] || failures+=("no fuzz target found")
    fuzz_summary="fuzz ${ntargets} targets x ${fuzz_secs}s: ${total_runs} runs, +${total_new} corpus entries"
    echo "new corpus entries (not committed) are under $work/corpus"
fi

# --- 2. soak ---------------------------------------------------------------
soak_summary="soak skipped"
if [ "$soak_secs" -gt 0 ]; then
    # The id checker must catch faulty sequences before its passes count.
    "$python" .ci/soak_client.py --self-test
    CARGO_TARGET_DIR="$long_target" nice -n 10 cargo build --release --locked -p nexus-trace-demo --example demo
    demo_bin="$long_target/release/examples/demo"

    # Port 0: the kernel picks a free port; the banner says which.
    : >"$work/demo.out"
    "$demo_bin" --addr 127.0.0.1:0 >"$work/demo.out" 2>"$work/demo.err" &
    demo_pid=$!
    port=""
    deadline=$((SECONDS + 30))
    while [ -z "$port" ]; do
        port="$(sed -n 's#.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*#\1#p' "$work/demo.out" | head -n 1)"
        if [ -z "$port" ]; then
            if ! kill -0 "$demo_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
                cat "$work/demo.out" "$work/demo.err" >&2
                echo "long.sh: the demo did not start" >&2
                exit 1
            fi
            sleep 0.1
        fi
    done
    base="http://127.0.0.1:$port"
    echo "soak: demo pid $demo_pid on $base for ${soak_secs}s"

    # The demo's ordinary routes, in roughly the mix of its own traffic.
    cat >"$work/mix.lua" <<'LUA'
local n = 0
request = function()
    n = n + 1
    local r = n % 20
    if r < 12 then
        return wrk.format("GET", "/users/" .. (n % 110 + 1))
    elseif r < 17 then
        local body = '{"userId":' .. (n % 100 + 1) .. ',"item":"book","amountCents":' .. (100 + n % 9000) .. '}'
        return wrk.format("POST", "/orders", { ["Content-Type"] = "application/json" }, body)
    elseif r < 19 then
        return wrk.format("GET", "/fail")
    else
        return wrk.format("GET", "/panic")
    end
end
LUA
    wrk -t1 -c"$WRK_CONNECTIONS" -d"${soak_secs}s" --timeout 5s -s "$work/mix.lua" "$base" >"$work/wrk.out" 2>&1 &
    wrk_pid=$!

    client_rc=0
    "$python" .ci/soak_client.py --base "$base" --pid "$demo_pid" --seconds "$soak_secs" \
        --sse "$SOAK_SSE" --ws "$SOAK_WS" --rss-growth-mib "$RSS_GROWTH_MIB" \
        >"$work/soak.json" 2>"$work/soak.err" || client_rc=$?
    wrk_rc=0
    wait "$wrk_pid" || wrk_rc=$?
    wrk_pid=""
    cat "$work/wrk.out"

    if ! kill -0 "$demo_pid" 2>/dev/null; then
        failures+=("the demo died during the soak (see $work/demo.err)")
    fi
    kill -INT "$demo_pid" 2>/dev/null || true
    deadline=$((SECONDS + 15))
    while kill -0 "$demo_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if kill -0 "$demo_pid" 2>/dev/null; then
        kill -KILL "$demo_pid" 2>/dev/null || true
        failures+=("the demo did not shut down within 15 s of SIGINT")
    fi
    wait "$demo_pid" 2>/dev/null || true
    demo_pid=""

    # wrk: "N requests in T", "Non-2xx or 3xx responses: M".
    requests="$(sed -n 's/^ *\([0-9][0-9]*\) requests in .*/\1/p' "$work/wrk.out")"
    non2xx="$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$work/wrk.out")"
    sockerr="$(sed -n 's/^ *Socket errors: *//p' "$work/wrk.out")"
    requests="${requests:-0}"
    non2xx="${non2xx:-0}"
    # The mix expects about 20% errors (404s, /fail, /panic); more than half
    # failing means the load did not exercise the routes it was meant to.
    if [ "$wrk_rc" -ne 0 ] || [ "$requests" -eq 0 ] || [ $((non2xx * 2)) -gt "$requests" ]; then
        failures+=("wrk: exit $wrk_rc, $requests requests, $non2xx non-2xx")
    fi

    if [ "$client_rc" -ne 0 ] && [ ! -s "$work/soak.json" ]; then
        cat "$work/soak.err" >&2
        failures+=("the stream clients failed to run (exit $client_rc)")
        soak_summary="soak ${soak_secs}s: no figures"
    else
        soak_summary="$("$python" - "$work/soak.json" "$requests" "$non2xx" "$soak_secs" <<'PY'
import json, sys
f = json.load(open(sys.argv[1]))
requests, non2xx, secs = sys.argv[2], sys.argv[3], sys.argv[4]
r = f["rss_mib"]
print(f"soak {secs}s: {requests} http requests ({non2xx} non-2xx), "
      f"events published {f['published']}, deliveries {f['deliveries']} to "
      f"{f['clients']['sse']} SSE + {f['clients']['ws']} WS clients, "
      f"reconnects {f['reconnects']}, lag notices {f['lag_notices']} ({f['lagged_events']} events), "
      f"429s {f['refused_429']}, connect timeouts {f['connect_timeouts']} (client loop lag max {f['loop_lag_max_s']} s), WS close handshakes {f['ws_closes']['handshakes']} "
      f"({f['ws_closes']['handshake_timeouts']} timed out) + {f['ws_closes']['aborted']} aborted, RSS first/peak/last {r['first']}/{r['peak']}/{r['last']} MiB, "
      f"streams left {f['streams_left']} (after {f['streams_settle_s']} s), violations {f['violation_count']}")
PY
)"
        if [ "$client_rc" -ne 0 ]; then
            "$python" -c 'import json,sys; [print("  " + v) for v in json.load(open(sys.argv[1]))["violations"]]' "$work/soak.json"
            failures+=("stream clients reported violations (see $work/soak.json)")
        fi
    fi
    if [ -n "$sockerr" ]; then
        soak_summary="$soak_summary, wrk socket errors: $sockerr"
    fi
fi

echo
for f in "${failures[@]+"${failures[@]}"}"; do echo "FAIL: $f"; done
if [ "${#failures[@]}" -eq 0 ]; then verdict=PASS; else verdict=FAIL; fi
echo "long.sh $verdict: $fuzz_summary; $soak_summary"
[ "$verdict" = PASS ]
