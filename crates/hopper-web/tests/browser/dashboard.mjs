// Drives the dashboard in headless Chromium: log in on one instance, see the
// firing alert, then on a second instance (same database, same admin token)
// find the failed job, retry it, see it finish; page through the job list
// and back; see the overview update itself, and save a screenshot of it;
// see a job the test dispatches (in a paused queue) come up in the open job
// list and then its cancel, with no reload, and, when the instance restarts,
// reconnect and show a job dispatched while it was down; then cancel the paused queue's
// jobs in bulk, confirming the count first.
//
// The test answers requests on standard input: this script prints
// `ask: dispatch` (answered with the new job's id), `ask: cancel ID`
// (answered once the job is cancelled) or `ask: restart` (the first
// instance shuts down, a job is dispatched, a new instance starts on the
// same address; answered with the job's id), and reads one line back.
//
// Settings come from the environment: BASE_URL and OTHER_URL (the two
// instances), ADMIN_TOKEN, JOB_ID, SCREENSHOT (a PNG path) and CHROMIUM
// (default /usr/bin/chromium).
// Any failure exits non-zero with the reason.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const need = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = need('BASE_URL');
const other = need('OTHER_URL');
const token = need('ADMIN_TOKEN');
const jobId = need('JOB_ID');
const screenshot = need('SCREENSHOT');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const step = (what) => console.log(`step: ${what}`);

const answers = createInterface({ input: process.stdin });
const pending = [];
const unread = [];
answers.on('line', (line) => {
  const waiter = pending.shift();
  if (waiter) waiter(line); else unread.push(line);
});
const ask = (request) => {
  console.log(`ask: ${request}`);
  if (unread.length) return Promise.resolve(unread.shift());
  return new Promise((resolve) => pending.push(resolve));
};
// The dashboard's live stream is open, and the server has read what it
// compares changes against.
const streaming = async (page) => {
  await page.waitForSelector('html[data-stream="open"]', { state: 'attached' });
  await page.waitForTimeout(1500);
};

const profile = mkdtempSync(join(tmpdir(), 'hopper-chromium-'));
let context;
try {
  step(`launch ${executablePath}`);
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    timeout: 30000,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(20000);

  step('the dashboard asks for the token');
  const first = await page.goto(`${base}/admin/queue`);
  if (first.status() !== 401) throw new Error(`expected 401 before login, got ${first.status()}`);
  await page.fill('#token', token);
  await Promise.all([page.waitForURL(`${base}/admin/queue`), page.click('button[type=submit]')]);
  await page.waitForSelector('h1:has-text("Overview")');

  step('the overview shows the firing alert');
  const alert = page.locator('#alerts tr.alert-firing', { hasText: 'flaky-failed' });
  await alert.waitFor();
  const summary = await alert.textContent();
  if (!summary.includes('flaky: 2 jobs failed for good in the last 10m')) {
    throw new Error(`unexpected alert row: ${summary}`);
  }

  const csrfHere = await page.getAttribute('input[name=csrf]', 'value');

  // The two instances listen on the same host, on two ports. Browsers scope
  // cookies by host, not port (RFC 6265, section 8.5), and SameSite compares
  // sites, which ignore ports, so the cookie the first instance set is sent
  // to the second as it would be to two instances behind one load-balanced
  // address; nothing is copied by hand. The second instance never saw this
  // login: it accepts the cookie only if it can check it on its own.
  step('the second instance accepts the session the first one started');
  const there = await page.goto(`${other}/admin/queue/jobs?state=failed`);
  if (there.status() !== 200) {
    throw new Error(`the second instance answered ${there.status()} to the session cookie`);
  }
  const csrfThere = await page.getAttribute('input[name=csrf]', 'value');
  if (!csrfHere || csrfThere !== csrfHere) {
    throw new Error(`the instances disagree on the CSRF token: ${csrfHere} vs ${csrfThere}`);
  }

  step('the failed job is listed');
  const row = page.locator(`tr[data-id="${jobId}"]`);
  await row.locator('.state-failed').waitFor();
  await row.locator(`a[href$="/jobs/${jobId}"]`).click();

  step('the job page shows the failure and offers retry, on the second instance');
  if (!page.url().startsWith(other)) throw new Error(`left the second instance: ${page.url()}`);
  await page.waitForSelector('#job-state[data-state="failed"]');
  await page.waitForSelector('#errors');
  await page.click('button:has-text("Retry")');

  step('the job finishes');
  await page.waitForSelector('#job-state[data-state="finished"]');
  if (!page.url().startsWith(other)) throw new Error(`left the second instance: ${page.url()}`);

  step('the job list pages to older jobs and back to the newest');
  const listed = () => page.$$eval('#jobs tr[data-id]', (rows) => rows.map((r) => Number(r.dataset.id)));
  const finishedList = `${base}/admin/queue/jobs?state=finished`;
  await page.goto(finishedList);
  if (await page.locator('#first-page').count() !== 0) throw new Error('the newest page links to itself');
  const newest = await listed();
  await Promise.all([page.waitForURL(/[?&]before=\d+/), page.click('#next-page')]);
  const older = await listed();
  if (older.length === 0 || Math.max(...older) >= Math.min(...newest)) {
    throw new Error(`the older page is not older: ${older} after ${newest}`);
  }
  await Promise.all([page.waitForURL(finishedList), page.click('#first-page')]);
  const again = await listed();
  if (again[0] !== newest[0]) throw new Error(`back on the newest page, ${again[0]} comes first, not ${newest[0]}`);

  step('the overview updates itself, without a reload');
  await page.goto(`${base}/admin/queue`);
  await page.waitForSelector('#throughput');
  await page.evaluate(() => { window.sameDocument = true; });
  await streaming(page);
  const before = Number(await page.textContent('#count-finished'));
  const dispatched = await fetch(`${base}/api/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'mail', payload: { to: 'live@example.com' } }),
  });
  if (dispatched.status !== 201) throw new Error(`dispatch over the API: ${dispatched.status}`);
  await page.waitForFunction(
    (n) => Number(document.getElementById('count-finished').textContent) > n, before);
  if (!(await page.evaluate(() => window.sameDocument === true))) {
    throw new Error('the page was reloaded');
  }

  step(`screenshot to ${screenshot}`);
  await page.screenshot({ path: screenshot, fullPage: true });

  step('a job dispatched elsewhere comes up in the job list, then its cancel, without a reload');
  await page.goto(`${base}/admin/queue/jobs?queue=live`);
  await page.waitForSelector('#jobs');
  await page.evaluate(() => { window.sameDocument = true; });
  await streaming(page);
  const liveId = (await ask('dispatch')).trim();
  const liveRow = page.locator(`#jobs tr[data-id="${liveId}"]`);
  await liveRow.locator('.state-pending').waitFor();
  await ask(`cancel ${liveId}`);
  await liveRow.locator('.state-cancelled').waitFor();
  if (!(await page.evaluate(() => window.sameDocument === true))) {
    throw new Error('the job list was reloaded');
  }

  step('the instance restarts: the page reconnects and shows a job dispatched meanwhile, without a reload');
  const missedId = (await ask('restart')).trim();
  await page.locator(`#jobs tr[data-id="${missedId}"] .state-pending`).waitFor({ timeout: 12000 });
  await page.waitForSelector('html[data-stream="open"]', { state: 'attached' });
  if (!(await page.evaluate(() => window.sameDocument === true))) {
    throw new Error('the job list was reloaded');
  }

  step('a bulk cancel shows the count to confirm, then says what it did');
  await page.goto(`${base}/admin/queue/jobs?state=pending&queue=reports`);
  const age = page.locator('#bulk input[name=older_than]');
  await age.fill('1m');
  await age.evaluate((field) => field.blur());
  await streaming(page);
  // A change elsewhere while the age is typed: the page must not swap.
  await ask('dispatch');
  await page.waitForTimeout(3000);
  if (await age.inputValue() !== '1m') throw new Error('the live refresh wiped the age typed in the bulk form');
  await Promise.all([page.waitForURL(/\/jobs\/bulk\?/), page.click('#bulk button[value=cancel]')]);
  const counted = (await page.textContent('#bulk-count')).trim();
  if (counted !== '3') throw new Error(`the confirmation counts ${counted} jobs, not 3`);
  await Promise.all([page.waitForURL(/\/jobs\?.*note=/), page.click('#bulk-confirm button')]);
  const note = await page.textContent('p.note');
  if (!note.includes('3 jobs matched') || !note.includes('3 cancelled')) {
    throw new Error(`unexpected note after the bulk cancel: ${note}`);
  }
  console.log('ok');
} finally {
  answers.close();
  process.stdin.destroy();
  if (context) await context.close();
  rmSync(profile, { recursive: true, force: true });
}
