// The current view (participant, metric, range, page) and its round trip through the URL
// query string, so a link can be shared and reloading restores what was on screen.
import { addDays, format, startOfDay, subMonths, subWeeks, subYears } from 'date-fns';
import { IN_UTC } from './date-adapter.js';

export const PRESETS = ['day', 'week', 'month', 'year'];
export const PAGE_SIZES = [25, 50, 100, 250];
const DEFAULT_PAGE_SIZE = 100;
const DATE = 'yyyy-MM-dd';

/**
 * @typedef {{participant: string|null, metric: string|null, range: string,
 *   start: string|null, end: string|null, page: number, pageSize: number}} View
 */

/** Reads the view from a query string; anything missing or malformed gets its default. */
export function viewFromQuery(search) {
  const q = new URLSearchParams(search);
  const range = q.get('range');
  const page = Number.parseInt(q.get('page') ?? '', 10);
  const pageSize = Number.parseInt(q.get('page_size') ?? '', 10);
  const view = {
    participant: q.get('participant') || null,
    metric: q.get('metric') || null,
    range: PRESETS.includes(range) || range === 'custom' ? range : 'day',
    start: parseDay(q.get('start')) ? q.get('start') : null,
    end: parseDay(q.get('end')) ? q.get('end') : null,
    page: Number.isInteger(page) && page > 0 ? page : 1,
    pageSize: PAGE_SIZES.includes(pageSize) ? pageSize : DEFAULT_PAGE_SIZE,
  };
  if (view.range === 'custom' && (!view.start || !view.end)) view.range = 'day';
  return view;
}

/** Writes the view as a query string (defaults left out to keep links short). */
export function viewToQuery(view) {
  const q = new URLSearchParams();
  if (view.participant) q.set('participant', view.participant);
  if (view.metric) q.set('metric', view.metric);
  q.set('range', view.range);
  if (view.range === 'custom') {
    q.set('start', view.start);
    q.set('end', view.end);
  }
  if (view.page !== 1) q.set('page', String(view.page));
  if (view.pageSize !== DEFAULT_PAGE_SIZE) q.set('page_size', String(view.pageSize));
  return `?${q}`;
}

/** Parses a `yyyy-MM-dd` day as its UTC midnight, or returns null (also for 2025-02-30). */
export function parseDay(text) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text ?? '');
  if (!m) return null;
  const day = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return formatDay(day) === text ? day : null;
}

/** Formats a date as its UTC `yyyy-MM-dd`, for a date input. */
export const formatDay = (date) => format(date, DATE, IN_UTC);

/**
 * The half-open range [start, end) the view asks for. Presets end at the UTC midnight after
 * the participant's latest sample of the metric (so a cohort whose data lies in the past
 * still shows data), or after now when there is none. Custom ranges include their end day.
 * @param {View} view
 * @param {string|null|undefined} lastSample ISO timestamp of the latest sample, if known
 * @returns {{start: Date, end: Date} | {error: string}}
 */
export function rangeOf(view, lastSample, now = new Date()) {
  if (view.range === 'custom') {
    const start = parseDay(view.start);
    const endDay = parseDay(view.end);
    if (!start || !endDay) return { error: 'Enter both a start and an end date.' };
    if (endDay < start) return { error: 'The end date is before the start date.' };
    return { start, end: new Date(addDays(endDay, 1, IN_UTC).getTime()) };
  }
  const anchorDate = lastSample ? new Date(lastSample) : now;
  const anchor = Number.isNaN(anchorDate.getTime()) ? now : anchorDate;
  const end = addDays(startOfDay(anchor, IN_UTC), 1, IN_UTC);
  const back = {
    day: (d) => addDays(d, -1, IN_UTC),
    week: (d) => subWeeks(d, 1, IN_UTC),
    month: (d) => subMonths(d, 1, IN_UTC),
    year: (d) => subYears(d, 1, IN_UTC),
  };
  return { start: new Date(back[view.range](end).getTime()), end: new Date(end.getTime()) };
}

/** An instant as the API wants it: RFC 3339 in UTC without milliseconds. */
export const apiInstant = (date) => date.toISOString().replace(/\.\d{3}Z$/, 'Z');
