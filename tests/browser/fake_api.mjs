// A stand-in for nginx + wearhouse-api while the real API is being built: serves the built
// dashboard (frontend/dist) at / and the API contract at /api/ from deterministic generated
// data, routing resolutions the way the real API does (finest of raw, 1m, 1h, 1d whose point
// count over the range fits the budget). `setMode('unavailable')` answers every API call with
// a 503 and `setMode('down')` drops the connections, as a stopped API behind a proxy would.
//
// Every route but /api/auth/providers, /api/auth/login and single sign-on needs a session
// (fake_auth.mjs); users see only their studies' participants, and one outside them is
// answered like one that does not exist (404).
//
// Coordinators and admins add participants (POST /api/participants) and create consent links
// (POST /api/participants/{id}/consent-links) as the real API does; `GET /consent/{token}`
// stands for the provider's consent and the ingest callback behind it: a fresh link makes its
// participant active, a second use is refused.
//
// Run it by hand with `node tests/browser/fake_api.mjs [port]` to work on the page; it prints
// the users it knows.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import { extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { AuthError, FakeAuth, USERS, readJson } from './fake_auth.mjs';

const HOUR = 3600;
const DAY = 86400;

/** The metric catalogue, as wearhouse-core defines it. */
export const METRICS = [
  ['heart_rate', 'bpm', 1, 'continuous', 'heart rate; sparse second-level samples during the day', { base: 68, amp: 10, noise: 9 }],
  ['steps', 'steps', 60, 'count', 'steps per minute', { base: 25, amp: 25, noise: 30, hours: [7, 22], floor: 0, round: true }],
  ['calories', 'kcal', 60, 'count', 'energy expenditure per minute', { base: 1.6, amp: 0.6, noise: 0.8, floor: 1 }],
  ['distance', 'm', 60, 'count', 'distance per minute', { base: 20, amp: 20, noise: 25, hours: [7, 22], floor: 0 }],
  ['floors', 'floors', 60, 'count', 'floors climbed per minute', { base: 0.2, amp: 0.2, noise: 0.5, hours: [7, 22], floor: 0, round: true }],
  ['active_zone_minutes', 'min', 60, 'count', 'active zone minutes earned per minute', { base: 0.2, amp: 0.3, noise: 0.6, hours: [7, 22], floor: 0, round: true }],
  ['sleep_stage', 'stage', 30, 'categorical', 'sleep stage per 30 s', { base: 1.5, amp: 1, noise: 1.2, hours: [0, 7], floor: 0, round: true, ceil: 3 }],
  ['spo2', '%', 60, 'continuous', 'blood oxygen saturation during sleep', { base: 96, amp: 1, noise: 1.2, hours: [0, 7], ceil: 100 }],
  ['hrv_rmssd', 'ms', 300, 'continuous', 'heart rate variability (RMSSD) in 5-minute windows during sleep', { base: 42, amp: 8, noise: 10, hours: [0, 7] }],
  ['breathing_rate', 'breaths/min', DAY, 'daily', 'nightly breathing rate', { base: 15, amp: 0.5, noise: 1 }],
  ['skin_temp_delta', '°C', DAY, 'daily', "nightly skin temperature relative to the participant's baseline", { base: 0, amp: 0.3, noise: 0.4 }],
  ['resting_heart_rate', 'bpm', DAY, 'daily', 'daily resting heart rate', { base: 58, amp: 1.5, noise: 2 }],
].map(([name, unit, native, kind, description, shape]) => ({ name, unit, native, kind, description, shape }));
const BY_NAME = new Map(METRICS.map((m) => [m.name, m]));
const STAGES = ['wake', 'light', 'deep', 'rem'];

const JUNE = Date.UTC(2025, 5, 1) / 1000;
/** Participants, their study, and the [from, to) span their devices reported, in epoch seconds. */
export const PARTICIPANTS = [
  { id: 'P001', study: 'demo', timezone: 'Europe/London', status: 'active', from: JUNE, to: JUNE + 30 * DAY },
  { id: 'P002', study: 'demo', timezone: 'America/New_York', status: 'active', from: JUNE, to: JUNE + 30 * DAY },
  { id: 'P003', study: 'demo', timezone: 'Europe/Berlin', status: 'active', from: JUNE + 3 * DAY, to: JUNE + 30 * DAY, reconsent: 'a scope was not granted: heartrate' },
  { id: 'P004', study: 'demo', timezone: 'Asia/Tokyo', status: 'active', from: null, to: null },
  { id: 'P005', study: 'demo', timezone: 'Europe/London', status: 'withdrawn', from: JUNE, to: JUNE + 20 * DAY },
  { id: 'Q001', study: 'pilot', timezone: 'Europe/Paris', status: 'active', from: JUNE, to: JUNE + 30 * DAY },
  { id: 'Q002', study: 'pilot', timezone: 'Europe/Paris', status: 'active', from: JUNE + 7 * DAY, to: JUNE + 30 * DAY },
];
/** A day on which nobody's device synced, so month views show a gap. */
const GAP_DAY = JUNE + 14 * DAY;

/** A deterministic value in [-1, 1) for (participant, metric, second). */
function noise(seed, t) {
  let h = (seed * 374761393 + t * 668265263) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 1274126177) >>> 0;
  return ((h ^ (h >>> 16)) >>> 0) / 2 ** 31 - 1;
}

function hourPresent(p, m, hourStart) {
  if (p.from === null || hourStart < p.from || hourStart >= p.to) return false;
  if (hourStart >= GAP_DAY && hourStart < GAP_DAY + DAY) return false;
  const hours = m.shape.hours;
  if (m.native >= DAY || !hours) return true;
  const h = Math.floor((hourStart % DAY) / HOUR);
  return h >= hours[0] && h < hours[1];
}

function sample(p, m, t) {
  const s = m.shape;
  const seed = Number(p.id.slice(1)) * 31 + METRICS.indexOf(m);
  const daily = Math.sin((2 * Math.PI * ((t % DAY) / DAY - 0.3)));
  // Slow wander (15-minute steps) plus sample-to-sample jitter.
  const wander = noise(seed, Math.floor(t / 900));
  const jitter = noise(seed + 7, Math.floor(t / m.native));
  let v = s.base + s.amp * daily + s.noise * (0.6 * wander + 0.4 * jitter);
  if (s.floor !== undefined) v = Math.max(s.floor, v);
  if (s.ceil !== undefined) v = Math.min(s.ceil, v);
  return s.round ? Math.round(v) : Math.round(v * 100) / 100;
}

/** Native sample times in [a, z): multiples of the native interval. */
const multiplesIn = (a, z, n) => Math.max(0, Math.ceil(z / n) - Math.ceil(a / n));

/** The point of bucket [b, b + w) at a resolution, or null when no sample falls in it. */
function point(p, m, b, w, raw) {
  if (raw) {
    if (!hourPresent(p, m, b - (b % HOUR))) return null;
    const v = sample(p, m, b);
    const text = m.kind === 'categorical' ? STAGES[v] : null;
    return { timestamp: iso(b), value: v, min: v, max: v, sum: v, count: 1, text };
  }
  let count = 0;
  const seen = [];
  for (let h = b - (b % HOUR); h < b + w; h += HOUR) {
    if (!hourPresent(p, m, h)) continue;
    const a = Math.max(b, h);
    const z = Math.min(b + w, h + HOUR);
    const n = multiplesIn(a, z, m.native);
    count += n;
    // A few evenly spread samples stand in for the bucket's aggregate.
    for (let k = 0; k < Math.min(n, 4); k++) {
      const t = Math.ceil((a + ((z - a) * k) / 4) / m.native) * m.native;
      if (t < z) seen.push(sample(p, m, t));
    }
  }
  if (count === 0 || seen.length === 0) return null;
  const avg = Math.round((seen.reduce((x, y) => x + y, 0) / seen.length) * 100) / 100;
  return {
    timestamp: iso(b),
    value: avg,
    min: Math.min(...seen),
    max: Math.max(...seen),
    sum: Math.round(avg * count * 100) / 100,
    count,
    text: null,
  };
}

const iso = (secs) => new Date(secs * 1000).toISOString().replace('.000Z', 'Z');
const RESOLUTIONS = [
  ['raw', null],
  ['1m', 60],
  ['1h', HOUR],
  ['1d', DAY],
];

function chooseResolution(m, span, budget) {
  const estimate = (step) => Math.ceil(span / step);
  const options = RESOLUTIONS.filter(([, w]) => w === null || w > m.native).map(([name, w]) => [name, w ?? m.native]);
  const fit = options.find(([, step]) => estimate(step) <= budget) ?? options[options.length - 1];
  const [name, step] = fit;
  if (name === 'raw') {
    return { name, step, reason: `raw gives ~${estimate(step)} points at the ${m.native} s native interval, within the budget of ${budget}` };
  }
  const finer = options[options.findIndex(([n]) => n === name) - 1];
  const what = finer[0] === 'raw' ? `raw would be ~${estimate(finer[1])} points at the ${m.native} s native interval` : `${finer[0]} would be ~${estimate(finer[1])} points`;
  return { name, step, reason: `${what}, over the budget of ${budget}; ${name} gives ~${estimate(step)}` };
}

class BadRequest extends Error {
  constructor(status, code, message, parameter) {
    super(message);
    this.status = status;
    this.body = { error: parameter ? { code, parameter, message } : { code, message } };
  }
}
const invalid = (parameter, message) => new BadRequest(400, 'invalid_parameter', message, parameter);

function intParam(q, name, fallback, min, max) {
  const raw = q.get(name);
  if (raw === null) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw invalid(name, `${name} must be an integer from ${min} to ${max}`);
  return n;
}

function instant(q, name) {
  const raw = q.get(name);
  if (!raw) throw invalid(name, `${name} is required`);
  const ms = Date.parse(raw);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(raw) || Number.isNaN(ms)) throw invalid(name, `${name} must be an RFC 3339 timestamp`);
  return Math.floor(ms / 1000);
}

function data(q, user) {
  const metric = BY_NAME.get(q.get('metric') ?? '');
  if (!metric) throw invalid('metric', `unknown metric ${JSON.stringify(q.get('metric'))}; expected one of ${METRICS.map((m) => m.name).join(', ')}`);
  const pid = q.get('participant_id');
  if (!pid) throw invalid('participant_id', 'participant_id is required');
  // Another study's participant is answered exactly like one that does not exist.
  const p = PARTICIPANTS.find((x) => x.id === pid && FakeAuth.sees(user, x.study));
  if (!p) throw new BadRequest(404, 'not_found', `participant ${pid} not found`);
  const start = instant(q, 'start_date');
  const end = instant(q, 'end_date');
  if (end <= start) throw invalid('end_date', 'end_date must be after start_date');
  const budget = intParam(q, 'max_points', 2000, 1, 100000);
  const limit = intParam(q, 'limit', null, 1, 10000);
  const offset = intParam(q, 'offset', 0, 0, Number.MAX_SAFE_INTEGER);
  const asked = q.get('resolution') ?? 'auto';
  let res;
  if (asked === 'auto') res = chooseResolution(metric, end - start, budget);
  else {
    const known = RESOLUTIONS.find(([n]) => n === asked);
    if (!known) throw invalid('resolution', `unknown resolution ${JSON.stringify(asked)}; expected auto, raw, 1m, 1h or 1d`);
    res = { name: asked, step: known[1] ?? metric.native, reason: `${asked} was requested` };
  }
  const take = limit ?? budget;
  const points = [];
  let total = 0;
  for (let b = Math.ceil(start / res.step) * res.step; b < end; b += res.step) {
    const pt = point(p, metric, b, res.step, res.name === 'raw');
    if (!pt) continue;
    if (total >= offset && points.length < take) points.push(pt);
    total += 1;
  }
  const more = offset + points.length < total;
  return {
    metric: metric.name,
    unit: metric.unit,
    start_date: iso(start),
    end_date: iso(end),
    resolution: res.name,
    resolution_reason: res.reason,
    max_points: budget,
    total_count: total,
    limit,
    offset,
    next_cursor: more ? Buffer.from(JSON.stringify({ o: offset + points.length })).toString('base64url') : null,
    series: [{ participant_id: p.id, points }],
  };
}

function participants(q, user) {
  const limit = intParam(q, 'limit', 100, 1, 1000);
  const offset = intParam(q, 'offset', 0, 0, Number.MAX_SAFE_INTEGER);
  const visible = PARTICIPANTS.filter((p) => FakeAuth.sees(user, p.study));
  const rows = visible.slice(offset, offset + limit).map((p) => {
    const last = {};
    if (p.from !== null) {
      for (const m of METRICS) {
        // The latest hour with data, then its last native sample.
        for (let h = p.to - HOUR; h >= p.from; h -= HOUR) {
          if (hourPresent(p, m, h)) {
            last[m.name] = iso(m.native >= DAY ? p.to - DAY : h + HOUR - m.native);
            break;
          }
        }
      }
    }
    const provider = p.provider === undefined ? 'synthetic' : p.provider;
    const state = p.status === 'active' ? (provider === null ? 'invited' : p.reconsent ? 'needs_reconsent' : 'active') : p.status;
    const lastData = Object.values(last).sort().at(-1) ?? null;
    return {
      participant_id: p.id,
      study_id: p.study,
      timezone: p.timezone,
      status: p.status,
      state,
      provider,
      enrolled_at: iso(p.from ?? JUNE),
      needs_reconsent: Boolean(p.reconsent),
      reconsent_reason: p.reconsent ?? null,
      last_device_sync: p.to === null ? null : iso(p.to - HOUR),
      last_data_at: lastData,
      last_sample: last,
      backfill_from: p.backfillFrom ?? null,
      provider_account_since: null,
      ...(FakeAuth.may(user, 'contact_details') ? { contact: { name: p.contactName ?? null, email: p.contactEmail ?? null } } : {}),
    };
  });
  return { participants: rows, total_count: visible.length, limit, offset };
}

/** Participants added and consent links created while the fake runs (by token hash stand-in). */
const ADDED_AT_START = PARTICIPANTS.length;
const LINKS = new Map();
const ALPHABET = '23456789ABCDEFGHJKMNPQRSTUVWXYZ';

/** `POST /api/participants`, with the real API's checks and answers. */
function addParticipant(body, user, auth) {
  const studies = auth.profile(user).studies;
  if (typeof body.study_id !== 'string' || !studies.includes(body.study_id)) {
    throw invalid('study_id', `invalid study_id: ${JSON.stringify(body.study_id)} is not one of your studies`);
  }
  let zoneOk = false;
  try {
    zoneOk = typeof body.timezone === 'string' && Boolean(new Intl.DateTimeFormat('en', { timeZone: body.timezone }));
  } catch {
    zoneOk = false;
  }
  if (!zoneOk || !body.timezone.includes('/')) {
    throw invalid('timezone', `invalid timezone: ${JSON.stringify(body.timezone)} is not an IANA time zone such as Europe/London`);
  }
  if (body.contact_email && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(body.contact_email)) {
    throw invalid('contact_email', `invalid contact_email: ${JSON.stringify(body.contact_email)} is not an e-mail address`);
  }
  if (body.backfill_from !== undefined) {
    const day = /^\d{4}-\d{2}-\d{2}$/.test(body.backfill_from) ? Date.parse(`${body.backfill_from}T00:00:00Z`) : NaN;
    if (Number.isNaN(day)) {
      throw invalid('backfill_from', `invalid backfill_from: ${JSON.stringify(body.backfill_from)} is not a day such as 2026-01-31`);
    }
    if (day > Date.now()) throw invalid('backfill_from', `invalid backfill_from: ${body.backfill_from} is in the future`);
  }
  let id = body.participant_id;
  if (id !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(id)) {
    throw invalid('participant_id', `invalid participant_id: ${JSON.stringify(id)} may hold letters, digits, '-', '_' or '.'`);
  }
  if (id === undefined) {
    const code = [...randomBytes(6)].map((b) => ALPHABET[b % ALPHABET.length]).join('');
    id = `${body.study_id.replace(/[^A-Za-z0-9]/g, '').slice(0, 8).toUpperCase()}-${code}`;
  }
  if (PARTICIPANTS.some((p) => p.id === id)) throw new BadRequest(409, 'conflict', `participant ${id} exists`);
  const p = {
    id,
    study: body.study_id,
    timezone: body.timezone,
    status: 'active',
    provider: null,
    from: null,
    to: null,
    contactName: body.contact_name ?? null,
    contactEmail: body.contact_email ?? null,
    backfillFrom: body.backfill_from ?? null,
  };
  PARTICIPANTS.push(p);
  return participants(new URLSearchParams(), user).participants.find((row) => row.participant_id === id);
}

/** `POST /api/participants/{id}/consent-links`. */
function createLink(p, body, req) {
  if (!['fitbit', 'google-health'].includes(body.provider)) {
    throw invalid('provider', `invalid provider: ${JSON.stringify(body.provider)} is not one of fitbit, google-health`);
  }
  const hours = body.expires_in_hours ?? 72;
  if (!Number.isInteger(hours) || hours < 1 || hours > 336) throw invalid('expires_in_hours', `invalid expires_in_hours: ${hours} is outside 1 to 336`);
  if (p.status === 'withdrawn') throw new BadRequest(409, 'conflict', `participant ${p.id} is withdrawn`);
  const token = randomBytes(32).toString('base64url');
  const link = {
    link_id: LINKS.size + 1,
    participant_id: p.id,
    provider: body.provider,
    state: 'open',
    allow_account_change: Boolean(body.allow_account_change),
    created_at: new Date().toISOString(),
    expires_at: new Date(Date.now() + hours * 3600_000).toISOString(),
    used_at: null,
    revoked_at: null,
  };
  LINKS.set(token, link);
  return { ...link, url: `http://${req.headers.host}/consent/${token}` };
}

/** `GET /consent/{token}`: the provider's consent and our callback in one step. */
function consent(token, res) {
  const link = LINKS.get(token);
  const page = (status, text) => send(res, status, 'text/html; charset=utf-8', `<!doctype html><title>wearhouse enrolment</title><p>${text}</p>`);
  if (!link) return page(404, 'This consent link is not valid.');
  if (link.used_at) return page(410, 'This consent link was used already.');
  const p = PARTICIPANTS.find((x) => x.id === link.participant_id);
  link.used_at = new Date().toISOString();
  link.state = 'used';
  p.provider = link.provider;
  return page(200, `Participant ${p.id} is enrolled with ${link.provider === 'fitbit' ? 'Fitbit' : 'Google Health'}. You can close this window.`);
}

/** Forgets participants and links added by a test. */
function resetAdded() {
  PARTICIPANTS.splice(ADDED_AT_START);
  LINKS.clear();
}

const catalog = () => ({
  metrics: METRICS.map((m) => ({ name: m.name, unit: m.unit, native_interval_secs: m.native, kind: m.kind, description: m.description })),
});

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.map': 'application/json', '.txt': 'text/plain' };

async function serveStatic(dist, pathname, res) {
  const rel = normalize(decodeURIComponent(pathname)).replace(/^([/\\])+/, '');
  const file = resolve(dist, rel === '' ? 'index.html' : rel);
  if (!file.startsWith(resolve(dist))) return send(res, 403, 'text/plain', 'forbidden');
  try {
    const info = await stat(file);
    if (!info.isFile()) throw new Error('not a file');
  } catch {
    return send(res, 404, 'text/plain', 'not found');
  }
  res.writeHead(200, { 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream' });
  createReadStream(file).pipe(res);
}

function send(res, status, type, body, headers = {}) {
  res.writeHead(status, body === '' ? headers : { 'Content-Type': type, ...headers });
  res.end(body);
}

/**
 * Starts the fake on `port` (0 picks a free one). `auth` is its FakeAuth: `advanceClock(secs)`
 * lets sessions time out, `oidc = {name, email}` turns single sign-on on.
 * @returns {Promise<{url: string, setMode: (mode: 'ok'|'unavailable'|'down') => void, requests: URL[],
 *   auth: FakeAuth, close: () => Promise<void>}>}
 */
export async function startFakeApi({ port = 0, dist = fileURLToPath(new URL('../../frontend/dist', import.meta.url)) } = {}) {
  let mode = 'ok';
  const requests = [];
  const auth = new FakeAuth();
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, 'http://fake.invalid');
    const consentPath = /^\/consent\/([A-Za-z0-9_-]+)$/.exec(url.pathname);
    if (consentPath) return consent(consentPath[1], res);
    if (!url.pathname.startsWith('/api/')) return serveStatic(dist, url.pathname, res);
    requests.push(url);
    if (mode === 'down') return req.socket.destroy();
    if (mode === 'unavailable') return send(res, 503, 'application/json', JSON.stringify({ error: { code: 'unavailable', message: 'database unavailable' } }));
    // [handler, the permission it needs]
    const routes = {
      '/api/metrics-catalog': [catalog, null],
      '/api/participants': [participants, 'list_participants'],
      '/api/data': [data, 'read_series'],
    };
    try {
      const answer = await auth.route(req, url);
      if (answer) {
        const body = answer.body === undefined ? '' : JSON.stringify(answer.body);
        return send(res, answer.status, 'application/json', body, answer.headers);
      }
      if (url.pathname === '/api/participants' && req.method === 'POST') {
        const user = auth.require(req, 'manage_participants');
        return send(res, 201, 'application/json', JSON.stringify(addParticipant(await readJson(req), user, auth)));
      }
      const linkPath = /^\/api\/participants\/([^/]+)\/consent-links$/.exec(url.pathname);
      if (linkPath) {
        const user = auth.require(req, 'manage_participants');
        const id = decodeURIComponent(linkPath[1]);
        const p = PARTICIPANTS.find((x) => x.id === id && FakeAuth.sees(user, x.study));
        if (!p) throw new BadRequest(404, 'not_found', `participant ${id} not found`);
        if (req.method === 'POST') return send(res, 201, 'application/json', JSON.stringify(createLink(p, await readJson(req), req)));
        const links = [...LINKS.values()].filter((l) => l.participant_id === id).reverse();
        return send(res, 200, 'application/json', JSON.stringify({ links }));
      }
      const [route, permission] = routes[url.pathname] ?? [];
      if (!route) throw new BadRequest(404, 'not_found', `no route ${url.pathname}`);
      const user = auth.require(req, permission);
      send(res, 200, 'application/json', JSON.stringify(route(url.searchParams, user)));
    } catch (err) {
      if (!(err instanceof BadRequest || err instanceof AuthError)) throw err;
      send(res, err.status, 'application/json', JSON.stringify(err.body), err.headers);
    }
  });
  await new Promise((ok) => server.listen(port, '127.0.0.1', ok));
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    setMode: (m) => {
      mode = m;
    },
    requests,
    auth,
    resetAdded,
    close: () =>
      new Promise((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const fake = await startFakeApi({ port: Number(process.argv[2] ?? 8088) });
  console.log(`fake wearhouse API and dashboard at ${fake.url} (dist: ${join('frontend', 'dist')})`);
  for (const u of USERS) console.log(`  ${u.role.padEnd(11)} ${u.email} / ${u.password}`);
}
