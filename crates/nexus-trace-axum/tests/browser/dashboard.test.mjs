// Headless Chromium against a running demo (DEMO_URL), started with
// --no-traffic and --capacity DEMO_CAPACITY so that every event comes from
// this test. The dashboard goes live, hostile text renders as text, and what
// the page shows is compared with what a recorder of our own read from the
// same stream: every request row, its status, its downstream calls and its
// logs, exactly once, also across reconnects during traffic; the filters
// (text, kind, status, endpoint) and the latency table are checked against
// the recording too, the recording's request rows against the span trees the
// server builds, and a page that starts behind the ring shows the number
// of events the stream says it missed. The page runs under its CSP without
// errors.
//
// The recorder is Chromium's own EventSource on /__nexus/events?since=0, in a
// second tab; nothing is read from counters the page keeps for itself.
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';

const base = process.env.DEMO_URL ?? 'http://127.0.0.1:8080';
const capacity = Number(process.env.DEMO_CAPACITY ?? 512);
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
// The page renders at most this many rows (MAX_SHOWN in dashboard.html).
const MAX_SHOWN = 200;
let failures = 0;
let passed = 0;

async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   - ${name}`);
  } catch (e) {
    failures++;
    console.log(`FAIL - ${name}\n       ${String(e.stack ?? e).split('\n').slice(0, 12).join('\n       ')}`);
  }
}

/** Polls `fn` until it returns a truthy value; fails naming `what` after `ms`. */
async function until(what, fn, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const browser = await chromium.launch({
  executablePath: chromiumPath,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const problems = [];
function watch(p, label) {
  p.on('pageerror', (e) => problems.push(`${label} pageerror: ${e}`));
  p.on('console', (m) => { if (m.type() === 'error') problems.push(`${label} console: ${m.text()}`); });
}

// --- The recorder: an EventSource of our own, from the first event on.
const recorder = await browser.newPage();
// (Not watched for console errors: the JSON page's missing favicon is one.)
recorder.on('pageerror', (e) => problems.push(`recorder pageerror: ${e}`));
await recorder.goto(`${base}/__nexus/stats`); // any same-origin page will do
await recorder.evaluate(() => {
  window.rec = { events: [], lagged: [], open: false };
  const es = new EventSource('/__nexus/events?since=0');
  es.onopen = () => { window.rec.open = true; };
  es.onmessage = (m) => window.rec.events.push(JSON.parse(m.data));
  es.addEventListener('lagged', (m) => window.rec.lagged.push(JSON.parse(m.data)));
});
await until('the recorder is connected', () => recorder.evaluate(() => window.rec.open));
const recorded = () => recorder.evaluate(() => window.rec.events);

// What a page showing `events` must show: one row per request span (start
// and end carry the span id); a child span (span.start, then downstream or
// span.end) and the logs inside it belong to the row of the request its
// parent chain leads to; a running child span shows nothing yet; an event
// of no span is a row of its own trace. As documented in dashboard.html;
// for request rows it is checked against the server's span trees
// (`treeRows` below), an implementation that shares no code with it.
function rowsOf(events) {
  const rows = new Map();
  const owner = new Map();
  const resolve = (k) => (k && owner.get(k)) || k;
  for (const e of events) {
    const trace = e.traceId ?? '';
    const own = e.spanId ? `${trace}/${e.spanId}` : '';
    const parent = e.parentId ? `${trace}/${e.parentId}` : '';
    let key;
    if (e.kind === 'span.start') {
      key = resolve(parent);
      if (own && key) owner.set(own, key);
      continue;
    } else if (e.kind === 'downstream' || e.kind === 'span.end') {
      key = (own && owner.get(own)) || resolve(parent);
    } else if (e.kind === 'request.start' || e.kind === 'request.end') {
      key = own;
    } else {
      key = resolve(own);
    }
    key = key || trace || `event-${e.id}`;
    let r = rows.get(key);
    if (!r) {
      r = { traceId: trace, start: null, end: null, calls: [], logs: [], first: e };
      rows.set(key, r);
    }
    if (e.kind === 'request.start') r.start = e;
    else if (e.kind === 'request.end') r.end = e;
    else if (e.kind === 'downstream' || e.kind === 'span.end') r.calls.push(e.message ?? '');
    else r.logs.push(e.message ?? '');
  }
  return [...rows.values()];
}

/**
 * The same request rows derived independently, from the span trees the
 * server builds in Rust (`GET /__nexus/traces/{id}`, `TraceTree`): a row per
 * server span; its calls are the ended spans below it (up to the next
 * server span), in the order their last event arrived; its logs are those
 * of itself and of those spans, running ones included, by event id. A check
 * below asserts that this and `rowsOf` agree, so `rowsOf` is not taken on
 * trust.
 */
async function treeRows(traceIds) {
  const out = [];
  for (const id of traceIds) {
    const res = await fetch(`${base}/__nexus/traces/${id}`);
    assert.equal(res.status, 200, `GET /__nexus/traces/${id}`);
    const tree = await res.json();
    const byId = new Map(tree.spans.map((s) => [s.spanId, s]));
    const serverOf = (s) => {
      for (let cur = s, hops = 0; cur && hops <= tree.spans.length; hops++) {
        if (cur.kind === 'server') return cur;
        cur = cur.parentId ? byId.get(cur.parentId) : undefined;
      }
      return undefined;
    };
    const rows = new Map();
    for (const s of tree.spans) if (s.kind === 'server') rows.set(s.spanId, { span: s, calls: [], logs: [] });
    for (const s of tree.spans) {
      const owner = serverOf(s);
      if (!owner) continue;
      const row = rows.get(owner.spanId);
      if (s !== owner && !s.running) row.calls.push([Math.max(...s.eventIds), s.name]);
      for (const l of s.logs) row.logs.push([l.eventId, l.message ?? '']);
    }
    const byEvent = (a, b) => a[0] - b[0];
    for (const { span, calls, logs } of rows.values()) {
      // A server span's name is its endpoint (the adapters always set one).
      out.push(JSON.stringify([tree.traceId, span.method ?? '', span.path ?? '', span.name,
        span.running ? '…' : String(span.status ?? ''),
        calls.sort(byEvent).map((c) => c[1]), logs.sort(byEvent).map((l) => l[1])]));
    }
  }
  return out;
}

const head = (r) => r.end ?? r.start ?? r.first;
const expected = (r) => JSON.stringify([r.traceId, head(r).method ?? '', head(r).path ?? '',
  head(r).endpoint ?? '', r.end ? String(r.end.status ?? '') : '…', r.calls, r.logs]);

// What a page shows: its request rows, each with the call and log rows under it.
async function shownRows(p) {
  const rows = await p.$$eval('#rows > tr', (trs) => {
    const out = [];
    for (const tr of trs) {
      const cells = [...tr.children].map((td) => td.textContent);
      if (tr.classList.contains('req')) out.push({ traceId: tr.dataset.traceId, cells, calls: [], logs: [] });
      else if (tr.classList.contains('call')) out.at(-1).calls.push(cells[2]);
      else if (tr.classList.contains('log')) out.at(-1).logs.push(cells[2]);
    }
    return out;
  });
  return rows.map((r) => JSON.stringify([r.traceId, r.cells[1], r.cells[2], r.cells[3],
    r.cells[4] === '…' ? '…' : r.cells[4].split(' ')[0], r.calls, r.logs]));
}

/** Waits until the page shows exactly the recorded rows `want` (any order), then asserts it. */
async function pageShows(p, want, what) {
  const sorted = want.map(expected).sort();
  assert.ok(sorted.length <= MAX_SHOWN, `${sorted.length} rows: more than the page renders`);
  let got = [];
  try {
    await until(what, async () => {
      got = (await shownRows(p)).sort();
      return JSON.stringify(got) === JSON.stringify(sorted);
    });
  } catch (_) {
    // Fall through to the assertion, which shows the difference.
  }
  assert.deepEqual(got, sorted, what);
}

/**
 * The latency table against the recorded request ends: one row per
 * endpoint, n exactly (a request end shown twice would count twice), and
 * each percentile the nearest-rank value of the recorded durations.
 */
async function latencyTableMatches(p, events) {
  const ms = (e) => (e.durationNs ? e.durationNs / 1e6 : (e.durationMs ?? 0));
  const byEndpoint = new Map();
  for (const e of events) {
    if (e.kind !== 'request.end' || !e.endpoint) continue;
    if (!byEndpoint.has(e.endpoint)) byEndpoint.set(e.endpoint, []);
    byEndpoint.get(e.endpoint).push(ms(e));
  }
  const stats = await p.$$eval('#stats tr', (trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent)));
  assert.deepEqual(stats.map((r) => r[0]).sort(), [...byEndpoint.keys()].sort(), 'one row per endpoint');
  for (const [endpoint, n, ...shown] of stats) {
    const samples = byEndpoint.get(endpoint).slice().sort((a, b) => a - b);
    assert.equal(Number(n), samples.length, `n for ${endpoint}`);
    [0.5, 0.95, 0.99].forEach((q, i) => {
      const want = samples[Math.min(samples.length - 1, Math.floor(q * samples.length))];
      const got = Number(shown[i]);
      // The page rounds to 0, 1 or 3 decimals.
      const rounding = want >= 100 ? 0.5 : want >= 1 ? 0.05 : 0.0005;
      assert.ok(Math.abs(got - want) <= rounding + 1e-9,
        `${endpoint} p${q * 100}: shown ${shown[i]}, recorded ${want}`);
    });
  }
}

/** Clears every filter (a failed check may have left one set). */
async function clearFilters(p) {
  await p.fill('#q', '');
  for (const id of ['#kind', '#status', '#endpoint']) await p.selectOption(id, '');
}

/** A marker request, then waits until the recorder holds it and every request it saw has ended. */
async function quiesce() {
  const res = await fetch(`${base}/users/1`);
  await res.arrayBuffer();
  const trace = res.headers.get('x-trace-id');
  return until('the recorder saw every request end', async () => {
    const rows = rowsOf(await recorded());
    return rows.some((r) => r.traceId === trace && r.end) && rows.every((r) => !r.start || r.end) && rows;
  });
}

/** The ids the recorder got: strictly increasing, dense (no lag here). */
function assertDense(events) {
  events.forEach((e, i) => assert.equal(e.id, i + 1, `recorded id ${e.id} at position ${i}`));
}

async function traffic(i) {
  const kind = i % 5;
  try {
    if (kind === 0 || kind === 3) return (await fetch(`${base}/users/${1 + (i % 100)}`)).arrayBuffer();
    if (kind === 1) {
      return (await fetch(`${base}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ userId: 1 + (i % 50), item: `item-${i}`, amountCents: 100 + i }),
      })).arrayBuffer();
    }
    if (kind === 2) return (await fetch(`${base}/fail`)).arrayBuffer();
    return (await fetch(`${base}/users/0`)).arrayBuffer(); // 404
  } catch (e) {
    throw new Error(`request ${i}: ${e}`);
  }
}

const page = await browser.newPage();
watch(page, 'dashboard');
const rowOf = (traceId) => `tr.req[data-trace-id="${traceId}"]`;

await check('dashboard loads and connects', async () => {
  const res = await page.goto(`${base}/__nexus/`);
  assert.equal(res.status(), 200);
  assert.match(res.headers()['content-security-policy'], /default-src 'none'/);
  await page.waitForSelector('#conn.live', { timeout: 10000 });
  assert.equal(await page.title(), 'nexus-trace');
});

let userTrace;
await check('a new request appears live with its downstream call', async () => {
  const res = await fetch(`${base}/users/42`);
  assert.equal(res.status, 200);
  userTrace = res.headers.get('x-trace-id');
  await page.waitForSelector(rowOf(userTrace), { timeout: 10000 });
  await until('the row shows the end', async () => (await page.$eval(`${rowOf(userTrace)} td:nth-child(5)`, (td) => td.textContent)) !== '…');
  const cells = await page.$$eval(`${rowOf(userTrace)} td`, (tds) => tds.map((t) => t.textContent));
  assert.equal(cells[1], 'GET');
  assert.equal(cells[2], '/users/42');
  assert.equal(cells[3], '/users/{id}');
  assert.match(cells[4], /^200/);
  const call = await page.$eval(`${rowOf(userTrace)} + tr.call td.name`, (td) => td.textContent);
  assert.equal(call, 'db.users.get');
});

await check('hostile text renders as text, never as markup', async () => {
  const item = `<img src=x onerror="document.title='pwned'"><script>document.title='pwned'</script>`;
  const res = await fetch(`${base}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ userId: 3, item, amountCents: 1200 }),
  });
  assert.ok(res.status === 201 || res.status === 502, `order status ${res.status}`);
  const trace = res.headers.get('x-trace-id');
  await page.waitForSelector(rowOf(trace), { timeout: 10000 });
  const pathRes = await fetch(`${base}/users/%3Cscript%3Ealert(1)%3C%2Fscript%3E`);
  const pathTrace = pathRes.headers.get('x-trace-id');
  // Everything published so far is on the page (a later marker included).
  const rows = await quiesce();
  await pageShows(page, rows, 'the page shows the recorded rows');
  const logs = await page.$$eval('tr.log td', (tds) => tds.map((t) => t.textContent));
  assert.ok(logs.some((t) => t.includes(item)), 'the log line shows the raw text');
  const path = await page.$eval(`${rowOf(pathTrace)} td.path`, (td) => td.textContent);
  assert.equal(path, '/users/%3Cscript%3Ealert(1)%3C%2Fscript%3E');
  assert.equal(await page.title(), 'nexus-trace');
  assert.equal(await page.$$eval('tbody img, tbody script', (n) => n.length), 0);
});

await check('reconnects during traffic: every recorded event is shown exactly once', async () => {
  for (let i = 0; i < 40; i++) {
    const inFlight = traffic(i);
    // Drop the stream while a request is in flight: the page resumes from
    // the last id it saw while events keep being published.
    if (i % 8 === 3) await page.evaluate(() => window.nexusDashboard.reconnect());
    await inFlight;
  }
  await page.waitForSelector('#conn.live', { timeout: 10000 });
  const rows = await quiesce();
  const events = await recorded();
  assertDense(events);
  await pageShows(page, rows, 'the page shows each recorded event once, none missing');
  await latencyTableMatches(page, events);
  const count = await page.textContent('#count');
  assert.match(count, new RegExp(`last id ${events.at(-1).id}$`), count);
});

await check('the row model agrees with the span trees the server builds', async () => {
  const events = await recorded();
  // Only traces the ring still holds whole can be rebuilt on the server.
  const firstHeld = events.at(-1).id - capacity + 1;
  const whole = new Set(events.map((e) => e.traceId));
  for (const e of events) if (e.id < firstHeld) whole.delete(e.traceId);
  const rows = rowsOf(events).filter((r) => (r.start || r.end) && whole.has(r.traceId));
  assert.ok(rows.length >= 40, `${rows.length} request rows to compare`);
  assert.deepEqual((await treeRows([...new Set(rows.map((r) => r.traceId))])).sort(),
    rows.map(expected).sort());
});

await check('text filter narrows to one trace', async () => {
  await clearFilters(page);
  const rows = rowsOf(await recorded());
  await page.fill('#q', userTrace);
  await pageShows(page, rows.filter((r) => r.traceId === userTrace), 'rows of that trace only');
  await page.fill('#q', '');
});

await check('kind filter: requests, with downstream calls, with logs', async () => {
  await clearFilters(page);
  const rows = rowsOf(await recorded());
  const want = {
    request: rows.filter((r) => r.start || r.end),
    downstream: rows.filter((r) => r.calls.length > 0),
    log: rows.filter((r) => r.logs.length > 0),
  };
  assert.ok(want.downstream.length > 0 && want.log.length > 0 && want.log.length < rows.length,
    'the recording has rows with and without logs');
  for (const [kind, subset] of Object.entries(want)) {
    await page.selectOption('#kind', kind);
    await pageShows(page, subset, `kind filter "${kind}"`);
  }
  await page.selectOption('#kind', '');
  await pageShows(page, rows, 'no kind filter');
});

await check('status filter shows only 5xx', async () => {
  await clearFilters(page);
  const rows = rowsOf(await recorded());
  const failed = rows.filter((r) => r.end && Math.floor(r.end.status / 100) === 5);
  assert.ok(failed.length > 0);
  await page.selectOption('#status', '5');
  await pageShows(page, failed, 'status filter 5xx');
  await page.selectOption('#status', '');
});

await check('endpoint filter and latency percentiles', async () => {
  await clearFilters(page);
  const events = await recorded();
  const rows = rowsOf(events);
  await page.selectOption('#endpoint', '/users/{id}');
  await pageShows(page, rows.filter((r) => head(r).endpoint === '/users/{id}'), 'endpoint filter');
  await page.selectOption('#endpoint', '');
  await latencyTableMatches(page, events);
});

await check('a page that starts behind the ring says how many events it missed', async () => {
  // Publish more than the ring holds, then open a second dashboard.
  for (let i = 0; (await recorder.evaluate(() => window.rec.events.length)) < capacity + 64; i += 8) {
    await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map((k) => fetch(`${base}/users/${1 + ((i + k) % 100)}`).then((r) => r.arrayBuffer())));
  }
  await quiesce();
  const last = (await recorded()).at(-1).id;
  // What the stream tells a client that starts at 0, read by our own EventSource.
  const lag = await recorder.evaluate(() => new Promise((resolve) => {
    const es = new EventSource('/__nexus/events?since=0');
    es.addEventListener('lagged', (m) => { es.close(); resolve(JSON.parse(m.data)); });
  }));
  assert.deepEqual(lag, { kind: 'lagged', lagged: last - capacity, next: last - capacity + 1 },
    `the ring of ${capacity} holds the last ${capacity} of ${last} events`);
  const late = await browser.newPage();
  watch(late, 'late dashboard');
  await late.goto(`${base}/__nexus/`);
  await late.waitForSelector('#lag.shown', { timeout: 10000 });
  const notice = await late.textContent('#lag');
  assert.match(notice, new RegExp(`\\b${lag.lagged} events were missed`), notice);
  // And it shows what the ring still held: the rows of the events from `next` on.
  const held = (await recorded()).filter((e) => e.id >= lag.next);
  const rows = rowsOf(held);
  await pageShows(late, rows.slice(-Math.min(rows.length, MAX_SHOWN)), 'the late page shows the retained events');
  await late.close();
});

await check('no page errors or CSP violations', async () => {
  assert.deepEqual(problems, [], problems.join('\n'));
});

await page.screenshot({ path: process.env.SCREENSHOT ?? '/tmp/nexus-dashboard.png', fullPage: false });
await browser.close();
console.log(`\nbrowser test result: ${passed} passed; ${failures} failed`);
process.exit(failures ? 1 : 0);
