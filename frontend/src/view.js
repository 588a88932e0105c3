// The current view (participant, metric, range, page) and its round trip through the URL
// query string, so a link can be shared and reloading restores what was on screen.
import { addDays, format, isValid, parse, startOfDay, subMonths, subWeeks, subYears } from 'date-fns';

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

/** Parses a `yyyy-MM-dd` day as local midnight, or returns null. */
export function parseDay(text) {
  if (!text || !/^\d{4}-\d{2}-\d{2}$/.test(text)) return null;
  const day = parse(text, DATE, new Date());
  return isValid(day) ? day : null;
}

/** Formats a date as `yyyy-MM-dd` for a date input. */
export const formatDay = (date) => format(date, DATE);

/**
 * The half-open range [start, end) the view asks for. Presets end at the local midnight after
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
    return { start, end: addDays(endDay, 1) };
  }
  const anchorDate = lastSample ? new Date(lastSample) : now;
  const anchor = isValid(anchorDate) ? anchorDate : now;
  const end = addDays(startOfDay(anchor), 1);
  const back = { day: (d) => addDays(d, -1), week: (d) => subWeeks(d, 1), month: (d) => subMonths(d, 1), year: (d) => subYears(d, 1) };
  return { start: back[view.range](end), end };
}

/** An instant as the API wants it: RFC 3339 in UTC without milliseconds. */
export const apiInstant = (date) => date.toISOString().replace(/\.\d{3}Z$/, 'Z');
