// The table of the same series the chart shows, one page at a time.
import { decimalsFor, formatCount, formatFixed, formatTime } from './format.js';

/**
 * Renders one page of points into the table body.
 * @param {HTMLTableSectionElement} tbody
 * @param {Array<object>} points
 * @param {string} resolution
 */
export function renderRows(tbody, points, resolution) {
  const table = tbody.closest('table');
  const hasText = points.some((p) => p.text);
  // Each column keeps one number of decimals so it lines up (averages of counts have them,
  // their min and max do not).
  const avgDecimals = decimalsFor(points.map((p) => p.value));
  const rangeDecimals = decimalsFor(points.flatMap((p) => [p.min, p.max]));
  for (const el of table.querySelectorAll('.label-col')) el.hidden = !hasText;
  const rows = points.map((p) => {
    const tr = document.createElement('tr');
    const time = document.createElement('th');
    time.scope = 'row';
    const stamp = document.createElement('time');
    stamp.dateTime = p.timestamp;
    stamp.textContent = formatTime(Date.parse(p.timestamp), resolution);
    time.append(stamp);
    tr.append(time);
    for (const v of [
      formatFixed(p.value, avgDecimals),
      formatFixed(p.min, rangeDecimals),
      formatFixed(p.max, rangeDecimals),
      formatCount(p.count),
    ]) {
      const td = document.createElement('td');
      td.className = 'num';
      td.textContent = v;
      tr.append(td);
    }
    const label = document.createElement('td');
    label.className = 'label-col';
    label.hidden = !hasText;
    label.textContent = p.text ?? '';
    tr.append(label);
    return tr;
  });
  tbody.replaceChildren(...rows);
}

/** Puts a single message row (loading, empty, error) across the whole table. */
export function renderMessage(tbody, message) {
  const tr = document.createElement('tr');
  const td = document.createElement('td');
  td.colSpan = 6;
  td.className = 'table-message';
  td.textContent = message;
  tr.append(td);
  tbody.replaceChildren(tr);
}
