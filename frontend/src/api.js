// Talks to the wearhouse API. URLs are relative ("api/data"), so the page works under any
// prefix nginx serves it at, and the browser never needs CORS.

/** An API failure, with enough detail to tell the user what went wrong. */
export class ApiError extends Error {
  /**
   * @param {string} message what the server (or the network layer) said
   * @param {{status?: number, code?: string, parameter?: string, kind: 'network'|'server'|'client'|'format'|'input'}} detail
   */
  constructor(message, detail) {
    super(message);
    this.name = 'ApiError';
    this.status = detail.status ?? null;
    this.code = detail.code ?? null;
    this.parameter = detail.parameter ?? null;
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
      default:
        return 'The API sent an unexpected answer';
    }
  }
}

/**
 * GETs `api/<path>?<params>` and returns the parsed JSON body.
 * @param {string} path e.g. "data"
 * @param {Record<string, string|number|undefined>} params query parameters; undefined ones are left out
 * @param {AbortSignal} [signal]
 */
export async function getJson(path, params = {}, signal) {
  const url = new URL(`api/${path}`, document.baseURI);
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) url.searchParams.set(key, String(value));
  }
  let response;
  try {
    response = await fetch(url, { headers: { Accept: 'application/json' }, signal });
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
  if (!response.ok) {
    const error = body && body.error;
    const kind = response.status >= 500 ? 'server' : 'client';
    const message =
      (error && error.message) ||
      `${response.status} ${response.statusText || 'error'} from ${url.pathname}`;
    throw new ApiError(message, {
      status: response.status,
      code: error && error.code,
      parameter: error && error.parameter,
      kind,
    });
  }
  if (body === null || typeof body !== 'object') {
    throw new ApiError(`${url.pathname} did not return JSON`, {
      status: response.status,
      kind: 'format',
    });
  }
  return body;
}
