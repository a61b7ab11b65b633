// Headless Chromium against a running demo (DEMO_URL): the dashboard goes
// live, requests appear as they happen with their downstream calls, hostile
// text renders as text, filters and latency stats work, and the page runs
// under its CSP without errors.
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';

const base = process.env.DEMO_URL ?? 'http://127.0.0.1:8080';
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
let failures = 0;
let passed = 0;

async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   - ${name}`);
  } catch (e) {
    failures++;
    console.log(`FAIL - ${name}\n       ${String(e.stack ?? e).split('\n').slice(0, 4).join('\n       ')}`);
  }
}

const browser = await chromium.launch({
  executablePath: chromiumPath,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage();
const problems = [];
page.on('pageerror', (e) => problems.push(`pageerror: ${e}`));
page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });

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
  const logs = await page.$$eval('tr.log td', (tds) => tds.map((t) => t.textContent));
  assert.ok(logs.some((t) => t.includes(item)), 'the log line shows the raw text');
  const pathRes = await fetch(`${base}/users/%3Cscript%3Ealert(1)%3C%2Fscript%3E`);
  const pathTrace = pathRes.headers.get('x-trace-id');
  await page.waitForSelector(rowOf(pathTrace), { timeout: 10000 });
  const path = await page.$eval(`${rowOf(pathTrace)} td.path`, (td) => td.textContent);
  assert.equal(path, '/users/%3Cscript%3Ealert(1)%3C%2Fscript%3E');
  await page.waitForTimeout(300);
  assert.equal(await page.title(), 'nexus-trace');
  assert.equal(await page.$$eval('tbody img, tbody script', (n) => n.length), 0);
});

await check('text filter narrows to one trace', async () => {
  await page.fill('#q', userTrace);
  await page.waitForFunction((t) => {
    const rows = [...document.querySelectorAll('tr.req')];
    return rows.length === 1 && rows[0].dataset.traceId === t;
  }, userTrace, { timeout: 5000 });
  await page.fill('#q', '');
});

await check('status filter shows only 5xx', async () => {
  const res = await fetch(`${base}/fail`);
  assert.equal(res.status, 500);
  const failTrace = res.headers.get('x-trace-id');
  await page.selectOption('#status', '5');
  await page.waitForSelector(rowOf(failTrace), { timeout: 10000 });
  const statuses = await page.$$eval('tr.req td:nth-child(5)', (tds) => tds.map((t) => t.textContent));
  assert.ok(statuses.length > 0);
  for (const s of statuses) assert.match(s, /^5\d\d/);
  await page.selectOption('#status', '');
});

await check('endpoint filter and latency percentiles', async () => {
  await page.waitForFunction(() => [...document.querySelectorAll('#endpoint option')].some((o) => o.value === '/users/{id}'), null, { timeout: 5000 });
  await page.selectOption('#endpoint', '/users/{id}');
  const endpoints = await page.$$eval('tr.req td:nth-child(4)', (tds) => tds.map((t) => t.textContent));
  assert.ok(endpoints.length > 0);
  for (const e of endpoints) assert.equal(e, '/users/{id}');
  await page.selectOption('#endpoint', '');
  const stats = await page.$$eval('#stats tr', (trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent)));
  const users = stats.find((r) => r[0] === '/users/{id}');
  assert.ok(users, 'a stats row for /users/{id}');
  assert.ok(Number(users[1]) >= 1);
  for (const p of users.slice(2)) assert.ok(Number.isFinite(Number(p)), `percentile ${p}`);
});

await check('reconnects and resumes without duplicates', async () => {
  // Drop the stream and reconnect from the last seen id while traffic flows.
  const lastBefore = await page.evaluate(() => window.nexusDashboard.lastId);
  assert.ok(lastBefore > 0);
  await page.evaluate(() => window.nexusDashboard.reconnect());
  await page.waitForSelector('#conn.live', { timeout: 10000 });
  const res = await fetch(`${base}/users/9`);
  const trace = res.headers.get('x-trace-id');
  await page.waitForSelector(rowOf(trace), { timeout: 10000 });
  assert.ok(await page.evaluate(() => window.nexusDashboard.lastId) > lastBefore);
  const delivery = await page.evaluate(() => ({ d: window.nexusDashboard.duplicates, g: window.nexusDashboard.gaps }));
  assert.deepEqual(delivery, { d: 0, g: 0 }, 'exactly once across the reconnect');
});

await check('no page errors or CSP violations', async () => {
  assert.deepEqual(problems, [], problems.join('\n'));
});

await page.screenshot({ path: process.env.SCREENSHOT ?? '/tmp/nexus-dashboard.png', fullPage: false });
await browser.close();
console.log(`\nbrowser test result: ${passed} passed; ${failures} failed`);
process.exit(failures ? 1 : 0);
