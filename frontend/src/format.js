// How numbers, times and resolutions read on screen. Times are shown in UTC, the time zone
// the rollup buckets are cut in (see date-adapter.js).
import { format } from 'date-fns';
import { IN_UTC } from './date-adapter.js';

const numberFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const countFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });

const fixedFormats = [0, 1, 2].map(
  (d) => new Intl.NumberFormat(undefined, { minimumFractionDigits: d, maximumFractionDigits: d }),
);

/** A measured value, or an en dash when absent. */
export const formatValue = (v) => (v === null || v === undefined ? '–' : numberFormat.format(v));

/** A value with a fixed number of decimals (0–2), so a column of them lines up. */
export const formatFixed = (v, decimals) =>
  v === null || v === undefined ? '–' : fixedFormats[decimals].format(v);

/** How many decimals (0–2) a set of values needs: none when all are whole numbers. */
export const decimalsFor = (values) =>
  values.every((v) => v === null || v === undefined || Number.isInteger(v)) ? 0 : 2;

/** A whole count (samples, rows). */
export const formatCount = (v) => (v === null || v === undefined ? '–' : countFormat.format(v));

/** The time zone every time on the page is shown in. */
export const ZONE = 'UTC';

const TIME_FORMATS = {
  raw: 'yyyy-MM-dd HH:mm:ss',
  '1m': 'yyyy-MM-dd HH:mm',
  '1h': 'yyyy-MM-dd HH:mm',
  '1d': 'yyyy-MM-dd',
};

/** A point's timestamp at the precision its resolution has. */
export const formatTime = (ms, resolution) => format(ms, TIME_FORMATS[resolution] ?? TIME_FORMATS.raw, IN_UTC);

/** The date-fns pattern matching a resolution, for the chart tooltip. */
export const tooltipFormat = (resolution) =>
  ({ raw: 'd MMM yyyy, HH:mm:ss', '1m': 'd MMM yyyy, HH:mm', '1h': 'd MMM yyyy, HH:mm', '1d': 'EEE d MMM yyyy' })[
    resolution
  ] ?? 'd MMM yyyy, HH:mm:ss';

const RESOLUTION_NAMES = { raw: 'raw samples', '1m': '1 minute', '1h': '1 hour', '1d': '1 day' };

/** "1 minute" for "1m"; unknown names pass through. */
export const resolutionName = (r) => RESOLUTION_NAMES[r] ?? r;

/** A range for people: "1 Jun 2025 – 30 Jun 2025" (the end is exclusive, so show the day before). */
export function formatRange(start, end) {
  const lastDay = new Date(end.getTime() - 1);
  const a = format(start, 'd MMM yyyy', IN_UTC);
  const b = format(lastDay, 'd MMM yyyy', IN_UTC);
  return a === b ? a : `${a} – ${b}`;
}

/** "heart_rate" → "Heart rate". */
export const metricLabel = (name) => {
  const words = name.replace(/_/g, ' ').replace(/\bspo2\b/i, 'SpO₂').replace(/\bhrv\b/i, 'HRV');
  return words.charAt(0).toUpperCase() + words.slice(1);
};
