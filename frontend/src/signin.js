// The sign-in screen: e-mail and password, the single sign-on button when the API has an
// identity provider configured, and the messages for a refused or throttled attempt.
import { providers, signIn, ssoStartUrl } from './auth.js';

/** Shown for any refused attempt: the API does not say whether the e-mail or the password was wrong, so neither do we. */
export const GENERIC_FAILURE = 'The e-mail address or password is incorrect.';

/** "45 seconds", "1 minute", "15 minutes": how long a throttled user waits. */
export function waitText(secs) {
  if (secs < 60) return `${secs} second${secs === 1 ? '' : 's'}`;
  const mins = Math.ceil(secs / 60);
  return `${mins} minute${mins === 1 ? '' : 's'}`;
}

const $ = (id) => document.getElementById(id);

/**
 * @param {{onSignedIn: (user: import('./auth.js').User) => void, setStatus: (text: string) => void}} hooks
 */
export function createSignIn({ onSignedIn, setStatus }) {
  const ui = {
    section: $('sign-in'),
    form: $('sign-in-form'),
    notice: $('sign-in-notice'),
    error: $('sign-in-error'),
    email: $('email'),
    password: $('password'),
    submit: $('sign-in-submit'),
    sso: $('sso'),
    ssoButton: $('sso-button'),
  };
  let busy = false;
  let throttledUntil = 0;
  let throttleTimer = null;
  let oidc = null;

  function setError(message, focus) {
    ui.error.textContent = message ?? '';
    ui.error.hidden = !message;
    for (const input of [ui.email, ui.password]) {
      if (message && focus !== undefined) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    }
    focus?.focus();
  }

  function setBusy(on) {
    busy = on;
    ui.submit.textContent = on ? 'Signing in…' : 'Sign in';
    ui.form.setAttribute('aria-busy', String(on));
    ui.submit.disabled = on || Date.now() < throttledUntil;
  }

  /** Refuses attempts until the API's Retry-After has passed, saying how long that is. */
  function throttle(secs) {
    const wait = secs ?? 60;
    throttledUntil = Date.now() + wait * 1000;
    clearTimeout(throttleTimer);
    setError(`Too many sign-in attempts. Try again in ${waitText(wait)}.`);
    ui.submit.disabled = true;
    throttleTimer = setTimeout(() => {
      throttledUntil = 0;
      ui.submit.disabled = busy;
      setError('You can try to sign in again now.');
    }, wait * 1000);
  }

  async function submit(event) {
    event.preventDefault();
    if (busy || Date.now() < throttledUntil) return;
    const email = ui.email.value.trim();
    const password = ui.password.value;
    if (!email || !password) {
      setError('Enter your e-mail address and your password.', email ? ui.password : ui.email);
      return;
    }
    setError(null);
    setBusy(true);
    setStatus('Signing in…');
    let user;
    try {
      user = await signIn(email, password);
    } catch (err) {
      setBusy(false);
      if (err.status === 401) {
        ui.password.value = '';
        setError(GENERIC_FAILURE, ui.password);
      } else if (err.status === 429) {
        throttle(err.retryAfter);
      } else {
        setError(`${err.title ?? 'Sign-in failed'}: ${err.message}`);
      }
      setStatus(`Error: ${ui.error.textContent}`);
      return;
    }
    setBusy(false);
    ui.password.value = '';
    setError(null);
    onSignedIn(user);
  }

  ui.form.addEventListener('submit', submit);
  ui.ssoButton.addEventListener('click', () => {
    if (!oidc) return;
    // The identity provider sends the browser back here, so the view in the URL survives.
    location.assign(ssoStartUrl(oidc.start, location.pathname + location.search + location.hash));
  });

  async function loadProviders() {
    try {
      oidc = (await providers()).oidc ?? null;
    } catch {
      // Local sign-in still works, or says itself why not.
      oidc = null;
    }
    ui.ssoButton.textContent = oidc ? `Sign in with ${oidc.name}` : '';
    ui.sso.hidden = !oidc;
  }

  return {
    /** Shows the screen, with an optional notice (signed out, session ended) and e-mail. */
    show(notice = null, email = null) {
      ui.section.hidden = false;
      ui.notice.textContent = notice ?? '';
      ui.notice.hidden = !notice;
      ui.email.value = email ?? '';
      ui.password.value = '';
      if (Date.now() >= throttledUntil) setError(null);
      setBusy(false);
      (email ? ui.password : ui.email).focus();
      setStatus(notice ?? 'Sign in to see data.');
      return loadProviders();
    },
    hide() {
      ui.section.hidden = true;
      ui.notice.hidden = true;
    },
  };
}
