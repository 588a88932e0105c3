// The sign-in routes of the API: who is signed in, the ways to sign in, signing in and out.
import { ApiError, errorOf, getJson, request } from './api.js';

/**
 * @typedef {{email: string, role: string, studies: string[]}} User
 * @typedef {{local: boolean, oidc: {name: string, start: string} | null}} Providers
 */

/** The signed-in user, or null when there is no valid session. */
export async function currentUser() {
  try {
    return await getJson('auth/me');
  } catch (err) {
    if (err instanceof ApiError && err.kind === 'session') return null;
    throw err;
  }
}

/** @returns {Promise<Providers>} */
export const providers = () => getJson('auth/providers');

/**
 * Signs in with a local account. A wrong e-mail or password throws an ApiError with code
 * `invalid_credentials`; too many attempts one with code `throttled` and `retryAfter` seconds.
 * @returns {Promise<User>}
 */
export async function signIn(email, password) {
  const answer = await request('POST', 'auth/login', { json: { email, password } });
  if (answer.response.ok && answer.body && typeof answer.body === 'object') return answer.body;
  const err = errorOf(answer);
  // Here a 401 is a refused password, not a lost session.
  if (err.status === 401) err.kind = 'client';
  if (answer.response.ok) throw new ApiError('auth/login did not return JSON', { status: err.status, kind: 'format' });
  throw err;
}

/** Ends the session on the server (which also clears the cookie). */
export async function signOut() {
  const answer = await request('POST', 'auth/logout');
  // 401: the session had already ended, which is what was asked for.
  if (answer.response.ok || answer.response.status === 401) return;
  throw errorOf(answer);
}

/**
 * Where single sign-on starts: a full-page navigation, after which the identity provider
 * sends the browser back to `returnTo` (path, query and hash of this page) signed in.
 */
export function ssoStartUrl(start, returnTo) {
  const url = new URL(`api/${start}`, document.baseURI);
  url.searchParams.set('return_to', returnTo);
  return url.href;
}
