// The participants page for coordinators and admins: the participants of the user's studies
// with where each stands (invited, active, needs re-consent, withdrawn), the device's last
// sync and the last data; a form to add a participant; and per participant a consent link
// to copy or e-mail. A link's URL is shown once, as the API hands it out once.
import { ApiError, errorOf, getJson, request } from './api.js';
import { formatTime } from './format.js';

/** Roles that may add participants and create consent links (the API decides; this hides). */
export const MANAGING_ROLES = ['admin', 'coordinator'];

const STATES = {
  invited: 'Invited',
  active: 'Active',
  needs_reconsent: 'Needs re-consent',
  withdrawn: 'Withdrawn',
  paused: 'Paused',
  completed: 'Completed',
};

const PROVIDERS = { fitbit: 'Fitbit', 'google-health': 'Google Health' };

const $ = (id) => document.getElementById(id);

/** A time as the page shows times (UTC, to the minute), or an en dash. */
const when = (iso) => (iso ? `${formatTime(Date.parse(iso), '1m')} UTC` : '–');

/** Sends a JSON request and returns the body of a 2xx answer; throws the ApiError otherwise. */
async function send(method, path, json) {
  const answer = await request(method, path, { json });
  if (!answer.response.ok) throw errorOf(answer);
  return answer.body;
}

/**
 * The page. `onError(err, retry)` shows failures the page cannot place in a form (a lost
 * session included); `setStatus(text)` announces progress.
 */
export function createParticipantsPage({ onError, setStatus }) {
  const ui = {
    page: $('participants-page'),
    body: $('participants-body'),
    count: $('participants-count'),
    form: $('add-form'),
    formError: $('add-error'),
    added: $('add-done'),
    study: $('add-study'),
    timezone: $('add-timezone'),
    zones: $('timezones'),
    submit: $('add-submit'),
    dialog: $('link-dialog'),
    linkForm: $('link-form'),
    linkTitle: $('link-title'),
    linkError: $('link-error'),
    linkResult: $('link-result'),
    linkUrl: $('link-url'),
    linkExpires: $('link-expires'),
    copy: $('link-copy'),
    copied: $('link-copied'),
    mail: $('link-mail'),
    linkCreate: $('link-create'),
    linkClose: $('link-close'),
    accountChange: $('link-account-change'),
  };
  const state = { user: null, participants: [], linkFor: null, opener: null };

  const fields = {
    participant_id: $('add-id'),
    study_id: ui.study,
    timezone: ui.timezone,
    contact_name: $('add-name'),
    contact_email: $('add-email'),
    backfill_from: $('add-backfill'),
  };

  function formError(box, err, inputs = {}) {
    if (err instanceof ApiError && err.kind === 'session') return void onError(err);
    const input = err.parameter ? inputs[err.parameter] : null;
    box.textContent = err.message;
    box.hidden = false;
    for (const i of Object.values(inputs)) i.removeAttribute('aria-invalid');
    if (input) {
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    }
  }

  function clearFormError(box, inputs = {}) {
    box.hidden = true;
    box.textContent = '';
    for (const i of Object.values(inputs)) i.removeAttribute('aria-invalid');
  }

  function render() {
    const rows = state.participants.map((p) => {
      const tr = document.createElement('tr');
      tr.dataset.participant = p.participant_id;
      const th = document.createElement('th');
      th.scope = 'row';
      th.textContent = p.participant_id;
      const cell = (text, cls) => {
        const td = document.createElement('td');
        td.textContent = text;
        if (cls) td.className = cls;
        return td;
      };
      const stateCell = document.createElement('td');
      const badge = document.createElement('span');
      badge.className = `state state-${p.state}`;
      badge.textContent = STATES[p.state] ?? p.state;
      stateCell.append(badge);
      if (p.state === 'needs_reconsent' && p.reconsent_reason) {
        const reason = document.createElement('span');
        reason.className = 'state-reason muted';
        reason.textContent = p.reconsent_reason;
        stateCell.append(' ', reason);
      }
      const actions = document.createElement('td');
      if (p.state !== 'withdrawn') {
        const button = document.createElement('button');
        button.type = 'button';
        button.className = 'button button-secondary button-small';
        button.textContent = 'Consent link';
        button.setAttribute('aria-label', `Consent link for ${p.participant_id}`);
        button.addEventListener('click', () => openLinkDialog(p, button));
        actions.append(button);
      }
      const providerCell = cell(p.provider ? (PROVIDERS[p.provider] ?? p.provider) : '–');
      if (p.backfill_from) {
        // Where the history starts, and why it starts later when the account is younger.
        const since = p.provider_account_since;
        const from = document.createElement('span');
        from.className = 'state-reason muted backfill';
        from.textContent = since && since > p.backfill_from
          ? `history from ${since} (account created then; asked from ${p.backfill_from})`
          : `history from ${p.backfill_from}`;
        providerCell.append(' ', from);
      }
      tr.append(
        th,
        cell(p.study_id),
        stateCell,
        providerCell,
        cell(when(p.last_device_sync)),
        cell(when(p.last_data_at)),
        cell(p.contact?.email ?? '–'),
        actions,
      );
      return tr;
    });
    if (rows.length === 0) {
      const tr = document.createElement('tr');
      const td = document.createElement('td');
      td.colSpan = 8;
      td.className = 'table-message';
      td.textContent = 'No participants yet. Add one above.';
      tr.append(td);
      rows.push(tr);
    }
    ui.body.replaceChildren(...rows);
    ui.count.textContent = `${state.participants.length} participant${state.participants.length === 1 ? '' : 's'}`;
  }

  async function load() {
    setStatus('Loading participants…');
    try {
      const body = await getJson('participants', { limit: 1000, offset: 0 });
      state.participants = body.participants ?? [];
    } catch (err) {
      onError(err, load);
      return;
    }
    render();
    setStatus(`${state.participants.length} participants listed.`);
  }

  function fillForm() {
    const studies = state.user?.studies ?? [];
    ui.study.replaceChildren(...studies.map((s) => new Option(s, s)));
    if (!ui.timezone.value) ui.timezone.value = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
    if (ui.zones.children.length === 0 && typeof Intl.supportedValuesOf === 'function') {
      ui.zones.replaceChildren(...Intl.supportedValuesOf('timeZone').map((z) => new Option(z)));
    }
  }

  ui.form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearFormError(ui.formError, fields);
    ui.added.hidden = true;
    const value = (input) => input.value.trim() || undefined;
    const json = {
      participant_id: value(fields.participant_id),
      study_id: ui.study.value,
      timezone: ui.timezone.value.trim(),
      contact_name: value(fields.contact_name),
      contact_email: value(fields.contact_email),
      backfill_from: value(fields.backfill_from),
    };
    ui.submit.disabled = true;
    ui.form.setAttribute('aria-busy', 'true');
    try {
      const p = await send('POST', 'participants', json);
      ui.added.textContent = `Participant ${p.participant_id} was added. Create a consent link to invite them.`;
      ui.added.hidden = false;
      for (const key of ['participant_id', 'contact_name', 'contact_email', 'backfill_from']) fields[key].value = '';
      await load();
      ui.body.querySelector(`tr[data-participant="${CSS.escape(p.participant_id)}"] button`)?.focus();
    } catch (err) {
      formError(ui.formError, err, fields);
    } finally {
      ui.submit.disabled = false;
      ui.form.setAttribute('aria-busy', 'false');
    }
  });

  function openLinkDialog(p, opener) {
    state.linkFor = p;
    state.opener = opener;
    ui.linkTitle.textContent = `Consent link for ${p.participant_id}`;
    clearFormError(ui.linkError);
    ui.linkForm.reset();
    ui.linkForm.hidden = false;
    ui.linkResult.hidden = true;
    ui.copied.textContent = '';
    const provider = p.provider && PROVIDERS[p.provider] ? p.provider : 'fitbit';
    ui.linkForm.elements.provider.value = provider;
    ui.dialog.showModal();
    ui.linkForm.querySelector(`input[name="provider"][value="${provider}"]`).focus();
  }

  ui.linkForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const p = state.linkFor;
    if (!p) return;
    clearFormError(ui.linkError);
    ui.linkCreate.disabled = true;
    try {
      const link = await send('POST', `participants/${encodeURIComponent(p.participant_id)}/consent-links`, {
        provider: ui.linkForm.elements.provider.value,
        allow_account_change: ui.accountChange.checked,
        expires_in_hours: Number(ui.linkForm.elements.expires.value),
      });
      ui.linkUrl.value = link.url;
      ui.linkExpires.textContent = `Single use; expires ${when(link.expires_at)}. It is shown only now: copy or e-mail it before closing.`;
      const email = p.contact?.email;
      ui.mail.hidden = !email;
      if (email) {
        const subject = 'Connect your wearable to the study';
        const body = `Hello${p.contact?.name ? ` ${p.contact.name}` : ''},\n\nplease open this link to connect your ${PROVIDERS[link.provider]} account to the study:\n\n${link.url}\n\nThe link works once and expires ${when(link.expires_at)}.\n`;
        ui.mail.href = `mailto:${encodeURIComponent(email)}?subject=${encodeURIComponent(subject)}&body=${encodeURIComponent(body)}`;
        ui.mail.textContent = `E-mail it to ${email}`;
      }
      ui.linkForm.hidden = true;
      ui.linkResult.hidden = false;
      ui.linkUrl.focus();
      ui.linkUrl.select();
      setStatus(`Consent link created for ${p.participant_id}.`);
    } catch (err) {
      if (err instanceof ApiError && err.kind === 'session') {
        ui.dialog.close();
        onError(err);
        return;
      }
      formError(ui.linkError, err);
    } finally {
      ui.linkCreate.disabled = false;
    }
  });

  ui.copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(ui.linkUrl.value);
    } catch {
      // Without clipboard access (plain HTTP off localhost), select it for Ctrl+C instead.
      ui.linkUrl.select();
      ui.copied.textContent = 'Press Ctrl+C (or ⌘C) to copy the selected link.';
      return;
    }
    ui.copied.textContent = 'Copied.';
  });

  ui.linkClose.addEventListener('click', () => ui.dialog.close());
  $('link-cancel').addEventListener('click', () => ui.dialog.close());
  ui.dialog.addEventListener('close', () => {
    // The URL is not kept anywhere once the dialog closes.
    ui.linkUrl.value = '';
    state.linkFor = null;
    state.opener?.focus();
    // The list shows the new link's effect (none until used) and any change meanwhile.
    if (state.user) load();
  });

  return {
    /** Shows the page for `user` and loads the list. */
    show(user) {
      state.user = user;
      ui.page.hidden = false;
      fillForm();
      return load();
    },
    hide() {
      ui.page.hidden = true;
    },
    /** Forgets everything shown (sign-out, session end). */
    clear() {
      state.user = null;
      state.participants = [];
      state.opener = null;
      if (ui.dialog.open) ui.dialog.close();
      ui.body.replaceChildren();
      ui.count.textContent = '';
      ui.added.hidden = true;
      clearFormError(ui.formError, fields);
      ui.page.hidden = true;
    },
  };
}
