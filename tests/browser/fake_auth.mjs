// The sign-in half of the fake API, following the API's contract: local accounts in memory,
// sessions in a `wearhouse_session` cookie (HttpOnly, SameSite=Strict, no Secure on plain-HTTP
// localhost) that end after 15 idle minutes, after 12 hours, or at logout; login throttled per
// account and per client address with a generic failure message; an optional single sign-on
// provider; roles and studies that decide what each user may see.
//
// Its clock can be moved forward (`advanceClock`) so a test sees a session time out for real.
import { randomBytes, timingSafeEqual, createHash } from 'node:crypto';

export const COOKIE = 'wearhouse_session';
export const IDLE_SECS = 15 * 60;
export const LIFETIME_SECS = 12 * 3600;
/** Failed attempts allowed per account, and per client address, within the window. */
export const ACCOUNT_ATTEMPTS = 5;
export const ADDRESS_ATTEMPTS = 30;
export const THROTTLE_WINDOW_SECS = 15 * 60;

export const STUDIES = ['demo', 'pilot'];

/** Users; `studies` is ignored for admin, who sees every study. */
export const USERS = [
  { email: 'researcher@example.org', password: 'correct horse battery', role: 'researcher', studies: ['demo'] },
  { email: 'pilot@example.org', password: 'pilot study password', role: 'researcher', studies: ['pilot'] },
  { email: 'coordinator@example.org', password: 'coordinator password', role: 'coordinator', studies: ['demo'] },
  { email: 'admin@example.org', password: 'admin password here', role: 'admin', studies: [] },
];

/** What each role may do, as far as the dashboard's routes go. */
const PERMISSIONS = {
  admin: ['list_participants', 'read_series', 'manage_participants', 'contact_details'],
  researcher: ['list_participants', 'read_series'],
  analyst: ['list_participants', 'read_series'],
  coordinator: ['list_participants', 'manage_participants', 'contact_details'],
};

export class AuthError extends Error {
  constructor(status, code, message, headers = {}) {
    super(message);
    this.status = status;
    this.headers = headers;
    this.body = { error: { code, message } };
  }
}

const unauthenticated = () => new AuthError(401, 'unauthenticated', 'sign in to use this route');
const sha256 = (text) => createHash('sha256').update(text).digest();

function cookieValue(req, name) {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) return rest.join('=');
  }
  return null;
}

/** The cookie for a session token; an empty token clears it. */
function sessionCookie(token) {
  const base = `${COOKIE}=${token}; HttpOnly; SameSite=Strict; Path=/`;
  return token ? base : `${base}; Max-Age=0`;
}

/** A return address on this site only: a path, never `//host` or a full URL. */
function safeReturnTo(value) {
  return typeof value === 'string' && /^\/(?![/\\])/.test(value) ? value : null;
}

export async function readJson(req) {
  if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
    throw new AuthError(415, 'unsupported_media_type', 'send the credentials as application/json');
  }
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new AuthError(400, 'invalid_body', 'the body is not valid JSON');
  }
}

export class FakeAuth {
  constructor() {
    /** token → {user, created, lastSeen} */
    this.sessions = new Map();
    /** "account:<email>" or "address:<ip>" → {count, since} */
    this.failures = new Map();
    /** state → return_to, between the start of single sign-on and its callback */
    this.pendingSso = new Map();
    this.offsetSecs = 0;
    /** {name, email} of the single sign-on provider and the user it signs in, or null. */
    this.oidc = null;
  }

  now() {
    return Date.now() / 1000 + this.offsetSecs;
  }

  advanceClock(secs) {
    this.offsetSecs += secs;
  }

  /** The user behind the request's cookie, or null; a live session's idle timer restarts. */
  userOf(req) {
    const token = cookieValue(req, COOKIE);
    const session = token && this.sessions.get(token);
    if (!session) return null;
    const now = this.now();
    if (now - session.lastSeen > IDLE_SECS || now - session.created > LIFETIME_SECS) {
      this.sessions.delete(token);
      return null;
    }
    session.lastSeen = now;
    return session.user;
  }

  /** The user, or the 401 every non-public route answers without a session. */
  require(req, permission) {
    const user = this.userOf(req);
    if (!user) throw unauthenticated();
    if (permission && !PERMISSIONS[user.role]?.includes(permission)) {
      throw new AuthError(403, 'forbidden', `the ${user.role} role may not do this`);
    }
    return user;
  }

  /** Whether the user's role has the permission. */
  static may(user, permission) {
    return PERMISSIONS[user.role]?.includes(permission) ?? false;
  }

  /** Whether a user may see a participant of `study`. */
  static sees(user, study) {
    return user.role === 'admin' || user.studies.includes(study);
  }

  profile(user) {
    return { email: user.email, role: user.role, studies: user.role === 'admin' ? [...STUDIES] : [...user.studies] };
  }

  startSession(user) {
    const token = randomBytes(32).toString('base64url');
    const now = this.now();
    this.sessions.set(token, { user, created: now, lastSeen: now });
    return token;
  }

  /** Counts a failure and answers 429 when the account or address is over its limit. */
  checkThrottle(keys) {
    const now = this.now();
    let wait = 0;
    for (const [key, limit] of keys) {
      const entry = this.failures.get(key);
      if (!entry) continue;
      if (now - entry.since >= THROTTLE_WINDOW_SECS) this.failures.delete(key);
      else if (entry.count >= limit) wait = Math.max(wait, Math.ceil(entry.since + THROTTLE_WINDOW_SECS - now));
    }
    if (wait > 0) {
      throw new AuthError(429, 'throttled', 'too many sign-in attempts; try again later', { 'Retry-After': String(wait) });
    }
  }

  recordFailure(keys) {
    const now = this.now();
    for (const [key] of keys) {
      const entry = this.failures.get(key) ?? { count: 0, since: now };
      entry.count += 1;
      this.failures.set(key, entry);
    }
  }

  async login(req) {
    const body = await readJson(req);
    const email = typeof body?.email === 'string' ? body.email.trim().toLowerCase() : '';
    const password = typeof body?.password === 'string' ? body.password : '';
    const keys = [
      [`account:${email}`, ACCOUNT_ATTEMPTS],
      [`address:${req.socket.remoteAddress}`, ADDRESS_ATTEMPTS],
    ];
    this.checkThrottle(keys);
    const user = USERS.find((u) => u.email === email);
    // Compare digests in constant time, and compare even for an unknown e-mail.
    const ok = timingSafeEqual(sha256(user?.password ?? '\u0000'), sha256(password)) && user !== undefined;
    if (!ok) {
      this.recordFailure(keys);
      throw new AuthError(401, 'invalid_credentials', 'the e-mail address or password is incorrect');
    }
    this.failures.delete(keys[0][0]);
    return { status: 200, headers: { 'Set-Cookie': sessionCookie(this.startSession(user)) }, body: this.profile(user) };
  }

  /**
   * Answers /api/auth/* routes, or returns null for any other path.
   * @returns {Promise<{status: number, headers?: object, body?: unknown} | null>}
   */
  async route(req, url) {
    const path = url.pathname;
    const method = req.method;
    if (!path.startsWith('/api/auth/')) return null;
    if (path === '/api/auth/providers' && method === 'GET') {
      return { status: 200, body: { local: true, oidc: this.oidc ? { name: this.oidc.name, start: 'auth/oidc/start' } : null } };
    }
    if (path === '/api/auth/login' && method === 'POST') return this.login(req);
    if (path === '/api/auth/me' && method === 'GET') return { status: 200, body: this.profile(this.require(req)) };
    if (path === '/api/auth/logout' && method === 'POST') {
      const token = cookieValue(req, COOKIE);
      if (token) this.sessions.delete(token);
      return { status: 204, headers: { 'Set-Cookie': sessionCookie('') } };
    }
    if (path === '/api/auth/oidc/start' && method === 'GET' && this.oidc) {
      const returnTo = safeReturnTo(url.searchParams.get('return_to')) ?? '/';
      const state = randomBytes(16).toString('base64url');
      this.pendingSso.set(state, returnTo);
      // The identity provider would ask who this is; the fake one knows, and answers at once.
      return { status: 302, headers: { Location: `/api/auth/oidc/callback?code=fake&state=${state}` } };
    }
    if (path === '/api/auth/oidc/callback' && method === 'GET' && this.oidc) {
      const state = url.searchParams.get('state');
      const returnTo = this.pendingSso.get(state);
      if (!returnTo) throw new AuthError(400, 'invalid_state', 'unknown or used sign-on state');
      this.pendingSso.delete(state);
      const user = USERS.find((u) => u.email === this.oidc.email);
      if (!user) throw new AuthError(403, 'forbidden', 'the identity provider named no wearhouse user');
      return { status: 302, headers: { Location: returnTo, 'Set-Cookie': sessionCookie(this.startSession(user)) } };
    }
    throw new AuthError(404, 'not_found', `no route ${method} ${path}`);
  }
}
