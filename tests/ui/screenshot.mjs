// Takes the README's picture of the page: node screenshot.mjs <page URL> <out.png>
// (used against `shadowtap demo` after a few minutes, so the sparklines have a history).
import { open } from './browser.mjs';

const [url, out] = process.argv.slice(2);
const { page, close } = await open({ width: 1440, height: 560 });
await page.goto(url);
await page.locator('#overview tbody tr').first().waitFor();
await page.locator('#live[data-state="live"]').waitFor();
await page.screenshot({ path: out });
await close();
