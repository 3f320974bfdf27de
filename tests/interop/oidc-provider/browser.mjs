// The browser for EMA's oidc-provider interop test: Debian's Chromium (headless), driven by
// playwright-core, plays the user. Usage: node browser.mjs <authorization URL>
//
// It opens the URL, signs in on oidc-provider's login page as $EMA_TEST_USER (password `demo`),
// approves the consent page, follows the redirect to EMA's loopback listener
// (http://127.0.0.1:<port>/callback) and waits for "You are signed in". With $EMA_TEST_ARTIFACTS
// set it saves a screenshot of the final page there (oidc-provider-signed-in[-<user>].png).
// Exits 0 only on success; the steps go to stderr (and to $EMA_TEST_BROWSER_LOG when set).
import { appendFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

const url = process.argv[2];
const user = process.env.EMA_TEST_USER || 'alice';
const password = process.env.EMA_TEST_PASSWORD || 'demo';
const executablePath = process.env.EMA_CHROMIUM || '/usr/bin/chromium';
const artifacts = process.env.EMA_TEST_ARTIFACTS;
const logFile = process.env.EMA_TEST_BROWSER_LOG;
const STEP_TIMEOUT = 20_000;

const log = (msg) => {
  const line = `[browser ${new Date().toISOString()}] ${msg}`;
  console.error(line);
  if (logFile) appendFileSync(logFile, `${line}\n`);
};
// Never log the query (state, nonce, code challenge, code): only where the page is.
const where = (u) => {
  try {
    const p = new URL(u);
    return `${p.origin}${p.pathname}`;
  } catch {
    return '(unparsable URL)';
  }
};

if (!url) {
  log('usage: node browser.mjs <authorization URL>');
  process.exit(2);
}

const profile = mkdtempSync(join(tmpdir(), 'ema-chromium-'));
let context;
let ok = false;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(STEP_TIMEOUT);
  log(`opening ${where(url)} as ${user}`);
  await page.goto(url);

  // oidc-provider's devInteractions: a login page, then a consent page ("Authorize").
  for (let step = 0; step < 4; step += 1) {
    await page.waitForLoadState('domcontentloaded');
    if (new URL(page.url()).pathname === '/callback') break;
    const prompt = await page.locator('input[name="prompt"]').first().getAttribute('value', { timeout: STEP_TIMEOUT });
    log(`page ${where(page.url())}: prompt ${prompt}`);
    if (prompt === 'login') {
      await page.fill('input[name="login"]', user);
      await page.fill('input[name="password"]', password);
    } else if (prompt !== 'consent') {
      throw new Error(`unexpected interaction prompt ${prompt}`);
    }
    const before = page.url();
    await Promise.all([
      page.waitForURL((u) => u.href !== before, { timeout: STEP_TIMEOUT }),
      page.click('button[type="submit"]'),
    ]);
  }
  await page.waitForURL((u) => u.hostname === '127.0.0.1' && u.pathname === '/callback', { timeout: STEP_TIMEOUT });
  await page.getByText('You are signed in').waitFor({ timeout: STEP_TIMEOUT });
  log(`signed in: ${where(page.url())} says "${(await page.locator('h1').innerText()).trim()}"`);
  if (artifacts) {
    mkdirSync(artifacts, { recursive: true });
    const name = user === 'alice' ? 'oidc-provider-signed-in.png' : `oidc-provider-signed-in-${user}.png`;
    await page.screenshot({ path: join(artifacts, name) });
    log(`screenshot: ${join(artifacts, name)}`);
  }
  ok = true;
} catch (e) {
  log(`FAILED: ${e.message.split('\n')[0]}`);
} finally {
  await context?.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.exit(ok ? 0 : 1);
