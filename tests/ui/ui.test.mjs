// The web page in a real browser against the real binary (started by tests/ui_browser.rs
// with upstreams whose answers differ in known places). Environment:
//   ADMIN     http://127.0.0.1:PORT of the admin port
//   LIVE      http://127.0.0.1:PORT of the proxy (to make new pairs)
//   TOKEN     the admin token (changes need it; reads are open)
//   EXPECT    JSON: {"routes": {label: {"pairs": n, "diverged": "100.0 %"}}, "route": label,
//             "paths": [pointers that differ], "field": pointer to pin}
//   SHOTS     directory for the screenshots of each view
// Exits 1 naming the first check that failed.
import { open } from './browser.mjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';

const { ADMIN, LIVE, TOKEN, SHOTS } = process.env;
const EXPECT = JSON.parse(process.env.EXPECT);
const WAIT = 15000;
mkdirSync(SHOTS, { recursive: true });

const { page, close } = await open();
const errors = [];
page.on('console', (message) => {
  if (message.type() === 'error') errors.push(`console: ${message.text()}`);
});
page.on('pageerror', (error) => errors.push(`page error: ${error.message}`));

const step = (name) => console.log(`- ${name}`);
const row = (label) => page.locator(`#overview tbody tr[data-route="${label}"][data-shadow="canary"]`);

try {
  step('the overview loads and shows every route with its counts');
  await page.goto(`${ADMIN}/ui/`);
  for (const [label, want] of Object.entries(EXPECT.routes)) {
    await row(label).locator('td.pairs').filter({ hasText: new RegExp(`^${want.pairs}$`) }).waitFor({ timeout: WAIT });
    assert.equal(await row(label).locator('td.diverged').innerText(), want.diverged, `${label} diverged`);
  }
  assert.equal(await page.locator('#overview tbody tr').count(), Object.keys(EXPECT.routes).length, 'one row per route');
  await page.locator('#live[data-state="live"]').waitFor({ timeout: WAIT });
  await page.screenshot({ path: join(SHOTS, 'overview.png') });

  step('filtering by route narrows the rows');
  await page.keyboard.press('/');
  await page.keyboard.type(EXPECT.route.slice(0, 4));
  await page.waitForFunction(() => document.querySelectorAll('#overview tbody tr').length === 1);
  await page.locator('#filter-route').fill('');

  step('a top field links into the route, whose samples open one pair');
  await row(EXPECT.route).locator('td.fields a', { hasText: EXPECT.field }).click();
  await page.locator(`.fields-table tr.highlight[data-field="${EXPECT.field}"]`).waitFor({ timeout: WAIT });
  await page.locator('#samples a').first().waitFor({ timeout: WAIT });
  await page.screenshot({ path: join(SHOTS, 'route.png'), fullPage: true });
  await page.locator('#samples a').first().click();
  await page.locator('#json-diff').waitFor({ timeout: WAIT });

  step('the sample lights exactly the differing JSON paths');
  const lit = async () => [...new Set(await page.locator('#json-diff [data-path].diff-hit').evaluateAll(
    (nodes) => nodes.map((node) => node.dataset.path)))].sort();
  assert.deepEqual(await lit(), [...EXPECT.paths].sort());
  // Equal containers are folded, those holding a difference open.
  const folded = await page.locator('#json-diff details:not([open])').count();
  assert.ok(folded >= 2, `equal subtrees are folded (${folded})`);
  await page.screenshot({ path: join(SHOTS, 'sample.png'), fullPage: true });

  step('the sample URL is a permalink');
  const permalink = page.url();
  assert.match(permalink, /#\/sample\//);
  await page.reload();
  await page.locator('#json-diff').waitFor({ timeout: WAIT });
  assert.deepEqual(await lit(), [...EXPECT.paths].sort());

  step('copy as curl holds the request, redacted');
  const curl = await page.locator('#curl-text').inputValue();
  assert.match(curl, /^curl -X 'GET' 'http:\/\//);
  assert.match(curl, /-H 'authorization: \[REDACTED\]'/);

  step('without the token the page is read-only');
  await page.goto(`${ADMIN}/ui/#/noise`);
  await page.locator('div.note.read-only').waitFor({ timeout: WAIT });
  await page.goto(`${ADMIN}/ui/#/route/${encodeURIComponent(EXPECT.route)}`);
  const pinNoise = page.locator(`.fields-table tr[data-field="${EXPECT.field}"] button[data-pin="noise"]`);
  await pinNoise.waitFor({ timeout: WAIT });
  assert.ok(await pinNoise.isDisabled(), 'pin disabled without the token');

  step('given the token, pinning a field moves it into the noise view');
  await page.locator('#token-button').click();
  await page.locator('#token-input').fill(TOKEN);
  await page.locator('#token-input').press('Enter');
  await page.locator('#token-button', { hasText: '✓' }).waitFor({ timeout: WAIT });
  await page.waitForFunction((field) => {
    const button = document.querySelector(`.fields-table tr[data-field="${field}"] button[data-pin="noise"]`);
    return button && !button.disabled;
  }, EXPECT.field, { timeout: WAIT });
  await page.locator(`.fields-table tr[data-field="${EXPECT.field}"] button[data-pin="noise"]`).click();
  await page.locator('.toast', { hasText: 'pinned as noise' }).waitFor({ timeout: WAIT });
  await page.keyboard.press('n');
  const pinned = page.locator(`section.noise-route[data-route="${EXPECT.route}"] tr[data-field="${EXPECT.field}"][data-state="pinned_noise"]`);
  await pinned.waitFor({ timeout: WAIT });
  assert.match(await pinned.innerText(), /running proxy/);
  await page.screenshot({ path: join(SHOTS, 'noise.png'), fullPage: true });

  step('the overview updates live as new pairs arrive');
  await page.keyboard.press('o');
  const pairs = row(EXPECT.route).locator('td.pairs');
  await pairs.waitFor({ timeout: WAIT });
  const before = Number(await pairs.innerText());
  for (let i = 0; i < 3; i += 1) {
    const response = await fetch(`${LIVE}${EXPECT.live_path}${100 + i}`);
    assert.equal(response.status, 200);
    await response.arrayBuffer();
  }
  await pairs.filter({ hasText: new RegExp(`^${before + 3}$`) }).waitFor({ timeout: WAIT });

  step('the page in dark mode');
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: join(SHOTS, 'overview-dark.png') });

  assert.deepEqual(errors, [], 'no console error');

  step('an admin port that stops answering is called unreachable');
  // Checked last: the refused requests are logged as console errors by the browser.
  await page.route('**/api/v1/**', (route) => route.abort('connectionrefused'));
  await page.locator('#live[data-state="down"]', { hasText: 'unreachable' }).waitFor({ timeout: WAIT });
  console.log('ok');
} catch (error) {
  console.error(`FAILED: ${error.message}`);
  if (errors.length) console.error(errors.join('\n'));
  await page.screenshot({ path: join(SHOTS, 'failure.png'), fullPage: true }).catch(() => {});
  process.exitCode = 1;
} finally {
  await close();
}
