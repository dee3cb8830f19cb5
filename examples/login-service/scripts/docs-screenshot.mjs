// Drives the Swagger UI at /docs the way a person would: log in with
// "Try it out", paste the access token into "Authorize", call /auth/me, and
// save a screenshot of the answer. Uses Debian's chromium (no browser
// download): apt-get install chromium; npm ci; node docs-screenshot.mjs
//
// BASE_URL   running service (default http://127.0.0.1:3000)
// SCREENSHOT output file (default docs-screenshot.png)
import { chromium } from 'playwright-core';

const base = process.env.BASE_URL ?? 'http://127.0.0.1:3000';
const output = process.env.SCREENSHOT ?? 'docs-screenshot.png';
const email = process.env.DOCS_EMAIL ?? 'docs-demo@example.com';
const password = process.env.DOCS_PASSWORD ?? 'correct horse battery staple';

// The account to log in with; 409 means it exists from an earlier run.
const registered = await fetch(`${base}/auth/register`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ email, password }),
});
if (![201, 409].includes(registered.status)) {
  throw new Error(`register answered ${registered.status}: ${await registered.text()}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1400 } });
  // The page must work offline: note any request that leaves the service.
  const offsite = [];
  page.on('request', (request) => {
    if (!request.url().startsWith(base) && !request.url().startsWith('data:')) {
      offsite.push(request.url());
    }
  });
  // The page must also live within its Content-Security-Policy: a blocked
  // script, style or image would be a console error naming the policy.
  const blocked = [];
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content Security Policy/i.test(message.text())) {
      blocked.push(message.text());
    }
  });
  await page.goto(`${base}/docs/`);
  await page.waitForSelector('#operations-auth-login');

  const login = page.locator('#operations-auth-login');
  await login.locator('.opblock-summary').click();
  await login.locator('button.try-out__btn').click();
  await login.locator('textarea.body-param__text').fill(JSON.stringify({ email, password }, null, 2));
  await login.locator('button.execute').click();
  const loginBody = login.locator('.live-responses-table .response-col_description pre').first();
  await loginBody.waitFor();
  const tokens = JSON.parse(await loginBody.innerText());
  if (!tokens.access_token) throw new Error(`login through the page failed: ${JSON.stringify(tokens)}`);
  await login.locator('.opblock-summary').click();

  await page.locator('.auth-wrapper button.authorize').click();
  const dialog = page.locator('.modal-ux');
  await dialog.locator('input[type=text]').fill(tokens.access_token);
  await dialog.locator('button.authorize').click();
  await dialog.locator('button.btn-done').click();

  const me = page.locator('#operations-auth-me');
  await me.locator('.opblock-summary').click();
  await me.locator('button.try-out__btn').click();
  await me.locator('button.execute').click();
  const status = me.locator('.live-responses-table .response .response-col_status').first();
  await status.waitFor();
  const meBody = me.locator('.live-responses-table .response-col_description pre').first();
  const claims = JSON.parse(await meBody.innerText());
  if ((await status.innerText()).trim() !== '200' || claims.email !== email) {
    throw new Error(`/auth/me through the page answered ${await status.innerText()}: ${JSON.stringify(claims)}`);
  }

  // Frame the operation (with its padlock) down to the response body.
  await me.locator('.opblock-summary').evaluate((el) => el.scrollIntoView({ block: 'start' }));
  await page.screenshot({ path: output });
  if (offsite.length > 0) throw new Error(`docs page fetched ${offsite.join(', ')}`);
  if (blocked.length > 0) throw new Error(`the CSP blocked: ${blocked.join(' | ')}`);
  console.log(`/auth/me answered 200 for ${claims.email} (scope "${claims.scope}"); screenshot: ${output}`);
} finally {
  await browser.close();
}
