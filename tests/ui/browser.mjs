// Shared by the browser test and the screenshot script: Debian's chromium, headless, with a
// fresh profile and nothing that reaches the network on its own.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/** A page in a new browser; `close()` ends the browser and removes its profile. */
export async function open({ width = 1440, height = 900, colorScheme = 'light' } = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'shadowtap-ui-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width, height },
    colorScheme,
  });
  const page = context.pages()[0] || (await context.newPage());
  const close = async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  };
  return { page, context, close };
}
