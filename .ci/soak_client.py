#!/usr/bin/env python3
"""Resuming stream clients for the soak in .ci/long.sh.

Runs SSE clients (resuming with `Last-Event-ID`) and WebSocket clients
(resuming with `?since=<last id>`) against `/__nexus/events` of a running
server. Each client closes its connection after a random hold (SSE: the
socket is closed; WebSocket: alternately a close handshake and an aborted TCP
connection) and reconnects from the last id it saw, and checks its own ids
with its own parser (nothing of the project's is used):

* every event id is exactly the id the client expects next: one more than the
  last id it got, or the `next` of a lag notice just before it; so ids are
  strictly increasing across reconnects, never repeat, and never skip;
* a lag notice `{"kind":"lagged","lagged":n,"next":x}` must account for the
  gap exactly: x == (id expected next) + n;
* an SSE event's `id:` field equals the `id` in its JSON data; a lag frame is
  an `event: lagged` with no `id:` line.

Meanwhile it samples the server's RSS from /proc/<pid>/status. After the
clients have disconnected it polls /__nexus/stats until no stream is live
(with a deadline). It prints one JSON object with the figures and the list of
violations, and exits 1 if there is any violation.
"""

import argparse
import asyncio
import json
import random
import sys
import time

import aiohttp

try:  # websockets >= 13
    from websockets.asyncio.client import connect as ws_connect
except ImportError:  # pragma: no cover - older websockets
    from websockets import connect as ws_connect

MAX_VIOLATIONS_KEPT = 50
# Seconds a WebSocket close handshake may take while the client reads on
# (the websockets library's own default close timeout).
WS_CLOSE_TIMEOUT_S = 10.0


class Figures:
    def __init__(self):
        self.deliveries = 0
        self.connections = 0
        self.lag_notices = 0
        self.lagged_events = 0
        self.refused = 0  # 429 answers (the stream cap), retried
        self.ws_handshakes = 0
        self.connect_timeouts = 0
        self.ws_close_timeouts = 0
        self.ws_aborts = 0
        self.violations = []
        self.violation_count = 0

    def connect_failed(self, who, e):
        # A connect that times out is counted, not called a violation: on a
        # loaded two-core machine this one-core Python process can stall for
        # seconds (see loop_lag_max_s). The server is still held to serving:
        # each client must connect repeatedly and receive events.
        if isinstance(e, TimeoutError):
            self.connect_timeouts += 1
        else:
            self.violation(who, f"connect failed: {e!r}")

    def violation(self, who, what):
        self.violation_count += 1
        if len(self.violations) < MAX_VIOLATIONS_KEPT:
            self.violations.append(f"{who}: {what}")


class Ids:
    """One client's view of the ids it was sent, across its connections."""

    def __init__(self, who, figures):
        self.who = who
        self.f = figures
        self.last = 0  # last event id delivered to this client (0: none yet)
        self.expect = 1  # id the current connection must deliver next
        self.events = 0
        self.connections = 0

    def connected(self):
        # The server resumes after `last`: its next event must be last + 1,
        # or a lag notice that accounts for the ids skipped from there.
        self.expect = self.last + 1
        self.connections += 1
        self.f.connections += 1

    def event(self, event_id):
        if event_id != self.expect:
            if event_id <= self.last:
                kind = "duplicate or out of order"
            else:
                kind = "gap not accounted for by a lag notice"
            self.f.violation(
                self.who,
                f"{kind}: got id {event_id}, expected {self.expect} (last {self.last})",
            )
        if event_id > self.last:
            self.last = event_id
        self.expect = event_id + 1
        self.events += 1
        self.f.deliveries += 1

    def lagged(self, notice):
        n, nxt = notice.get("lagged"), notice.get("next")
        if notice.get("kind") != "lagged" or not isinstance(n, int) or not isinstance(nxt, int) or n < 1:
            self.f.violation(self.who, f"malformed lag notice {notice!r}")
            return
        if nxt != self.expect + n:
            self.f.violation(
                self.who,
                f"lag notice {notice!r} does not account for the gap: expected next {self.expect} + {n}",
            )
        self.expect = nxt
        self.f.lag_notices += 1
        self.f.lagged_events += n


def hold_time(rng, lo, hi):
    return rng.uniform(lo, hi)


async def sse_client(idx, base, deadline, args, figures):
    who = f"sse#{idx}"
    ids = Ids(who, figures)
    rng = random.Random(args.seed * 1000 + idx)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=30)
    connector = aiohttp.TCPConnector(force_close=True, limit=1)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        while time.monotonic() < deadline:
            headers = {"Accept": "text/event-stream"}
            if ids.connections > 0:
                headers["Last-Event-ID"] = str(ids.last)
            hold = min(hold_time(rng, args.hold_min, args.hold_max), max(0.0, deadline - time.monotonic()))
            try:
                async with asyncio.timeout(hold + 10):
                    resp = await session.get(f"{base}/__nexus/events", headers=headers)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
                figures.connect_failed(who, e)
                await asyncio.sleep(0.5)
                continue
            try:
                if resp.status == 429:
                    figures.refused += 1
                    await asyncio.sleep(0.2)
                    continue
                if resp.status != 200 or not resp.headers.get("content-type", "").startswith("text/event-stream"):
                    figures.violation(who, f"status {resp.status} content-type {resp.headers.get('content-type')!r}")
                    await asyncio.sleep(0.5)
                    continue
                ids.connected()
                try:
                    async with asyncio.timeout(hold):
                        await read_sse(resp, ids, who, figures)
                    figures.violation(who, "stream ended by the server")
                except TimeoutError:
                    pass  # our hold is over: close and resume
                except (aiohttp.ClientError, OSError) as e:
                    figures.violation(who, f"stream broke: {e!r}")
            finally:
                resp.close()
    return ids


async def read_sse(resp, ids, who, figures):
    """A minimal parser of the SSE format (HTML Living Standard, 9.2.6)."""
    buf = b""
    ev_id = None
    ev_type = None
    data = []
    async for chunk in resp.content.iter_any():
        buf += chunk
        lines = buf.split(b"\n")
        buf = lines.pop()
        for raw in lines:
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if not line:
                if data:
                    dispatch(ids, who, figures, ev_id, ev_type or "message", b"\n".join(data))
                # The id field persists in a real EventSource, but a frame
                # of ours either has its own id or must have none (lagged).
                ev_id, ev_type, data = None, None, []
                continue
            if line.startswith(b":"):
                continue
            field, _, value = line.partition(b":")
            if value.startswith(b" "):
                value = value[1:]
            if field == b"id":
                ev_id = value
            elif field == b"event":
                ev_type = value.decode()
            elif field == b"data":
                data.append(value)


def dispatch(ids, who, figures, ev_id, ev_type, data):
    try:
        obj = json.loads(data)
    except ValueError as e:
        figures.violation(who, f"data is not JSON ({e}): {data[:200]!r}")
        return
    if ev_type == "lagged":
        if ev_id is not None:
            figures.violation(who, f"lag frame carries an id {ev_id!r}")
        ids.lagged(obj)
        return
    if ev_type != "message":
        figures.violation(who, f"unexpected event type {ev_type!r}")
        return
    if ev_id is None or not ev_id.isdigit():
        figures.violation(who, f"event without a numeric id: {ev_id!r}")
        return
    event_id = int(ev_id)
    if not isinstance(obj, dict) or obj.get("id") != event_id:
        figures.violation(who, f"id line {event_id} but JSON id {obj.get('id') if isinstance(obj, dict) else obj!r}")
    ids.event(event_id)


async def ws_client(idx, base, deadline, args, figures):
    who = f"ws#{idx}"
    ids = Ids(who, figures)
    rng = random.Random(args.seed * 1000 + 500 + idx)
    ws_base = "ws" + base[len("http"):]
    while time.monotonic() < deadline:
        # The first connection has no resume point: the whole retained
        # backlog (the same as since=0), so the first id expected is 1.
        url = f"{ws_base}/__nexus/events"
        if ids.connections > 0:
            url += f"?since={ids.last}"
        hold = min(hold_time(rng, args.hold_min, args.hold_max), max(0.0, deadline - time.monotonic()))
        try:
            async with asyncio.timeout(15):
                ws = await ws_connect(url, max_size=None, compression=None, open_timeout=10)
        except Exception as e:  # handshake refusals raise several types
            status = getattr(getattr(e, "response", None), "status_code", None)
            if status == 429:
                figures.refused += 1
                await asyncio.sleep(0.2)
            else:
                figures.connect_failed(who, e)
                await asyncio.sleep(0.5)
            continue
        ids.connected()
        try:
            async with asyncio.timeout(hold):
                async for msg in ws:
                    ws_message(ids, who, figures, msg)
            figures.violation(who, "stream ended by the server")
        except TimeoutError:
            pass
        except Exception as e:
            figures.violation(who, f"stream broke: {e!r}")
        await ws_close(ws, ids, who, figures)
    return ids


def ws_message(ids, who, figures, msg):
    if not isinstance(msg, str):
        figures.violation(who, f"binary message of {len(msg)} bytes")
        return
    try:
        obj = json.loads(msg)
    except ValueError as e:
        figures.violation(who, f"message is not JSON ({e}): {msg[:200]!r}")
        return
    if not isinstance(obj, dict):
        figures.violation(who, f"message is not an object: {msg[:200]!r}")
    elif obj.get("kind") == "lagged" and "next" in obj:
        ids.lagged(obj)
    elif isinstance(obj.get("id"), int):
        ids.event(obj["id"])
    else:
        figures.violation(who, f"message without an id: {msg[:200]!r}")


async def ws_close(ws, ids, who, figures):
    """Every other connection ends abruptly (the TCP connection is aborted, as
    when a network drops), the others with a close handshake as a browser
    does it: send Close and keep reading (and checking) until the server's
    Close arrives, which is queued behind whatever the server had already
    sent. Draining that backlog takes this one-core Python process a while
    under load, so a handshake that outlasts WS_CLOSE_TIMEOUT_S is counted
    and the connection aborted, not called a violation: the server side is
    checked by the live stream count at the end."""
    if ids.connections % 2 == 0:
        figures.ws_aborts += 1
        ws.transport.abort()
        return

    async def drain():
        try:
            async for msg in ws:
                ws_message(ids, who, figures, msg)
        except Exception:
            pass  # the connection ends either way

    figures.ws_handshakes += 1
    try:
        async with asyncio.timeout(WS_CLOSE_TIMEOUT_S):
            await asyncio.gather(ws.close(), drain())
    except TimeoutError:
        figures.ws_close_timeouts += 1
        ws.transport.abort()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS line")


async def sample_rss(pid, every, stop, samples):
    while True:
        try:
            samples.append((time.monotonic(), rss_kib(pid)))
        except (OSError, RuntimeError):
            samples.append((time.monotonic(), None))
            return
        try:
            await asyncio.wait_for(stop.wait(), every)
            return
        except asyncio.TimeoutError:
            pass


async def loop_lag(stop, out):
    """How late this process's event loop runs a 100 ms timer: its own stall."""
    while not stop.is_set():
        t = time.monotonic()
        await asyncio.sleep(0.1)
        out.append(time.monotonic() - t - 0.1)


async def stats(session, base):
    async with session.get(f"{base}/__nexus/stats") as r:
        r.raise_for_status()
        return await r.json(content_type=None)


def self_test():
    """The checker must catch each kind of violation, and pass a clean run."""

    def run(steps):
        f = Figures()
        ids = Ids("t", f)
        for step in steps:
            if step == "connect":
                ids.connected()
            elif isinstance(step, int):
                ids.event(step)
            else:
                ids.lagged(step)
        return f.violation_count

    lag = lambda n, nxt: {"kind": "lagged", "lagged": n, "next": nxt}
    clean = ["connect", 1, 2, lag(3, 6), 6, "connect", 7, lag(2, 10), lag(1, 11), 11, "connect", 12]
    assert run(clean) == 0, "a clean sequence was flagged"
    bad = {
        "duplicate": ["connect", 1, 2, 2],
        "duplicate across a reconnect": ["connect", 1, 2, "connect", 2],
        "out of order": ["connect", 1, 3, 2],
        "gap without notice": ["connect", 1, 3],
        "gap across a reconnect": ["connect", 1, "connect", 3],
        "notice short of the gap": ["connect", 1, lag(2, 5), 5],
        "event before a notice's next": ["connect", 1, lag(2, 4), 3],
        "event past a notice's next": ["connect", 1, lag(2, 4), 5],
        "malformed notice": ["connect", 1, {"kind": "lagged", "lagged": 0, "next": 2}],
        "first id not 1": ["connect", 2],
    }
    for name, steps in bad.items():
        assert run(steps) > 0, f"the checker missed: {name}"
    print(f"soak_client self-test: 1 clean sequence passed, {len(bad)} faulty sequences caught")
    return 0


async def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", required=True, help="http://127.0.0.1:PORT")
    p.add_argument("--pid", type=int, required=True, help="the server's pid, for RSS")
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--sse", type=int, default=8)
    p.add_argument("--ws", type=int, default=8)
    p.add_argument("--hold-min", type=float, default=0.3, help="shortest connection, s")
    p.add_argument("--hold-max", type=float, default=3.0, help="longest connection, s")
    p.add_argument("--rss-every", type=float, default=2.0)
    p.add_argument("--warmup", type=float, default=20.0, help="s of RSS samples not taken as the baseline")
    p.add_argument("--rss-growth-mib", type=float, default=64.0)
    p.add_argument("--settle", type=float, default=10.0, help="deadline, s, for streams to reach 0")
    p.add_argument("--seed", type=int, default=int(time.time()))
    args = p.parse_args()

    figures = Figures()
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        before = await stats(session, args.base)
        start = time.monotonic()
        deadline = start + args.seconds
        samples = []
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_rss(args.pid, args.rss_every, stop, samples))
        lags = []
        lagger = asyncio.create_task(loop_lag(stop, lags))
        clients = [sse_client(i, args.base, deadline, args, figures) for i in range(args.sse)]
        clients += [ws_client(i, args.base, deadline, args, figures) for i in range(args.ws)]
        results = await asyncio.gather(*clients)
        stop.set()
        await sampler
        await lagger
        samples.append((time.monotonic(), rss_kib(args.pid)))
        published_at_end = (await stats(session, args.base))["published"]

        for ids in results:
            if ids.connections < 2:
                figures.violation(ids.who, f"only {ids.connections} connection(s): it never resumed")
            if ids.events == 0:
                figures.violation(ids.who, "received no event")

        # Every client has closed: the server must drop every stream.
        settle_start = time.monotonic()
        settle_trace = []  # (seconds since the clients left, live streams), on each change
        while True:
            after = await stats(session, args.base)
            live = after["streams"]["live"]
            if not settle_trace or settle_trace[-1][1] != live:
                settle_trace.append((round(time.monotonic() - settle_start, 2), live))
            if live == 0 or time.monotonic() - settle_start > args.settle:
                break
            await asyncio.sleep(0.05)
        settle_s = time.monotonic() - settle_start
        if after["streams"]["live"] != 0:
            figures.violation("server", f"{after['streams']['live']} stream(s) still live {args.settle}s after all clients left")

    rss = [kib for _, kib in samples if kib is not None]
    if None in (kib for _, kib in samples):
        figures.violation("server", "process gone while sampling RSS")
    warm = min(args.warmup, args.seconds / 5)
    baseline = [kib for t, kib in samples if kib is not None and t - start >= warm]
    first = baseline[0] if baseline else (rss[0] if rss else 0)
    peak = max(rss) if rss else 0
    last = rss[-1] if rss else 0
    bound = first + args.rss_growth_mib * 1024
    if last > bound:
        figures.violation(
            "server",
            f"RSS grew from {first // 1024} MiB (after {warm:.0f}s warm-up) to {last // 1024} MiB, over the {args.rss_growth_mib:g} MiB bound",
        )

    out = {
        "published": after["published"] - before["published"],
        "published_total": after["published"],
        "overwritten": after["overwritten"],
        "deliveries": figures.deliveries,
        "clients": {"sse": args.sse, "ws": args.ws},
        "connections": figures.connections,
        "reconnects": figures.connections - sum(1 for r in results if r.connections > 0),
        "lag_notices": figures.lag_notices,
        "lagged_events": figures.lagged_events,
        "refused_429": figures.refused,
        "connect_timeouts": figures.connect_timeouts,
        "loop_lag_max_s": round(max(lags, default=0.0), 2),
        "ws_closes": {
            "handshakes": figures.ws_handshakes,
            "handshake_timeouts": figures.ws_close_timeouts,
            "aborted": figures.ws_aborts,
        },
        "rss_mib": {"first": round(first / 1024, 1), "peak": round(peak / 1024, 1), "last": round(last / 1024, 1)},
        "rss_samples": len(rss),
        "streams_left": after["streams"]["live"],
        "streams_settle_s": round(settle_s, 2),
        "streams_settle_trace": settle_trace,
        "published_during_settle": after["published"] - published_at_end,
        "subscribers_left": after["subscribers"],
        "violation_count": figures.violation_count,
        "violations": figures.violations,
    }
    print(json.dumps(out))
    return 1 if figures.violation_count else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
