#!/usr/bin/env python3
"""Interop check against a real OpenTelemetry collector (rotel).

Usage: interop_check.py DEMO_URL ROTEL_LOG DEMO_PID

Sends POST /orders to a running demo, reads the span tree from the demo's
/__nexus/traces/{id}, stops the demo (SIGTERM flushes its OTLP exporter),
then reads the spans the collector received from its detailed debug log and
checks that /orders -> http.payments.charge -> /charge -> ledger.write is
one chain with the same ids, parents and kinds in both places.
"""
import json
import os
import re
import signal
import sys
import time
import urllib.request

url, log_path, demo_pid = sys.argv[1], sys.argv[2], int(sys.argv[3])


def fail(msg):
    print(f"interop: FAIL: {msg}")
    sys.exit(1)


req = urllib.request.Request(
    f"{url}/orders",
    data=json.dumps({"userId": 3, "item": "tea", "amountCents": 500}).encode(),
    headers={"content-type": "application/json"},
    method="POST",
)
with urllib.request.urlopen(req, timeout=10) as res:
    trace_id = res.headers["x-trace-id"]
    body = res.read().decode()
print(f"interop: POST /orders -> {body} trace {trace_id}")

# The tree, once both requests ended.
deadline = time.time() + 20
while True:
    with urllib.request.urlopen(f"{url}/__nexus/traces/{trace_id}", timeout=10) as res:
        tree = json.load(res)
    ends = sum(1 for e in tree["events"] if e["kind"] == "request.end")
    if ends == 2 and not any(s["running"] for s in tree["spans"]):
        break
    if time.time() > deadline:
        fail(f"trace never finished: {json.dumps(tree)[:2000]}")
    time.sleep(0.05)


def find(name, kind):
    for s in tree["spans"]:
        if s["name"].endswith(name) and s["kind"] == kind:
            return s
    fail(f"no {kind} span {name!r} in the tree: {[(s['name'], s['kind']) for s in tree['spans']]}")


chain = [
    find("/orders", "server"),
    find("http.payments.charge", "client"),
    find("/charge", "server"),
    find("ledger.write", "internal"),
]
if chain[0].get("parentId"):
    fail("the /orders span has a parent")
for parent, child in zip(chain, chain[1:]):
    if child.get("parentId") != parent["spanId"]:
        fail(f"{child['name']} parent {child.get('parentId')} != {parent['name']} {parent['spanId']}")
    if child["depth"] != parent["depth"] + 1:
        fail(f"{child['name']} depth {child['depth']}")
print("interop: /__nexus/traces tree: " + " -> ".join(f"{s['name']}({s['kind']})" for s in chain))

# Stop the demo: SIGTERM flushes the exporter.
os.kill(demo_pid, signal.SIGTERM)

ansi = re.compile(r"\x1b\[[0-9;]*m")
field = re.compile(r"^\s*(Trace ID|Parent ID|ID|Name|Kind)\s*:\s*(.*)$")
kinds = {"server": "SPAN_KIND_SERVER", "client": "SPAN_KIND_CLIENT", "internal": "SPAN_KIND_INTERNAL"}


def collected():
    spans, cur = {}, None
    with open(log_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = ansi.sub("", line.rstrip("\n"))
            if re.match(r"^Span #\d+", line):
                cur = {}
                continue
            m = field.match(line)
            if m and cur is not None:
                cur[m.group(1)] = m.group(2).strip()
                if m.group(1) == "Kind" and cur.get("Trace ID") == trace_id:
                    spans[cur["ID"]] = cur
    return spans


deadline = time.time() + 20
while True:
    spans = collected()
    if all(s["spanId"] in spans for s in chain):
        break
    if time.time() > deadline:
        fail(f"the collector got {len(spans)} of the trace's spans: {spans}")
    time.sleep(0.1)

for s in chain:
    got = spans[s["spanId"]]
    want_parent = s.get("parentId", "")
    if got.get("Parent ID", "") != want_parent:
        fail(f"collector: {s['name']} parent {got.get('Parent ID')!r}, tree says {want_parent!r}")
    if got["Kind"] != kinds[s["kind"]]:
        fail(f"collector: {s['name']} kind {got['Kind']}, tree says {s['kind']}")
print(
    f"interop: the collector received the same {len(chain)}-span chain "
    f"({len(spans)} spans of the trace): "
    + " -> ".join(f"{spans[s['spanId']]['Name']}({spans[s['spanId']]['Kind']})" for s in chain)
)
