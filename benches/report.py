"""Turns criterion estimates, the memory run and the HTTP runs into one Markdown report.

Run by benches/run.sh, which sets BENCH_RUN_STARTED (epoch seconds): estimates
older than that come from an earlier run and are left out ("–"), never reported
as this run's.
"""
import datetime
import json
import os
import platform
import re
import subprocess

ROOT = os.path.join(os.path.dirname(__file__), "..")
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
CRIT = os.path.join(TARGET, "criterion")
STARTED = float(os.environ.get("BENCH_RUN_STARTED", "0"))
stale = []


def mean_ns(group, impl, param=None):
    parts = [CRIT, group, impl] + ([str(param)] if param is not None else []) + ["new", "estimates.json"]
    path = os.path.join(*parts)
    if not os.path.exists(path):
        return None
    if os.path.getmtime(path) < STARTED:
        stale.append(os.path.relpath(path, CRIT))
        return None
    with open(path) as f:
        return json.load(f)["mean"]["point_estimate"]


def fmt(ns):
    if ns is None:
        return "–"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns"


def ratio(a, b):
    return "–" if a is None or b is None else f"{a / b:.2f}×"


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = os.cpu_count()
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{cpu}, {cores} vCPU, {platform.system()} {platform.release()}, {rustc}"


def git(*args):
    return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True).stdout.strip()


def run():
    """When and from which commit this report's numbers were measured."""
    if not STARTED:
        return "not from benches/run.sh: every estimate found in the target directory, of unknown runs"
    when = datetime.datetime.fromtimestamp(STARTED, datetime.timezone.utc)
    commit = git("rev-parse", "--short=12", "HEAD") or "unknown commit"
    # The report being written (redirected over RESULTS.md) is no change.
    if git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!benches/RESULTS.md"):
        commit += " with uncommitted changes"
    quick = " (QUICK=1: short criterion runs)" if os.environ.get("BENCH_QUICK") == "1" else ""
    return f"{when:%Y-%m-%d %H:%M} UTC, commit {commit}{quick}"


out = []
out.append("# Benchmark results\n")
out.append(f"Run: {run()}.  \nMachine: {machine()}.  \n"
           "Reproduce: `benches/run.sh` (criterion means; lower is better; – = not measured in this run).\n")

impls = ["nexus", "tokio-broadcast", "go-port", "arc-swap-ring", "floor"]
out.append("## Publish, with idle subscribers attached (per event)\n")
out.append("| subscribers | " + " | ".join(impls) + " | nexus / floor | nexus / nexus with 1 |")
out.append("|---|" + "---|" * (len(impls) + 2))
floor = mean_ns("publish", "floor", 0)
one = mean_ns("publish", "nexus", 1)
for n in [0, 1, 4, 16, 64, 256]:
    row = [fmt(mean_ns("publish", i, n)) for i in impls]
    nexus = mean_ns('publish', 'nexus', n)
    out.append(f"| {n} | " + " | ".join(row) + f" | {ratio(nexus, floor)} | {ratio(nexus, one)} |")

out.append("\n## Publish while N subscriber threads block and read every event (per event)\n")
out.append("On 2 vCPUs, N reader threads share two cores with the producer: this mostly measures the "
           "scheduler, and runs differ by several times. It needs a many-core machine to mean much.\n")
readers = ["nexus", "tokio-broadcast", "go-port"]
out.append("| readers | " + " | ".join(readers) + " | tokio / nexus |")
out.append("|---|" + "---|" * (len(readers) + 1))
for n in [1, 4, 16, 64]:
    vals = {i: mean_ns("publish-reading", i, n) for i in readers}
    out.append(f"| {n} | " + " | ".join(fmt(vals[i]) for i in readers)
               + f" | {ratio(vals['tokio-broadcast'], vals['nexus'])} |")

out.append("\n## Throughput: producers publishing while 4 subscribers read (per event)\n")
peers = ["nexus", "tokio-broadcast", "go-port", "arc-swap-ring"]
out.append("| producers | " + " | ".join(peers) + " | tokio / nexus | go-port / nexus |")
out.append("|---|" + "---|" * (len(peers) + 2))
for p in ["1p", "2p"]:
    vals = {i: mean_ns("throughput-4-subscribers", i, p) for i in peers}
    out.append(f"| {p[0]} | " + " | ".join(fmt(vals[i]) for i in peers)
               + f" | {ratio(vals['tokio-broadcast'], vals['nexus'])} | {ratio(vals['go-port'], vals['nexus'])} |")

out.append("\n## Latency: publish until a blocked subscriber has the event\n")
out.append("| nexus | tokio-broadcast | go-port |")
out.append("|---|---|---|")
out.append("| " + " | ".join(fmt(mean_ns("latency-publish-to-receive", i)) for i in ["nexus", "tokio-broadcast", "go-port"]) + " |")

out.append("\n## Subscribe and replay a full backlog (4096 events)\n")
out.append("| nexus, `try_recv` per event | nexus, `try_recv_many` | go-port | arc-swap-ring | `try_recv_many` / go-port |")
out.append("|---|---|---|---|---|")
out.append("| " + " | ".join(fmt(mean_ns("replay-4096", i)) for i in ["nexus", "nexus-batch", "go-port", "arc-swap-ring"])
           + f" | {ratio(mean_ns('replay-4096', 'nexus-batch'), mean_ns('replay-4096', 'go-port'))} |")

out.append("\n## Publish after 128 other threads used the structure (the thread-count trap)\n")
out.append("| impl | 0 threads | 128 threads | 128 / 0 |")
out.append("|---|---|---|---|")
for i in ["nexus", "arc-swap-ring", "floor"]:
    a, b = mean_ns("publish-after-threads", i, 0), mean_ns("publish-after-threads", i, 128)
    out.append(f"| {i} | {fmt(a)} | {fmt(b)} | {ratio(b, a)} |")

mem = os.path.join(TARGET, "memory.txt")
if os.path.exists(mem):
    out.append("\n## Heap per retained event (capacity 4096, 4 subscribers)\n")
    out.append(
        "Every implementation holds the same payload (an event with no heap text). The *pairs* rows are nexus\n"
        "holding what the adapters publish, `request.start` and `request.end` made by `RequestRecording`: a path\n"
        "of up to 16 bytes is inline in each event, a longer one is one heap text the two events share.\n"
        "Reproduce: `cargo bench -p nexus-trace-benches --bench memory`.\n"
    )
    out.append("| impl | bytes/event |")
    out.append("|---|---|")
    for line in open(mem):
        m = re.match(r"memory/(.+?): .* = (\d+) bytes/event", line)
        if m:
            out.append(f"| {m.group(1)} | {m.group(2)} |")

ALLOC_NOTE = """Counted by a global allocator around 10 000 in-process requests (`GET /hello/x`, body read to the end,
no subscriber), per request. *Pass-through* is a middleware that forwards the request and wraps the response body
in a type of its own, as nexus does: in axum, any layer added with `Router::layer` costs a boxed clone of the
route, a boxed response future and a boxed body. What nexus adds beyond that is its two events and the
`x-trace-id` value, plus, on actix, what actix's `match_pattern()` costs before routing (a `String` and a regex
capture buffer per dynamic pattern tried; actix offers no allocation-free way to learn the route template
there). A path longer than 16 bytes adds its one shared text. Reproduce:
`cargo bench -p nexus-trace-benches --bench alloc`."""

ALLOC_BEFORE = """Before the compact event (main at e3f9ae8, same bench): axum +27 allocations / +2221 B per request over
bare, actix-web +26 / +1870 B."""

alloc = os.path.join(TARGET, "alloc.txt")
if os.path.exists(alloc):
    out.append("\n## Heap allocations per request, in process (hello world, no sockets)\n")
    out.append(ALLOC_NOTE + "\n")
    out.append(open(alloc).read().strip())
    out.append("\n" + ALLOC_BEFORE)

mw = {i: mean_ns("middleware-per-request", i) for i in ["bare", "nexus", "tower-http-trace"]}
if mw["bare"]:
    out.append("\n## Middleware cost per request, in process (axum hello world, no sockets)\n")
    out.append("| bare | + NexusTraceLayer | + tower-http TraceLayer | nexus adds | TraceLayer adds |")
    out.append("|---|---|---|---|---|")
    add = lambda x: "–" if x is None else fmt(x - mw["bare"])
    out.append(f"| {fmt(mw['bare'])} | {fmt(mw['nexus'])} | {fmt(mw['tower-http-trace'])} | {add(mw['nexus'])} | {add(mw['tower-http-trace'])} |")

http = os.path.join(TARGET, "http.txt")
if os.path.exists(http):
    out.append("\n## HTTP overhead (hello world, wrk from a second process on 127.0.0.1)\n")
    out.append(open(http).read().strip())

if stale:
    out.append(f"\n{len(stale)} criterion estimates older than this run were left out ({', '.join(sorted(stale)[:5])}{'…' if len(stale) > 5 else ''}).")
print("\n".join(out))
