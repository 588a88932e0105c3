// The time-axis chart: the average as a line over a filled min–max band. Chart.js and the
// date adapter are bundled, so nothing is fetched from a CDN.
import {
  Chart,
  Filler,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  TimeScale,
  Tooltip,
} from 'chart.js';
import './date-adapter.js';
import { formatCount, formatValue, tooltipFormat } from './format.js';

Chart.register(LineController, LineElement, PointElement, LinearScale, TimeScale, Filler, Legend, Tooltip);

const LINE = '#1d4ed8';
const BAND = 'rgba(59, 130, 246, 0.22)';
const GRID = 'rgba(15, 23, 42, 0.07)';

/** Creates the (empty) chart on a canvas. Exposed on `window.wearhouseChart` for tests. */
export function createChart(canvas) {
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.color = '#475569';
  const chart = new Chart(canvas, {
    type: 'line',
    data: {
      datasets: [
        { label: 'Min', data: [], borderWidth: 0, pointRadius: 0, pointHoverRadius: 0, fill: false, borderColor: 'transparent' },
        {
          label: 'Min–max range',
          data: [],
          borderWidth: 0,
          pointRadius: 0,
          pointHoverRadius: 0,
          fill: '-1',
          backgroundColor: BAND,
          borderColor: 'transparent',
        },
        { label: 'Average', data: [], borderColor: LINE, backgroundColor: LINE, borderWidth: 1.6, pointRadius: 0, pointHoverRadius: 4, fill: false },
      ],
    },
    options: {
      animation: false,
      parsing: false,
      normalized: true,
      spanGaps: false,
      responsive: true,
      maintainAspectRatio: false,
      interaction: { mode: 'index', intersect: false },
      scales: {
        x: {
          type: 'time',
          grid: { color: GRID },
          ticks: { maxRotation: 0, autoSkipPadding: 16 },
          title: { display: true, text: 'UTC' },
          time: {},
        },
        y: { grid: { color: GRID }, title: { display: true, text: '' }, grace: '5%' },
      },
      plugins: {
        legend: {
          position: 'top',
          align: 'end',
          labels: { boxWidth: 14, boxHeight: 10, filter: (item) => item.datasetIndex !== 0 },
        },
        tooltip: {
          filter: (item) => item.datasetIndex === 2,
          callbacks: {
            label: (ctx) => ` Average: ${formatValue(ctx.raw.y)} ${ctx.chart.$unit ?? ''}`,
            afterLabel: (ctx) => {
              const p = ctx.raw;
              const lines = [];
              if (p.count > 1) lines.push(` Range: ${formatValue(p.min)} – ${formatValue(p.max)}`, ` Samples: ${formatCount(p.count)}`);
              if (p.text) lines.push(` ${p.text}`);
              return lines;
            },
          },
        },
      },
    },
  });
  window.wearhouseChart = chart;
  return chart;
}

/**
 * Shows a series. Where the spacing between points is much wider than the resolution's step,
 * a null point breaks the line, so missing data reads as a gap rather than a straight line.
 * @param {Chart} chart
 * @param {Array<{timestamp: string, value: number|null, min: number|null, max: number|null, count: number, text: string|null}>} points
 * @param {{unit: string, kind: string, resolution: string, stepSecs: number, start: Date, end: Date}} meta
 */
export function showSeries(chart, points, meta) {
  const avg = [];
  const min = [];
  const max = [];
  const gapMs = (meta.resolution === 'raw' ? Math.max(meta.stepSecs * 3, 300) : meta.stepSecs * 1.5) * 1000;
  let prev = null;
  for (const p of points) {
    const x = Date.parse(p.timestamp);
    if (prev !== null && x - prev > gapMs) {
      const gap = { x: prev + 1, y: null };
      avg.push(gap);
      min.push(gap);
      max.push(gap);
    }
    avg.push({ x, y: p.value, min: p.min ?? p.value, max: p.max ?? p.value, count: p.count, text: p.text });
    min.push({ x, y: p.min ?? p.value });
    max.push({ x, y: p.max ?? p.value });
    prev = x;
  }
  const [dMin, dMax, dAvg] = chart.data.datasets;
  dMin.data = min;
  dMax.data = max;
  dAvg.data = avg;
  chart.$unit = meta.unit;
  chart.$resolution = meta.resolution;
  chart.$pointCount = points.length;
  chart.options.scales.x.min = meta.start.getTime();
  chart.options.scales.x.max = meta.end.getTime();
  chart.options.scales.x.time.tooltipFormat = tooltipFormat(meta.resolution);
  chart.options.scales.x.time.unit = tickUnit(meta.end - meta.start);
  chart.options.scales.y.title.text = meta.unit;
  // Counts and stages start at zero; a stage holds until the next one, so draw it as steps.
  chart.options.scales.y.beginAtZero = meta.kind !== 'continuous';
  for (const d of chart.data.datasets) d.stepped = meta.kind === 'categorical' ? 'after' : false;
  chart.update('none');
}

/**
 * Tick unit for a span: calendar steps read better than whatever fits most labels
 * (Chart.js's own choice gives ticks such as "21 Jul, 10 Aug" over a year).
 */
function tickUnit(spanMs) {
  const days = spanMs / 86_400_000;
  if (days <= 3) return 'hour';
  if (days <= 93) return 'day';
  if (days <= 3 * 366) return 'month';
  return 'year';
}

/** Empties the chart (on error or when there is no data). */
export function clearChart(chart) {
  for (const d of chart.data.datasets) d.data = [];
  chart.$pointCount = 0;
  chart.$resolution = null;
  chart.update('none');
}
