// The researchers' dashboard in headless Chromium. With WEARHOUSE_WEB_URL set it drives that
// deployment (nginx + the real API); without, it starts tests/browser/fake_api.mjs, which serves
// frontend/dist and the API contract from generated data.
//
// Every view needs a signed-in user. Against the fake the test uses the fake's own users.
// Against a real deployment it needs:
//   WEARHOUSE_TEST_EMAIL, WEARHOUSE_TEST_PASSWORD   a local account that may read data of at
//       least one study with participants (the test fails at once without them); one wrong
//       password and one unknown e-mail are tried, well under the throttling limits
//   WEARHOUSE_TEST_FOREIGN_PARTICIPANT   optional: a participant of a study that account is
//       not in; without it the "another study's participant is refused" step is skipped
// There, an expiring session is simulated by dropping the session cookie, and throttling,
// single sign-on and the coordinator's refusal run against the fake only.
//
// Against a real deployment, WEARHOUSE_API_STOP_CMD / WEARHOUSE_API_START_CMD (shell commands)
// let the test stop the API behind nginx and start it again; without them the "API answers
// 5xx" case is skipped there, while the "unreachable" case still runs by cutting requests
// in the browser.
import assert from 'node:assert/strict';
import { execSync } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startFakeApi } from './fake_api.mjs';
import { COOKIE, IDLE_SECS, USERS } from './fake_auth.mjs';

const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const CHROMIUM = process.env.WEARHOUSE_CHROMIUM || '/usr/bin/chromium';
const STOP_API = process.env.WEARHOUSE_API_STOP_CMD;
// A browser far from UTC shows whether the page keeps days in UTC, as the daily rollups are.
const BROWSER_TZ = process.env.WEARHOUSE_TEST_TZ || 'America/New_York';
const START_API = process.env.WEARHOUSE_API_START_CMD;
const GENERIC_FAILURE = /^The e-mail address or password is incorrect\.$/;

let credentials;
let foreignParticipant;

let fake = null;
let baseUrl;
let context;
let profile;

before(async () => {
  if (process.env.WEARHOUSE_WEB_URL) {
    baseUrl = new URL(process.env.WEARHOUSE_WEB_URL).href;
    const email = process.env.WEARHOUSE_TEST_EMAIL;
    const password = process.env.WEARHOUSE_TEST_PASSWORD;
    if (!email || !password) {
      throw new Error('against WEARHOUSE_WEB_URL, set WEARHOUSE_TEST_EMAIL and WEARHOUSE_TEST_PASSWORD to a user who may read data');
    }
    credentials = { email, password, role: null };
    foreignParticipant = process.env.WEARHOUSE_TEST_FOREIGN_PARTICIPANT || null;
  } else {
    fake = await startFakeApi();
    baseUrl = fake.url;
    credentials = USERS.find((u) => u.role === 'researcher' && u.studies.includes('demo'));
    foreignParticipant = 'Q001';
  }
  await mkdir(ARTIFACTS, { recursive: true });
  profile = await mkdtemp(join(tmpdir(), 'wearhouse-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1366, height: 900 },
    timezoneId: BROWSER_TZ,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  context.setDefaultTimeout(20_000);
});

after(async () => {
  await context?.close();
  await fake?.close();
  if (profile) await rm(profile, { recursive: true, force: true });
});

/** Waits until the API behind the web server answers again after a restart. */
async function apiAnswers() {
  for (let attempt = 0; attempt < 120; attempt++) {
    try {
      // A public route: every other one answers 401 to this unauthenticated probe.
      const response = await fetch(new URL('api/auth/providers', baseUrl));
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error('the API did not come back within a minute of WEARHOUSE_API_START_CMD');
}

/** Fills in the sign-in form and submits it. */
async function submitSignIn(page, { email, password }) {
  await page.getByLabel('E-mail', { exact: true }).fill(email);
  await page.getByLabel('Password').fill(password);
  await page.locator('#sign-in-submit').click();
}

/** Signs in from the sign-in page and waits for the dashboard. */
async function signIn(page, user = credentials) {
  await page.locator('#sign-in').waitFor({ state: 'visible' });
  await submitSignIn(page, user);
  await page.locator('#dashboard').waitFor({ state: 'visible' });
}

/** A fresh tab on the page, with its errors reported. */
async function newTab() {
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error(`page error: ${err.message}`));
  return page;
}

/**
 * Opens the dashboard (with an optional query string) in a fresh tab, signing in first if
 * the page asks; it returns early when the page can only show an error.
 */
async function open(query = '') {
  const page = await newTab();
  await page.goto(new URL(query, baseUrl).href);
  await page.locator('#dashboard:not([hidden]), #sign-in:not([hidden]), #error:not([hidden])').first().waitFor();
  if (await page.locator('#sign-in').isVisible()) await signIn(page);
  return page;
}

/** The session cookie the browser holds, or undefined. */
async function sessionCookie() {
  return (await context.cookies(baseUrl)).find((c) => c.name === COOKIE);
}

/** Status of an API call made by the page itself, with its cookies. */
function pageFetchStatus(page, path, init = {}) {
  return page.evaluate(async ([p, i]) => (await fetch(p, i)).status, [path, init]);
}

/** What of the dashboard is still on the page: options, chart points, table rows, text. */
function leftOnScreen(page) {
  return page.evaluate(() => ({
    options: document.querySelectorAll('#participant option, #metric option').length,
    chartPoints: window.wearhouseChart.data.datasets.reduce((n, d) => n + d.data.length, 0),
    rows: document.querySelectorAll('#table-body tr').length,
    text: document.body.innerText,
  }));
}

/** Waits until the chart finished loading and returns what it shows. */
async function chartState(page) {
  await page.waitForFunction(() => {
    const wrap = document.getElementById('chart-wrap');
    return window.wearhouseChart && wrap.getAttribute('aria-busy') === 'false';
  });
  return page.evaluate(() => {
    const c = window.wearhouseChart;
    const real = (d) => d.data.filter((p) => p.y !== null).length;
    return {
      average: real(c.data.datasets[2]),
      min: real(c.data.datasets[0]),
      max: real(c.data.datasets[1]),
      resolution: document.getElementById('resolution').dataset.resolution ?? null,
      resolutionShown: document.getElementById('resolution').textContent,
    };
  });
}

/** Waits for the table to show a page and returns "Page N of M" and the first row. */
async function tableState(page, expectedPage) {
  const info = page.locator('#page-info');
  await info.filter({ hasText: new RegExp(`^Page ${expectedPage} of \\d+`) }).waitFor();
  const text = await info.textContent();
  const [, n, m] = text.match(/^Page (\d+) of (\d+)/);
  return {
    page: Number(n),
    pages: Number(m),
    firstRow: await page.locator('#table-body tr').first().textContent(),
    rows: await page.locator('#table-body tr').count(),
  };
}

describe('signing in', () => {
  test('a wrong password shows the generic error, the right one opens the dashboard on the linked view', async () => {
    await context.clearCookies();
    const page = await newTab();
    await page.goto(new URL('?metric=steps&range=week', baseUrl).href);
    await page.locator('#sign-in').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#dashboard').isVisible(), false, 'no dashboard before sign-in');
    assert.equal(await page.locator('#account').isVisible(), false);
    assert.equal(await page.getByLabel('E-mail', { exact: true }).getAttribute('autocomplete'), 'username');
    assert.equal(await page.getByLabel('Password').getAttribute('autocomplete'), 'current-password');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'email', 'the e-mail field has focus');
    if (fake) assert.equal(await page.locator('#sso').isVisible(), false, 'no single sign-on unless configured');
    await page.screenshot({ path: join(ARTIFACTS, 'sign-in.png') });

    const error = page.locator('#sign-in-error');
    await submitSignIn(page, { email: credentials.email, password: `${credentials.password}-wrong` });
    await error.waitFor({ state: 'visible' });
    assert.match(await error.textContent(), GENERIC_FAILURE);
    assert.equal(await error.getAttribute('role'), 'alert');
    assert.equal(await page.getByLabel('Password').getAttribute('aria-invalid'), 'true');
    assert.equal(await page.getByLabel('Password').inputValue(), '', 'the refused password is cleared');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'password');
    await page.screenshot({ path: join(ARTIFACTS, 'sign-in-refused.png') });

    // An unknown e-mail reads exactly the same, so the form does not tell who has an account.
    await submitSignIn(page, { email: 'nobody-here@example.invalid', password: credentials.password });
    await page.locator('#sign-in-form[aria-busy="false"]').waitFor();
    assert.match(await error.textContent(), GENERIC_FAILURE);
    assert.equal(await page.locator('#dashboard').isVisible(), false);

    await submitSignIn(page, credentials);
    await page.locator('#dashboard').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#sign-in').isVisible(), false);
    assert.equal(await page.locator('#account-email').textContent(), credentials.email);
    assert.match(await page.locator('#account-role').textContent(), credentials.role ? new RegExp(`^${credentials.role}\\b`) : /\w/);
    assert.equal(await page.getByRole('button', { name: 'Sign out' }).isVisible(), true);
    const chart = await chartState(page);
    assert.ok(chart.average > 0, 'the chart shows the view the link named');
    assert.equal(await page.locator('#metric').inputValue(), 'steps');
    assert.equal(await page.locator('#range-week').isChecked(), true);

    const cookie = await sessionCookie();
    assert.ok(cookie, 'a session cookie is set');
    assert.equal(cookie.httpOnly, true, 'the session cookie is HttpOnly');
    assert.equal(cookie.sameSite, 'Strict');
    assert.doesNotMatch(await page.evaluate(() => document.cookie), new RegExp(COOKIE), 'scripts cannot read it');
    await page.close();
  });
});

describe('the researchers dashboard', () => {
  test('loads and charts the average with its min-max band for the default view', async () => {
    const page = await open();
    const chart = await chartState(page);
    assert.ok(chart.average > 0, 'the chart shows average points');
    assert.equal(chart.min, chart.average, 'the band has a lower edge for every point');
    assert.equal(chart.max, chart.average, 'the band has an upper edge for every point');
    assert.ok(chart.resolution, 'the resolution the API chose is shown');
    assert.ok(await page.locator('#participant option').count() > 0);
    assert.ok(await page.locator('#metric option[value="heart_rate"]').count() === 1);
    assert.equal(await page.locator('#error').isVisible(), false);
    await tableState(page, 1);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });
    await page.close();
  });

  test('going from a day to a year changes the resolution shown', async () => {
    const page = await open('?range=day');
    const day = await chartState(page);
    assert.ok(day.average > 0);
    await page.getByText('Year', { exact: true }).click();
    await page.waitForFunction(
      (before) => document.getElementById('resolution').dataset.resolution !== before,
      day.resolution,
    );
    const year = await chartState(page);
    assert.notEqual(year.resolution, day.resolution);
    assert.notEqual(year.resolutionShown, day.resolutionShown);
    assert.ok(year.average > 0, 'the year view shows points too');
    assert.match(page.url(), /range=year/);

    // Daily buckets are UTC days; the table must not shift them into the browser's zone.
    await page.waitForFunction(() => /^\d{4}-\d{2}-\d{2}$/.test(document.querySelector('#table-body time')?.textContent ?? ''));
    const stamp = page.locator('#table-body time').first();
    const shown = await stamp.textContent();
    const instant = await stamp.getAttribute('datetime');
    assert.equal(year.resolution, '1d', 'a year of heart rate fits the budget only as daily buckets');
    assert.equal(shown, instant.slice(0, 10));
    await page.close();
  });

  test('table paging moves through the rows and the page survives a reload', async () => {
    const page = await open('?range=day&page_size=25');
    await chartState(page);
    const first = await tableState(page, 1);
    assert.ok(first.pages > 1, 'a day of minutes spans several pages');
    assert.equal(first.rows, 25);
    assert.equal(await page.locator('#prev').isDisabled(), true);

    await page.locator('#next').click();
    const second = await tableState(page, 2);
    assert.equal(second.pages, first.pages);
    assert.notEqual(second.firstRow, first.firstRow);
    assert.match(page.url(), /page=2/);

    await page.reload();
    await chartState(page);
    const reloaded = await tableState(page, 2);
    assert.equal(reloaded.firstRow, second.firstRow);

    await page.locator('#prev').click();
    const back = await tableState(page, 1);
    assert.equal(back.firstRow, first.firstRow);
    await page.close();
  });

  test('the chosen participant, metric and range are kept in the link', async () => {
    const page = await open();
    await chartState(page);
    const ids = await page.locator('#participant option').evaluateAll((os) => os.map((o) => o.value));
    const participant = ids[ids.length > 1 ? 1 : 0];
    await page.locator('#participant').selectOption(participant);
    await page.locator('#metric').selectOption('steps');
    await page.getByText('Week', { exact: true }).click();
    await page.waitForURL(/range=week/);
    await chartState(page);

    const shared = await open(new URL(page.url()).search);
    await chartState(shared);
    assert.equal(await shared.locator('#participant').inputValue(), participant);
    assert.equal(await shared.locator('#metric').inputValue(), 'steps');
    assert.equal(await shared.locator('#range-week').isChecked(), true);
    await shared.close();
    await page.close();
  });

  test('a custom range typed into the date fields is charted and kept in the link', async () => {
    const page = await open('?range=day');
    await chartState(page);
    const lastDay = await page.locator('#end').inputValue();
    const from = new Date(`${lastDay}T00:00:00Z`);
    from.setUTCDate(from.getUTCDate() - 2);
    const firstDay = from.toISOString().slice(0, 10);
    await page.locator('#start').fill(firstDay);
    assert.equal(await page.locator('#range-custom').isChecked(), true, 'typing a date selects Custom');
    await page.locator('#apply').click();
    await page.waitForURL(new RegExp(`range=custom&start=${firstDay}&end=${lastDay}`));
    const chart = await chartState(page);
    assert.ok(chart.average > 0);
    assert.match(await page.locator('#chart-subtitle').textContent(), /–/, 'the subtitle names a span of days');

    await page.reload();
    await chartState(page);
    assert.equal(await page.locator('#start').inputValue(), firstDay);
    assert.equal(await page.locator('#end').inputValue(), lastDay);
    await page.close();
  });

  test('an end date before the start date is refused without asking the API', async () => {
    const dataRequests = () => fake?.requests.filter((u) => u.pathname === '/api/data').length;
    const before = dataRequests();
    const page = await open('?range=custom&start=2025-06-10&end=2025-06-05');
    const banner = page.locator('#error');
    await banner.waitFor({ state: 'visible' });
    assert.match(await banner.textContent(), /end date is before the start date/);
    assert.equal(await page.locator('#retry').isVisible(), false);
    assert.equal(dataRequests(), before);
    await page.close();
  });

  test('the range can be changed with the keyboard alone', async () => {
    const page = await open('?range=day');
    const day = await chartState(page);
    await page.locator('#range-day').focus();
    await page.keyboard.press('ArrowRight');
    await page.waitForURL(/range=week/);
    const week = await chartState(page);
    assert.notEqual(week.resolution, day.resolution);
    assert.equal(await page.evaluate(() => document.activeElement.id), 'range-week');
    await page.close();
  });

  test('an unreachable API shows an error, and retry recovers once it is back', async () => {
    const page = await context.newPage();
    await page.route('**/api/**', (route) => route.abort('connectionrefused'));
    await page.goto(baseUrl);
    const banner = page.locator('#error');
    await banner.waitFor({ state: 'visible' });
    assert.match(await banner.textContent(), /could not be reached/i);
    assert.match(await page.locator('#status').textContent(), /^Error/);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-unreachable.png') });

    await page.unroute('**/api/**');
    await page.locator('#retry').click();
    const chart = await chartState(page);
    assert.ok(chart.average > 0);
    assert.equal(await banner.isVisible(), false);
    await page.close();
  });

  test('an API answering 5xx while the page is open shows the error message', async (t) => {
    if (!fake && !(STOP_API && START_API)) {
      t.skip('set WEARHOUSE_API_STOP_CMD and WEARHOUSE_API_START_CMD to stop the real API');
      return;
    }
    const page = await open('?range=day');
    assert.ok((await chartState(page)).average > 0);
    if (fake) fake.setMode('unavailable');
    else execSync(STOP_API, { stdio: 'inherit' });
    try {
      await page.getByText('Month', { exact: true }).click();
      const banner = page.locator('#error');
      await banner.waitFor({ state: 'visible' });
      const text = await banner.textContent();
      if (fake) assert.match(text, /HTTP 503[\s\S]*database unavailable/);
      // Behind nginx a stopped API is a 502; without a proxy in between, a refused connection.
      else assert.match(text, /HTTP 5\d\d|could not be reached/i);
      assert.equal((await chartState(page)).average, 0, 'no stale series stays on screen');
    } finally {
      if (fake) fake.setMode('ok');
      else {
        execSync(START_API, { stdio: 'inherit' });
        await apiAnswers();
      }
    }
    await page.locator('#retry').click();
    await page.locator('#error').waitFor({ state: 'hidden' });
    assert.ok((await chartState(page)).average > 0);
    await page.close();
  });

  test('a connection the API drops shows an error', async (t) => {
    if (!fake) {
      t.skip('only the fake API can drop connections on demand');
      return;
    }
    fake.setMode('down');
    try {
      const page = await open();
      await page.locator('#error').waitFor({ state: 'visible' });
      assert.match(await page.locator('#error').textContent(), /could not be reached/i);
      await page.close();
    } finally {
      fake.setMode('ok');
    }
  });

  test('a participant without data gets an empty state, not an error', async (t) => {
    if (!fake) {
      t.skip('the real cohort may have data for everyone');
      return;
    }
    const page = await open('?participant=P004&range=week');
    const chart = await chartState(page);
    assert.equal(chart.average, 0);
    assert.match(await page.locator('#chart-empty').textContent(), /No heart rate data for P004/);
    assert.equal(await page.locator('#error').isVisible(), false);
    await page.close();
  });
});

describe('who may see what', () => {
  test("only the user's studies' participants are listed, and another study's participant is refused", async (t) => {
    const page = await open('?range=week');
    await chartState(page);
    const ids = await page.locator('#participant option').evaluateAll((os) => os.map((o) => o.value));
    assert.ok(ids.length > 0);
    if (fake) {
      assert.deepEqual(ids, ['P001', 'P002', 'P003', 'P004', 'P005'], "only the demo study's participants");
      assert.deepEqual(await page.locator('#participant optgroup').evaluateAll((gs) => gs.map((g) => g.label)), ['Study demo']);
    }
    await page.close();
    if (!foreignParticipant) {
      t.skip('set WEARHOUSE_TEST_FOREIGN_PARTICIPANT to a participant outside the test user\'s studies to check the refusal');
      return;
    }
    assert.ok(!ids.includes(foreignParticipant), `${foreignParticipant} is not offered`);

    const refused = await open(`?participant=${encodeURIComponent(foreignParticipant)}&metric=heart_rate&range=week`);
    const banner = refused.locator('#error');
    await banner.waitFor({ state: 'visible' });
    assert.match(await banner.textContent(), new RegExp(`${foreignParticipant} was not found or is not in your studies`));
    assert.equal(await refused.locator('#retry').isVisible(), false, 'nothing to retry');
    const chart = await chartState(refused);
    assert.equal(chart.average, 0, 'no chart data');
    assert.equal(await refused.locator('#table-body').textContent(), 'No rows.');
    assert.equal(await refused.locator('#participant').inputValue(), foreignParticipant, 'the picker says what was asked for');
    await refused.screenshot({ path: join(ARTIFACTS, 'dashboard-refused.png'), fullPage: true });

    // Choosing one of the user's own participants from there shows data again.
    await refused.locator('#participant').selectOption(ids[0]);
    await refused.locator('#error').waitFor({ state: 'hidden' });
    assert.ok((await chartState(refused)).average > 0);
    await refused.close();
  });

  test('a role that may not read data is told so', async (t) => {
    if (!fake) {
      t.skip('needs a second account with a role that may not read data; the fake has one');
      return;
    }
    await context.clearCookies();
    const page = await newTab();
    await page.goto(new URL('?participant=P001&range=week', baseUrl).href);
    await signIn(page, USERS.find((u) => u.role === 'coordinator'));
    const banner = page.locator('#error');
    await banner.waitFor({ state: 'visible' });
    assert.match(await banner.textContent(), /P001 is not available to you: your role \(coordinator\) may not read its data/);
    assert.equal((await chartState(page)).average, 0);
    await page.locator('#sign-out').click();
    await page.locator('#sign-in').waitFor({ state: 'visible' });
    await page.close();
  });

  test('a session that ends mid-use returns to sign-in, then to the same view', async () => {
    const page = await open('?range=week');
    await chartState(page);
    const ids = await page.locator('#participant option').evaluateAll((os) => os.map((o) => o.value));
    const participant = ids[ids.length > 1 ? 1 : 0];
    await page.locator('#participant').selectOption(participant);
    await page.locator('#metric').selectOption('steps');
    await chartState(page);
    assert.match(page.url(), /metric=steps/);

    // The fake's clock passes the idle timeout, so its server-side session expires; a real
    // deployment cannot be made to wait, so there the cookie is dropped instead.
    if (fake) fake.auth.advanceClock(IDLE_SECS + 60);
    else await context.clearCookies({ name: COOKIE });
    await page.getByText('Month', { exact: true }).click();

    await page.locator('#sign-in').waitFor({ state: 'visible' });
    assert.match(await page.locator('#sign-in-notice').textContent(), /session has ended/);
    assert.equal(await page.getByLabel('E-mail', { exact: true }).inputValue(), credentials.email, 'the e-mail is filled in again');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'password');
    assert.equal(await page.locator('#dashboard').isVisible(), false);
    const left = await leftOnScreen(page);
    assert.equal(left.options, 0, 'no participant or metric list is left');
    assert.equal(left.chartPoints, 0, 'no chart data is left');
    assert.equal(left.rows, 0, 'no table rows are left');
    assert.ok(!left.text.includes(participant), 'the participant is no longer named on the page');
    await page.screenshot({ path: join(ARTIFACTS, 'session-ended.png') });

    await signIn(page);
    const chart = await chartState(page);
    assert.ok(chart.average > 0);
    assert.equal(await page.locator('#participant').inputValue(), participant);
    assert.equal(await page.locator('#metric').inputValue(), 'steps');
    assert.equal(await page.locator('#range-month').isChecked(), true);
    assert.match(page.url(), new RegExp(`participant=${participant}&metric=steps&range=month`));
    await page.close();
  });

  test('too many failed sign-ins are throttled, with the wait shown', async (t) => {
    if (!fake) {
      t.skip('a real deployment would lock the test account and address out for the window');
      return;
    }
    await context.clearCookies();
    const victim = USERS.find((u) => u.studies.includes('pilot'));
    const page = await newTab();
    await page.goto(baseUrl);
    const error = page.locator('#sign-in-error');
    let text = '';
    for (let attempt = 0; attempt < 10 && !/Too many/.test(text); attempt++) {
      await submitSignIn(page, { email: victim.email, password: `wrong ${attempt}` });
      await page.locator('#sign-in-form[aria-busy="false"]').waitFor();
      text = await error.textContent();
      if (!/Too many/.test(text)) assert.match(text, GENERIC_FAILURE);
    }
    assert.match(text, /^Too many sign-in attempts\. Try again in 15 minutes\.$/);
    assert.equal(await page.locator('#sign-in-submit').isDisabled(), true, 'the form waits');
    await page.screenshot({ path: join(ARTIFACTS, 'sign-in-throttled.png') });

    // The right password does not get through the throttle either.
    const status = await pageFetchStatus(page, 'api/auth/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email: victim.email, password: victim.password }),
    });
    assert.equal(status, 429);
    await page.close();
  });

  test('single sign-on is offered when configured and comes back to the view', async (t) => {
    if (!fake) {
      t.skip('needs an identity provider; the fake API brings its own');
      return;
    }
    await context.clearCookies();
    fake.auth.oidc = { name: 'Example SSO', email: credentials.email };
    try {
      const page = await newTab();
      await page.goto(new URL('?metric=steps&range=week#chart', baseUrl).href);
      const button = page.getByRole('button', { name: 'Sign in with Example SSO' });
      await button.waitFor({ state: 'visible' });
      await button.click();
      await page.locator('#dashboard').waitFor({ state: 'visible' });
      const start = fake.requests.findLast((u) => u.pathname === '/api/auth/oidc/start');
      assert.equal(start.searchParams.get('return_to'), '/?metric=steps&range=week#chart');
      assert.equal(await page.locator('#account-email').textContent(), credentials.email);
      assert.ok((await chartState(page)).average > 0);
      assert.equal(await page.locator('#metric').inputValue(), 'steps');
      assert.equal(await page.locator('#range-week').isChecked(), true);
      await page.close();
    } finally {
      fake.auth.oidc = null;
    }
  });

  test('signing out ends the session on the server and leaves no data on screen', async () => {
    const page = await open('?range=day');
    await chartState(page);
    const participant = await page.locator('#participant').inputValue();
    const cookie = await sessionCookie();
    assert.ok(cookie);

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.locator('#sign-in').waitFor({ state: 'visible' });
    assert.match(await page.locator('#sign-in-notice').textContent(), /signed out/);
    assert.equal(await page.locator('#account').isVisible(), false);
    assert.equal(await page.locator('#dashboard').isVisible(), false);
    const left = await leftOnScreen(page);
    assert.deepEqual([left.options, left.chartPoints, left.rows], [0, 0, 0]);
    assert.ok(!left.text.includes(participant), 'the participant is no longer named on the page');
    assert.equal(new URL(page.url()).search, '', 'the next person starts from a blank view');
    await page.screenshot({ path: join(ARTIFACTS, 'signed-out.png') });

    assert.equal(await pageFetchStatus(page, 'api/auth/me'), 401);
    assert.equal(await sessionCookie(), undefined, 'the cookie is cleared');
    // The old cookie, replayed, no longer opens anything: the session ended on the server.
    const replayed = await fetch(new URL('api/participants', baseUrl), { headers: { Cookie: `${COOKIE}=${cookie.value}` } });
    assert.equal(replayed.status, 401);
    assert.equal((await replayed.json()).error.code, 'unauthenticated');

    await page.reload();
    await page.locator('#sign-in').waitFor({ state: 'visible' });
    await page.close();
  });
});

describe('participants page', () => {
  // Against a deployment this needs a coordinator's account (tests/stack/run.sh creates one);
  // the consent link then goes through the ingest daemon to the stack's fake provider.
  const coordinator = () =>
    fake
      ? USERS.find((u) => u.role === 'coordinator')
      : process.env.WEARHOUSE_TEST_COORDINATOR_EMAIL && {
          email: process.env.WEARHOUSE_TEST_COORDINATOR_EMAIL,
          password: process.env.WEARHOUSE_TEST_COORDINATOR_PASSWORD,
        };

  after(() => fake?.resetAdded());

  test('a coordinator adds a participant, copies a consent link, and the consent makes them active', async (t) => {
    const user = coordinator();
    if (!user) {
      t.skip('set WEARHOUSE_TEST_COORDINATOR_EMAIL and WEARHOUSE_TEST_COORDINATOR_PASSWORD');
      return;
    }
    await context.clearCookies();
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(baseUrl).origin });
    const page = await newTab();
    await page.goto(baseUrl);
    await page.locator('#sign-in').waitFor({ state: 'visible' });
    await submitSignIn(page, user);
    // A coordinator may not read data, so the page opens on the participants.
    const list = page.locator('#participants-page');
    await list.waitFor({ state: 'visible' });
    assert.equal(await page.locator('#dashboard').isVisible(), false);
    assert.equal(await page.getByRole('link', { name: 'Participants' }).getAttribute('aria-current'), 'page');
    await page.locator('#participants-body tr[data-participant]').first().waitFor();
    if (fake) {
      const stateOf = (id) => page.locator(`#participants-body tr[data-participant="${id}"] .state`).textContent();
      assert.equal(await stateOf('P001'), 'Active');
      assert.equal(await stateOf('P003'), 'Needs re-consent');
      assert.match(await page.locator('tr[data-participant="P003"]').textContent(), /a scope was not granted/);
      assert.equal(await stateOf('P005'), 'Withdrawn');
      assert.equal(await page.locator('tr[data-participant="P005"] button').count(), 0, 'no link for a withdrawn participant');
      assert.equal(await page.locator('tr[data-participant="Q001"]').count(), 0, 'only the coordinator\'s studies');
    }

    // A time zone that is none is refused, named, and the field takes the focus.
    await page.getByLabel('Time zone').fill('Mars/Olympus');
    await page.getByRole('button', { name: 'Add participant' }).click();
    const formError = page.locator('#add-error');
    await formError.waitFor({ state: 'visible' });
    assert.match(await formError.textContent(), /timezone/);
    assert.equal(await page.getByLabel('Time zone').getAttribute('aria-invalid'), 'true');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'add-timezone');

    // A generated pseudonymous id, with a contact e-mail to send the link to.
    const email = `participant-${Date.now()}@example.org`;
    await page.getByLabel('Time zone').fill('Europe/London');
    await page.getByLabel('Contact e-mail (optional)').fill(email);
    // History from before enrolment, from a day the coordinator picks.
    await page.getByLabel('Load history from (optional)').fill('2026-01-15');
    await page.getByRole('button', { name: 'Add participant' }).click();
    const done = page.locator('#add-done');
    await done.waitFor({ state: 'visible' });
    const id = (await done.textContent()).match(/Participant (\S+) was added/)[1];
    assert.match(id, /^[A-Z0-9]+-[2-9A-HJKMNP-Z]{6}$/, 'a study prefix and a code without ambiguous characters');
    assert.equal(await formError.isVisible(), false);
    const row = page.locator(`#participants-body tr[data-participant="${id}"]`);
    await row.waitFor();
    assert.equal(await row.locator('.state').textContent(), 'Invited');
    assert.equal(await row.locator('.backfill').textContent(), 'history from 2026-01-15');
    assert.equal(await page.getByLabel('Load history from (optional)').inputValue(), '', 'the form is cleared');

    // The consent link: shown once, copied, and offered as an e-mail to the contact.
    await row.getByRole('button', { name: `Consent link for ${id}` }).click();
    const dialog = page.getByRole('dialog', { name: `Consent link for ${id}` });
    await dialog.waitFor({ state: 'visible' });
    await dialog.getByLabel('Fitbit').check();
    await dialog.getByRole('button', { name: 'Create link' }).click();
    const urlField = dialog.getByLabel('Link for the participant');
    await urlField.waitFor({ state: 'visible' });
    const link = await urlField.inputValue();
    assert.match(link, /\/consent\/[A-Za-z0-9_-]{43}$/);
    await dialog.getByRole('button', { name: 'Copy link' }).click();
    await dialog.getByText('Copied.').waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), link);
    const mail = dialog.getByRole('link', { name: `E-mail it to ${email}` });
    const href = await mail.getAttribute('href');
    assert.ok(href.startsWith(`mailto:${encodeURIComponent(email)}?`), href);
    assert.ok(decodeURIComponent(href).includes(link), 'the e-mail carries the link');
    await page.screenshot({ path: join(ARTIFACTS, 'consent-link.png') });
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });

    // The participant opens the copied link (no wearhouse account), consents, and is active.
    const consentTab = await newTab();
    const answer = await consentTab.goto(link);
    assert.equal(answer.status(), 200, await consentTab.content());
    assert.match(await consentTab.locator('body').textContent(), new RegExp(`Participant ${id} is enrolled with Fitbit`));
    // Single use: the same link a second time is refused with a page saying so.
    const again = await consentTab.goto(link);
    assert.equal(again.status(), 410);
    assert.match(await consentTab.locator('body').textContent(), /used already/);
    await consentTab.close();

    await page.getByRole('link', { name: 'Data' }).click();
    await page.getByRole('link', { name: 'Participants' }).click();
    await page.locator(`#participants-body tr[data-participant="${id}"] .state`).filter({ hasText: /^Active$/ }).waitFor();
    await page.screenshot({ path: join(ARTIFACTS, 'participants.png'), fullPage: true });
    await page.close();
  });

  test('the participants page is not offered to a role that may not manage participants', async () => {
    await context.clearCookies();
    const page = await open();
    await chartState(page);
    assert.equal(await page.locator('#nav').isVisible(), false);
    assert.equal(await page.locator('#participants-page').isVisible(), false);
    await page.goto(new URL('#participants', baseUrl).href);
    await page.locator('#dashboard').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#participants-page').isVisible(), false);
    await page.close();
  });
});
