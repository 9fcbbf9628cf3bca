// Is the page responsive with 10,000 samples held and 200 routes? Starts two JSON upstreams
// (node:http) that differ in one field, the real binary (argv[2]) with one mirrored route of
// 200 templates and room for 10,000 samples, fills it with 10,000 divergent pairs, then
// measures the page in Debian's headless chromium. Prints the figures as JSON; exits 1 when
// a view takes longer than a person would call responsive (see LIMITS).
import { open } from './browser.mjs';
import http from 'node:http';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';

const BIN = process.argv[2];
const ROUTES = 200;
const SAMPLES = 10000;
/** Milliseconds: what each measured interaction may take at most. */
const LIMITS = { firstRender: 3000, filterKeystroke: 100, sortClick: 150, liveUpdateLongestTask: 200, routeView: 1500, sampleView: 1500 };

function upstream(price) {
  const server = http.createServer((request, response) => {
    const body = JSON.stringify({ path: request.url, price, name: 'item', tags: ['a', 'b'], stock: { count: 3 } });
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(body);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function freePort() {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

const primary = await upstream(10);
const shadow = await upstream(11);
const [listen, admin] = [await freePort(), await freePort()];
const dir = mkdtempSync(join(tmpdir(), 'shadowtap-ui-perf-'));
const templates = Array.from({ length: ROUTES }, (_, i) => `"/r${i}/{id}"`).join(', ');
writeFileSync(join(dir, 'shadowtap.toml'), `
[[listeners]]
address = "127.0.0.1:${listen}"

[admin]
address = "127.0.0.1:${admin}"

[upstreams.stable]
url = "http://127.0.0.1:${primary.address().port}"

[upstreams.canary]
url = "http://127.0.0.1:${shadow.address().port}"

[compare]
samples_per_route = ${SAMPLES / ROUTES}
samples_total = ${SAMPLES}
queue_capacity = 8192

[[routes]]
name = "api"
primary = "stable"
template = [${templates}]

[[routes.mirror.shadows]]
upstream = "canary"
percent = 100
`);
const proxy = spawn(BIN, ['run', '--config', join(dir, 'shadowtap.toml')], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, RUST_LOG: 'warn' } });
const ADMIN = `http://127.0.0.1:${admin}`;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const figures = {};
let failed = false;

async function json(path) {
  const response = await fetch(`${ADMIN}${path}`);
  return response.json();
}

try {
  for (let i = 0; ; i += 1) {
    try {
      if ((await fetch(`${ADMIN}/readyz`)).status === 200) break;
    } catch (_) { /* not yet */ }
    if (i > 200) throw new Error('shadowtap did not become ready');
    await sleep(50);
  }
  // Filling: every route gets SAMPLES / ROUTES divergent pairs, a few requests at a time.
  const started = Date.now();
  const requests = [];
  for (let n = 0; n < SAMPLES; n += 1) requests.push(`/r${n % ROUTES}/${n}`);
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < requests.length) {
      const path = requests[next];
      next += 1;
      const response = await fetch(`http://127.0.0.1:${listen}${path}`);
      await response.arrayBuffer();
    }
  }));
  for (;;) {
    const routes = await json('/api/v1/routes');
    const pairs = routes.reduce((n, e) => n + e.comparisons.diverged, 0);
    if (pairs >= SAMPLES) break;
    await sleep(200);
  }
  figures.fill_seconds = (Date.now() - started) / 1000;
  const held = await json(`/api/v1/samples?limit=${SAMPLES * 2}`);
  figures.samples_held = held.length;
  figures.routes = (await json('/api/v1/routes')).length;
  for (const path of ['/api/v1/routes', '/api/v1/history', '/api/v1/samples?route=%2Fr7%2F%7Bid%7D&limit=20']) {
    const t = performance.now();
    const text = await (await fetch(`${ADMIN}${path}`)).text();
    figures[`api ${path.split('?')[0]}`] = { ms: Math.round(performance.now() - t), kib: Math.round(text.length / 1024) };
  }

  const { page, close } = await open();
  await page.addInitScript(() => {
    window.longTasks = [];
    new PerformanceObserver((list) => { for (const e of list.getEntries()) window.longTasks.push(e.duration); })
      .observe({ type: 'longtask', buffered: true });
  });
  let t = Date.now();
  await page.goto(`${ADMIN}/ui/`);
  await page.waitForFunction((n) => document.querySelectorAll('#overview tbody tr').length === n, ROUTES, { timeout: 30000 });
  figures.first_render_ms = Date.now() - t;

  // A keystroke in the filter and a sort click: the handlers rebuild the table synchronously.
  figures.filter_keystroke_ms = await page.evaluate(() => {
    const input = document.getElementById('filter-route');
    input.value = '/r1';
    const start = performance.now();
    input.dispatchEvent(new Event('input'));
    return performance.now() - start;
  });
  figures.filtered_rows = await page.locator('#overview tbody tr').count();
  await page.evaluate(() => {
    const input = document.getElementById('filter-route');
    input.value = '';
    input.dispatchEvent(new Event('input'));
  });
  figures.sort_click_ms = await page.evaluate(() => {
    const start = performance.now();
    document.querySelector('button[data-sort="route"]').click();
    return performance.now() - start;
  });

  // Live updates: 20 s of polling (10 polls, 2 with the history), the longest main-thread task.
  await page.evaluate(() => { window.longTasks = []; });
  await sleep(20000);
  const tasks = await page.evaluate(() => window.longTasks);
  figures.live_long_tasks_20s = tasks.length;
  figures.live_longest_task_ms = Math.round(Math.max(0, ...tasks));

  t = Date.now();
  await page.goto(`${ADMIN}/ui/#/route/${encodeURIComponent('/r7/{id}')}`);
  await page.locator('#samples a').first().waitFor({ timeout: 30000 });
  figures.route_view_ms = Date.now() - t;
  t = Date.now();
  await page.locator('#samples a').first().click();
  await page.locator('#json-diff').waitFor({ timeout: 30000 });
  figures.sample_view_ms = Date.now() - t;
  await close();

  const checks = [
    ['firstRender', figures.first_render_ms], ['filterKeystroke', figures.filter_keystroke_ms],
    ['sortClick', figures.sort_click_ms], ['liveUpdateLongestTask', figures.live_longest_task_ms],
    ['routeView', figures.route_view_ms], ['sampleView', figures.sample_view_ms],
  ];
  for (const [name, value] of checks) {
    if (!(value <= LIMITS[name])) {
      console.error(`too slow: ${name} ${value} ms > ${LIMITS[name]} ms`);
      failed = true;
    }
  }
  if (figures.samples_held !== SAMPLES || figures.routes !== ROUTES) {
    console.error(`setup: ${figures.samples_held} samples, ${figures.routes} routes`);
    failed = true;
  }
} catch (error) {
  console.error(`FAILED: ${error.stack || error.message}`);
  failed = true;
} finally {
  proxy.kill('SIGTERM');
  primary.close();
  shadow.close();
  rmSync(dir, { recursive: true, force: true });
}
for (const [key, value] of Object.entries(figures)) {
  if (typeof value === 'number') figures[key] = Math.round(value * 10) / 10;
}
console.log(JSON.stringify({ limits_ms: LIMITS, figures }, null, 2));
process.exit(failed ? 1 : 0);
