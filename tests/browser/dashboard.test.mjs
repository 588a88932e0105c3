// The researchers' dashboard in headless Chromium. With WEARHOUSE_WEB_URL set it drives that
// deployment (nginx + the real API); without, it starts tests/browser/fake_api.mjs, which serves
// frontend/dist and the API contract from generated data.
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

const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const CHROMIUM = process.env.WEARHOUSE_CHROMIUM || '/usr/bin/chromium';
const STOP_API = process.env.WEARHOUSE_API_STOP_CMD;
// A browser far from UTC shows whether the page keeps days in UTC, as the daily rollups are.
const BROWSER_TZ = process.env.WEARHOUSE_TEST_TZ || 'America/New_York';
const START_API = process.env.WEARHOUSE_API_START_CMD;

let fake = null;
let baseUrl;
let context;
let profile;

before(async () => {
  if (process.env.WEARHOUSE_WEB_URL) {
    baseUrl = new URL(process.env.WEARHOUSE_WEB_URL).href;
  } else {
    fake = await startFakeApi();
    baseUrl = fake.url;
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
      const response = await fetch(new URL('api/metrics-catalog', baseUrl));
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error('the API did not come back within a minute of WEARHOUSE_API_START_CMD');
}

/** Opens the dashboard (with an optional query string) in a fresh tab. */
async function open(query = '') {
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error(`page error: ${err.message}`));
  await page.goto(new URL(query, baseUrl).href);
  return page;
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
