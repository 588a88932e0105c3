// Wires the dashboard together: nothing is shown before sign-in; the pickers and range choose
// a view, the view lives in the URL (so it survives a session that ends and the sign-in
// after it), the chart shows the whole range at the resolution the API picks, and the table
// pages through the same series at that resolution. Coordinators and admins also have the
// participants page (`#participants`), where participants are added and invited.
import { ApiError, getJson } from './api.js';
import { currentUser, signOut } from './auth.js';
import { clearChart, createChart, showSeries } from './chart-view.js';
import { ZONE, formatCount, formatRange, metricLabel, resolutionName } from './format.js';
import { MANAGING_ROLES, createParticipantsPage } from './participants.js';
import { createSignIn } from './signin.js';
import { safeNext, toolLinks } from './tools.js';
import { renderMessage, renderRows } from './table.js';
import { PAGE_SIZES, apiInstant, formatDay, rangeOf, viewFromQuery, viewToQuery } from './view.js';

/** Points the chart asks for over any range; the API picks the resolution that fits. */
const MAX_POINTS = 2000;

const $ = (id) => document.getElementById(id);
const ui = {
  form: $('controls'),
  participant: $('participant'),
  metric: $('metric'),
  start: $('start'),
  end: $('end'),
  status: $('status'),
  error: $('error'),
  errorTitle: $('error-title'),
  errorMessage: $('error-message'),
  retry: $('retry'),
  chartTitle: $('chart-title'),
  chartSubtitle: $('chart-subtitle'),
  resolutionBox: $('resolution-box'),
  resolution: $('resolution'),
  reason: $('resolution-reason'),
  chartWrap: $('chart-wrap'),
  canvas: $('chart'),
  chartEmpty: $('chart-empty'),
  pageSize: $('page-size'),
  tableBody: $('table-body'),
  prev: $('prev'),
  next: $('next'),
  pageInfo: $('page-info'),
  footer: $('footer'),
  dashboard: $('dashboard'),
  account: $('account'),
  accountEmail: $('account-email'),
  accountRole: $('account-role'),
  tools: $('tools'),
  signOut: $('sign-out'),
  nav: $('nav'),
  navData: $('nav-data'),
  navParticipants: $('nav-participants'),
};

const state = {
  /** The signed-in user ({email, role, studies}), or null while signed out. */
  user: null,
  view: viewFromQuery(location.search),
  participants: [],
  catalog: new Map(),
  /** The chart's answer: range, resolution and total, which the table pages through. */
  series: null,
  retry: null,
  initAbort: null,
  seriesAbort: null,
  tableAbort: null,
};

const chart = createChart(ui.canvas);
const DASHBOARD_TITLE = document.title;
const participantsPage = createParticipantsPage({ onError: (err, retry) => showError(err, retry), setStatus });

/** Whether the user's role has the participants page. */
const manages = (user) => MANAGING_ROLES.includes(user?.role);

/**
 * The page the URL asks for: `#participants` or `#data`; without either, a coordinator (who
 * may not read data) starts on participants unless the URL names a data view.
 */
function pageOf(user) {
  if (!manages(user)) return 'data';
  if (location.hash === '#participants') return 'participants';
  if (location.hash === '#data') return 'data';
  return user.role === 'coordinator' && !location.search ? 'participants' : 'data';
}

/** Shows the page the URL asks for. */
function route() {
  const page = pageOf(state.user);
  hideError();
  ui.navData.toggleAttribute('aria-current', false);
  ui.navParticipants.toggleAttribute('aria-current', false);
  (page === 'participants' ? ui.navParticipants : ui.navData).setAttribute('aria-current', 'page');
  if (page === 'participants') {
    for (const abort of [state.initAbort, state.seriesAbort, state.tableAbort]) abort?.abort();
    ui.dashboard.hidden = true;
    document.title = `Participants · ${DASHBOARD_TITLE}`;
    return participantsPage.show(state.user);
  }
  participantsPage.hide();
  ui.dashboard.hidden = false;
  document.title = DASHBOARD_TITLE;
  state.view = viewFromQuery(location.search);
  return init();
}

/**
 * A signed-in user arrives: back to the other UI the web server sent them from (`?next=`, also
 * after single sign-on, which returns to this URL), else into the dashboard.
 */
function arrive(user) {
  const next = safeNext(location.search, location.origin);
  if (next) location.assign(next);
  else return enter(user);
}

const signIn = createSignIn({ onSignedIn: arrive, setStatus });

function setStatus(text) {
  ui.status.textContent = text;
}

function showError(err, retry) {
  // A 401 on any call: the session ended (idle, expired, or signed out elsewhere).
  if (err instanceof ApiError && err.kind === 'session') return void sessionEnded();
  const apiError = err instanceof ApiError ? err : new ApiError(String(err.message ?? err), { kind: 'format' });
  ui.errorTitle.textContent = apiError.title;
  ui.errorMessage.textContent = apiError.message;
  ui.error.hidden = false;
  ui.retry.hidden = !retry;
  state.retry = retry;
  setStatus(`Error: ${apiError.message}`);
}

function hideError() {
  ui.error.hidden = true;
  state.retry = null;
}

function setBusy(busy) {
  ui.chartWrap.setAttribute('aria-busy', String(busy));
  ui.chartWrap.classList.toggle('loading', busy);
}

function pushView(replace = false) {
  const query = viewToQuery(state.view);
  if (query === location.search) return;
  if (replace) history.replaceState(null, '', query);
  else history.pushState(null, '', query);
}

/** Puts the view into the form controls. */
function showView() {
  const v = state.view;
  renderParticipants();
  ui.participant.value = v.participant ?? '';
  ui.metric.value = v.metric ?? '';
  for (const radio of ui.form.elements.range) radio.checked = radio.value === v.range;
  ui.pageSize.value = String(v.pageSize);
}

function currentParticipant() {
  return state.participants.find((p) => p.participant_id === state.view.participant);
}

/**
 * Fills the participant picker, grouped by study. A participant the URL names but the list
 * lacks stays selected, so the API says whether it exists for this user (the list may be
 * truncated) instead of the page silently showing someone else.
 */
function renderParticipants() {
  const studies = new Map();
  for (const p of state.participants) {
    const status = p.status && p.status !== 'active' ? ` (${p.status})` : '';
    const study = p.study_id ?? '';
    if (!studies.has(study)) studies.set(study, []);
    studies.get(study).push(new Option(`${p.participant_id}${status}`, p.participant_id));
  }
  const options = [...studies].flatMap(([study, opts]) => {
    if (!study) return opts;
    const group = document.createElement('optgroup');
    group.label = `Study ${study}`;
    group.append(...opts);
    return [group];
  });
  const wanted = state.view.participant;
  const listed = state.participants.some((p) => p.participant_id === wanted);
  const extra = wanted && !listed ? [new Option(`${wanted} (unlisted)`, wanted)] : [];
  ui.participant.replaceChildren(...extra, ...options);
}

/** Chooses a participant when the URL named none, and a valid metric. */
function settleView() {
  const v = state.view;
  if (!v.participant) v.participant = state.participants[0]?.participant_id ?? null;
  if (!state.catalog.has(v.metric)) {
    v.metric = state.catalog.has('heart_rate') ? 'heart_rate' : ([...state.catalog.keys()][0] ?? null);
  }
}

async function init() {
  hideError();
  setBusy(true);
  setStatus('Loading participants and metrics…');
  state.initAbort?.abort();
  const abort = new AbortController();
  state.initAbort = abort;
  try {
    const [people, catalog] = await Promise.all([
      getJson('participants', { limit: 1000, offset: 0 }, abort.signal),
      getJson('metrics-catalog', {}, abort.signal),
    ]);
    state.participants = people.participants ?? [];
    state.catalog = new Map((catalog.metrics ?? []).map((m) => [m.name, m]));
    const more =
      people.total_count > state.participants.length
        ? ` The participant list shows the first ${state.participants.length} of ${formatCount(people.total_count)}.`
        : '';
    ui.footer.textContent = `All times are in ${ZONE}, the time zone the daily rollups are cut in.${more}`;
  } catch (err) {
    if (err.name === 'AbortError') return;
    setBusy(false);
    ui.chartTitle.textContent = 'Dashboard unavailable';
    showEmpty('Participants and metrics could not be loaded.');
    showError(err, init);
    return;
  }
  ui.metric.replaceChildren(
    ...[...state.catalog.values()].map((m) => new Option(`${metricLabel(m.name)} (${m.unit})`, m.name)),
  );
  ui.participant.disabled = state.participants.length === 0;
  ui.metric.disabled = state.catalog.size === 0;
  if (state.participants.length === 0) {
    setBusy(false);
    ui.chartTitle.textContent = 'No participants yet';
    showEmpty('No participants are enrolled in your studies yet. Enrol a participant or load the demo cohort to see data here.');
    setStatus('No participants enrolled.');
    return;
  }
  settleView();
  showView();
  pushView(true);
  await loadSeries();
}

function showEmpty(message) {
  clearChart(chart);
  ui.chartEmpty.textContent = message;
  ui.chartEmpty.hidden = false;
  ui.resolutionBox.hidden = true;
  ui.reason.hidden = true;
  renderMessage(ui.tableBody, 'No rows.');
  ui.pageInfo.textContent = '';
  ui.prev.disabled = true;
  ui.next.disabled = true;
}

/** Loads the chart for the current view, then the table page. */
async function loadSeries() {
  hideError();
  state.seriesAbort?.abort();
  state.tableAbort?.abort();
  const abort = new AbortController();
  state.seriesAbort = abort;
  const v = state.view;
  const metric = state.catalog.get(v.metric);
  const pid = v.participant;
  const range = rangeOf(v, currentParticipant()?.last_sample?.[v.metric]);
  ui.chartTitle.textContent = `${metricLabel(metric.name)} · ${pid}`;
  if (range.error) {
    state.series = null;
    ui.start.value = v.start ?? '';
    ui.end.value = v.end ?? '';
    ui.chartSubtitle.textContent = '';
    setBusy(false);
    showEmpty('Choose a start and an end date, then press Show.');
    showError(new ApiError(range.error, { kind: 'input' }), null);
    return;
  }
  ui.start.value = formatDay(range.start);
  ui.end.value = formatDay(new Date(range.end.getTime() - 1));
  ui.chartSubtitle.textContent = `${formatRange(range.start, range.end)} · times in ${ZONE}`;
  setBusy(true);
  setStatus(`Loading ${metricLabel(metric.name).toLowerCase()} for ${pid}…`);
  renderMessage(ui.tableBody, 'Loading…');
  let body;
  try {
    body = await getJson(
      'data',
      {
        participant_id: pid,
        metric: metric.name,
        start_date: apiInstant(range.start),
        end_date: apiInstant(range.end),
        resolution: 'auto',
        max_points: MAX_POINTS,
      },
      abort.signal,
    );
  } catch (err) {
    if (err.name === 'AbortError') return;
    setBusy(false);
    state.series = null;
    if (err instanceof ApiError && (err.status === 404 || err.status === 403)) {
      // Outside the user's studies is answered like not existing at all (404); a role
      // without the right to read data gets 403. Neither is worth a retry.
      showEmpty(`No data is shown for ${pid}.`);
      showError(refusal(err, pid), null);
      return;
    }
    showEmpty('The chart could not be loaded.');
    renderMessage(ui.tableBody, 'The table could not be loaded.');
    showError(err, loadSeries);
    return;
  }
  setBusy(false);
  const points = body.series?.[0]?.points ?? [];
  state.series = { range, resolution: body.resolution, participant: pid, metric: metric.name };
  ui.resolution.textContent = resolutionName(body.resolution);
  ui.resolution.dataset.resolution = body.resolution;
  ui.resolution.title = body.resolution_reason ?? '';
  ui.reason.textContent = body.resolution_reason ?? '';
  ui.reason.hidden = !body.resolution_reason;
  ui.resolutionBox.hidden = false;
  if (points.length === 0) {
    showEmpty(`No ${metricLabel(metric.name).toLowerCase()} data for ${pid} in this range.`);
    ui.resolutionBox.hidden = false;
    setStatus('No data in this range.');
    return;
  }
  ui.chartEmpty.hidden = true;
  const stepSecs = { '1m': 60, '1h': 3600, '1d': 86400 }[body.resolution] ?? metric.native_interval_secs;
  showSeries(chart, points, { unit: body.unit ?? metric.unit, kind: metric.kind, resolution: body.resolution, stepSecs, ...range });
  const truncated = body.total_count > points.length ? ` (first ${formatCount(points.length)} of ${formatCount(body.total_count)})` : '';
  ui.chartSubtitle.textContent = `${formatRange(range.start, range.end)} · ${formatCount(points.length)} points${truncated} · times in ${ZONE}`;
  const described = `${metricLabel(metric.name)} of ${pid}, ${formatRange(range.start, range.end)}: ${formatCount(points.length)} points at ${resolutionName(body.resolution)} resolution; the table below lists them.`;
  ui.canvas.setAttribute('aria-label', described);
  await loadTable();
}

/** The message for a participant the API refused to show. */
function refusal(err, pid) {
  const message =
    err.status === 404
      ? `Participant ${pid} was not found or is not in your studies.`
      : `Participant ${pid} is not available to you: your role (${state.user?.role ?? 'unknown'}) may not read its data.`;
  return new ApiError(message, { status: err.status, code: err.code, kind: 'refused' });
}

/** Loads the current table page at the chart's resolution. */
async function loadTable() {
  if (!state.series) return;
  hideError();
  state.tableAbort?.abort();
  const abort = new AbortController();
  state.tableAbort = abort;
  const v = state.view;
  const { range, resolution, participant, metric } = state.series;
  setStatus(`Loading page ${v.page}…`);
  let body;
  try {
    body = await getJson(
      'data',
      {
        participant_id: participant,
        metric,
        start_date: apiInstant(range.start),
        end_date: apiInstant(range.end),
        resolution,
        max_points: MAX_POINTS,
        limit: v.pageSize,
        offset: (v.page - 1) * v.pageSize,
      },
      abort.signal,
    );
  } catch (err) {
    if (err.name === 'AbortError') return;
    renderMessage(ui.tableBody, 'The table could not be loaded.');
    ui.pageInfo.textContent = '';
    showError(err, loadTable);
    return;
  }
  const total = body.total_count ?? 0;
  const pages = Math.max(1, Math.ceil(total / v.pageSize));
  if (v.page > pages) {
    // A shared link or a smaller page size can point past the end: show the last page.
    v.page = pages;
    pushView(true);
    await loadTable();
    return;
  }
  const points = body.series?.[0]?.points ?? [];
  if (points.length === 0) renderMessage(ui.tableBody, 'No rows.');
  else renderRows(ui.tableBody, points, resolution);
  const first = (v.page - 1) * v.pageSize + 1;
  ui.pageInfo.textContent =
    total === 0 ? 'No rows' : `Page ${v.page} of ${pages} · rows ${formatCount(first)}–${formatCount(first + points.length - 1)} of ${formatCount(total)}`;
  const focused = document.activeElement;
  ui.prev.disabled = v.page <= 1;
  ui.next.disabled = v.page >= pages;
  // A disabled button drops keyboard focus; hand it to the other one instead.
  if (focused === ui.next && ui.next.disabled && !ui.prev.disabled) ui.prev.focus();
  if (focused === ui.prev && ui.prev.disabled && !ui.next.disabled) ui.next.focus();
  setStatus(`Showing ${formatCount(points.length)} rows, page ${v.page} of ${pages}.`);
}

function changeView(patch, { table = false } = {}) {
  Object.assign(state.view, patch);
  pushView();
  if (table) loadTable();
  else loadSeries();
}

ui.participant.addEventListener('change', () => changeView({ participant: ui.participant.value, page: 1 }));
ui.metric.addEventListener('change', () => changeView({ metric: ui.metric.value, page: 1 }));
for (const radio of ui.form.elements.range) {
  radio.addEventListener('change', () => {
    if (!radio.checked) return;
    if (radio.value === 'custom') {
      changeView({ range: 'custom', start: ui.start.value, end: ui.end.value, page: 1 });
      ui.start.focus();
    } else {
      changeView({ range: radio.value, start: null, end: null, page: 1 });
    }
  });
}
// Typing a date marks the range custom; it loads on "Show" (or Enter), not on every keystroke.
for (const input of [ui.start, ui.end]) {
  input.addEventListener('input', () => {
    ui.form.elements.range.value = 'custom';
  });
}
ui.form.addEventListener('submit', (event) => {
  event.preventDefault();
  const range = ui.form.elements.range.value || state.view.range;
  if (range === 'custom') changeView({ range, start: ui.start.value, end: ui.end.value, page: 1 });
  else changeView({ range, page: 1 });
});
ui.pageSize.addEventListener('change', () => {
  const size = Number(ui.pageSize.value);
  if (!PAGE_SIZES.includes(size)) return;
  // Keep the first visible row on screen when the page size changes.
  const firstRow = (state.view.page - 1) * state.view.pageSize;
  changeView({ pageSize: size, page: Math.floor(firstRow / size) + 1 }, { table: true });
});
ui.prev.addEventListener('click', () => changeView({ page: Math.max(1, state.view.page - 1) }, { table: true }));
ui.next.addEventListener('click', () => changeView({ page: state.view.page + 1 }, { table: true }));
ui.retry.addEventListener('click', () => (state.retry ?? boot)());
ui.signOut.addEventListener('click', leave);
window.addEventListener('hashchange', () => {
  if (state.user) route();
});
window.addEventListener('popstate', () => {
  state.view = viewFromQuery(location.search);
  if (!state.user || pageOf(state.user) === 'participants') return;
  if (state.participants.length === 0) return void init();
  settleView();
  showView();
  loadSeries();
});

/** Removes every trace of data from the page and stops what is loading. */
function clearDashboard() {
  for (const abort of [state.initAbort, state.seriesAbort, state.tableAbort]) abort?.abort();
  state.participants = [];
  state.catalog = new Map();
  state.series = null;
  hideError();
  setBusy(false);
  for (const select of [ui.participant, ui.metric]) {
    select.replaceChildren();
    select.disabled = true;
  }
  ui.start.value = '';
  ui.end.value = '';
  ui.chartTitle.textContent = '';
  ui.chartSubtitle.textContent = '';
  ui.canvas.setAttribute('aria-label', 'Chart of the selected series');
  showEmpty('');
  ui.tableBody.replaceChildren();
  ui.footer.textContent = '';
  ui.dashboard.hidden = true;
  participantsPage.clear();
  ui.nav.hidden = true;
  ui.account.hidden = true;
  ui.accountEmail.textContent = '';
  ui.accountRole.textContent = '';
  ui.tools.replaceChildren();
  ui.tools.hidden = true;
}

/** Shows the sign-in screen with nothing of the previous session left on the page. */
function showSignIn(notice, email) {
  state.user = null;
  clearDashboard();
  document.title = `Sign in · ${DASHBOARD_TITLE}`;
  return signIn.show(notice, email);
}

/** Opens the dashboard for a signed-in user, on the view the URL holds. */
function enter(user) {
  state.user = user;
  signIn.hide();
  hideError();
  document.title = DASHBOARD_TITLE;
  ui.accountEmail.textContent = user.email;
  const studies = user.studies ?? [];
  // An admin sees every study; past a few, the count says enough and the tooltip lists them.
  const named = studies.length > 3 ? `${studies.length} studies` : studies.join(', ');
  ui.accountRole.textContent = named ? `${user.role} · ${named}` : user.role;
  ui.accountRole.title = studies.length ? `Studies: ${studies.join(', ')}` : '';
  const links = toolLinks(user.role).map(({ label, href }) => {
    const a = document.createElement('a');
    a.href = href;
    a.textContent = label;
    return a;
  });
  ui.tools.replaceChildren(...links);
  ui.tools.hidden = links.length === 0;
  ui.account.hidden = false;
  ui.nav.hidden = !manages(user);
  return route();
}

/** The session ended under the user: sign in again, then the URL brings the view back. */
function sessionEnded() {
  if (!state.user) return;
  // Most often the same person comes back; the e-mail is theirs and no secret.
  showSignIn('Your session has ended. Sign in again to return to the view you had open.', state.user.email);
}

/** Signs out, then forgets the view so the next person starts from a blank dashboard. */
async function leave() {
  ui.signOut.disabled = true;
  try {
    await signOut();
  } catch (err) {
    showError(err, leave);
    return;
  } finally {
    ui.signOut.disabled = false;
  }
  history.replaceState(null, '', location.pathname);
  state.view = viewFromQuery('');
  await showSignIn('You have signed out.');
}

/** Starts the page: the dashboard if the session cookie is still good, sign-in otherwise. */
async function boot() {
  hideError();
  setStatus('Checking your session…');
  let user;
  try {
    user = await currentUser();
  } catch (err) {
    showError(err, boot);
    return;
  }
  if (user) await arrive(user);
  else await showSignIn();
}

boot();
