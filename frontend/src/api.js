// Talks to the wearhouse API. URLs are relative ("api/data"), so the page works under any
// prefix nginx serves it at, and the browser never needs CORS. The session cookie is
// HttpOnly and same-origin, so fetch sends it without the page ever seeing it.

/** An API failure, with enough detail to tell the user what went wrong. */
export class ApiError extends Error {
  /**
   * @param {string} message what the server (or the network layer) said
   * @param {{status?: number, code?: string, parameter?: string, retryAfter?: number|null,
   *   kind: 'network'|'server'|'client'|'format'|'input'|'session'|'refused'}} detail
   */
  constructor(message, detail) {
    super(message);
    this.name = 'ApiError';
    this.status = detail.status ?? null;
    this.code = detail.code ?? null;
    this.parameter = detail.parameter ?? null;
    this.retryAfter = detail.retryAfter ?? null;
    this.kind = detail.kind;
  }

  /** A short heading for the error banner. */
  get title() {
    switch (this.kind) {
      case 'network':
        return 'The API could not be reached';
      case 'server':
        return `The API is unavailable (HTTP ${this.status})`;
      case 'client':
        return `The request was rejected (HTTP ${this.status})`;
      case 'input':
        return 'Check the dates';
      case 'session':
        return 'Your session has ended';
      case 'refused':
        return 'Participant not available';
      default:
        return 'The API sent an unexpected answer';
    }
  }
}

/**
 * Sends `method api/<path>?<params>` (with a JSON body if given) and returns the status and
 * the parsed body; only a failure to get an answer at all throws.
 * @param {string} method
 * @param {string} path e.g. "data"
 * @param {{params?: Record<string, string|number|undefined>, json?: unknown, signal?: AbortSignal}} [options]
 * @returns {Promise<{response: Response, url: URL, body: any}>}
 */
export async function request(method, path, { params = {}, json, signal } = {}) {
  const url = new URL(`api/${path}`, document.baseURI);
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) url.searchParams.set(key, String(value));
  }
  const headers = { Accept: 'application/json' };
  if (json !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: json === undefined ? undefined : JSON.stringify(json),
      credentials: 'same-origin',
      signal,
    });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(`No answer from ${url.pathname}: ${err.message}`, { kind: 'network' });
  }
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // Proxies answer 502/504 with HTML; the status line is all there is to report.
  }
  return { response, url, body };
}

/** The ApiError for a non-2xx answer. A 401 means the session is gone (never begun, idle, or expired). */
export function errorOf({ response, url, body }) {
  // The API nests its errors under "error"; nginx's own 502/504 pages carry them at the top.
  const error = (body && body.error) || (body && body.code ? body : null);
  const kind = response.status === 401 ? 'session' : response.status >= 500 ? 'server' : 'client';
  const message =
    (error && error.message) || `${response.status} ${response.statusText || 'error'} from ${url.pathname}`;
  return new ApiError(message, {
    status: response.status,
    code: error && error.code,
    parameter: error && error.parameter,
    retryAfter: retryAfterSecs(response.headers.get('Retry-After')),
    kind,
  });
}

/** `Retry-After` in seconds (it may be a number of seconds or an HTTP date), or null. */
export function retryAfterSecs(header, now = Date.now()) {
  if (!header) return null;
  if (/^\d+$/.test(header.trim())) return Number(header.trim());
  const at = Date.parse(header);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - now) / 1000));
}

/**
 * GETs `api/<path>?<params>` and returns the parsed JSON body.
 * @param {string} path e.g. "data"
 * @param {Record<string, string|number|undefined>} params query parameters; undefined ones are left out
 * @param {AbortSignal} [signal]
 */
export async function getJson(path, params = {}, signal) {
  const answer = await request('GET', path, { params, signal });
  if (!answer.response.ok) throw errorOf(answer);
  if (answer.body === null || typeof answer.body !== 'object') {
    throw new ApiError(`${answer.url.pathname} did not return JSON`, {
      status: answer.response.status,
      kind: 'format',
    });
  }
  return answer.body;
}
