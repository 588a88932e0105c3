// Chart.js's date adapter, built on date-fns and computing in UTC. The packaged
// chartjs-adapter-date-fns works in the browser's time zone and cannot be told otherwise (its
// startOf/endOf ignore options), but the 1-day rollups are UTC days: a bucket of 1 June would
// be labelled 31 May in New York. Doing every calendar step in UTC keeps axis ticks, tooltips,
// the table and the range presets on the same days as the data.
import { utc } from '@date-fns/utc';
import { _adapters } from 'chart.js';
import {
  addDays,
  addHours,
  addMilliseconds,
  addMinutes,
  addMonths,
  addQuarters,
  addSeconds,
  addWeeks,
  addYears,
  differenceInDays,
  differenceInHours,
  differenceInMilliseconds,
  differenceInMinutes,
  differenceInMonths,
  differenceInQuarters,
  differenceInSeconds,
  differenceInWeeks,
  differenceInYears,
  endOfDay,
  endOfHour,
  endOfMinute,
  endOfMonth,
  endOfQuarter,
  endOfSecond,
  endOfWeek,
  endOfYear,
  format,
  isValid,
  parse,
  parseISO,
  startOfDay,
  startOfHour,
  startOfMinute,
  startOfMonth,
  startOfQuarter,
  startOfSecond,
  startOfWeek,
  startOfYear,
} from 'date-fns';

/** date-fns options that make a function compute in UTC. */
export const IN_UTC = { in: utc };

const FORMATS = {
  datetime: 'd MMM yyyy, HH:mm:ss',
  millisecond: 'HH:mm:ss.SSS',
  second: 'HH:mm:ss',
  minute: 'HH:mm',
  hour: 'HH:mm',
  day: 'd MMM',
  week: 'd MMM',
  month: 'MMM yyyy',
  quarter: 'QQQ yyyy',
  year: 'yyyy',
};

const ADD = {
  millisecond: addMilliseconds,
  second: addSeconds,
  minute: addMinutes,
  hour: addHours,
  day: addDays,
  week: addWeeks,
  month: addMonths,
  quarter: addQuarters,
  year: addYears,
};
const DIFF = {
  millisecond: differenceInMilliseconds,
  second: differenceInSeconds,
  minute: differenceInMinutes,
  hour: differenceInHours,
  day: differenceInDays,
  week: differenceInWeeks,
  month: differenceInMonths,
  quarter: differenceInQuarters,
  year: differenceInYears,
};
const START = {
  second: startOfSecond,
  minute: startOfMinute,
  hour: startOfHour,
  day: startOfDay,
  week: startOfWeek,
  month: startOfMonth,
  quarter: startOfQuarter,
  year: startOfYear,
};
const END = {
  second: endOfSecond,
  minute: endOfMinute,
  hour: endOfHour,
  day: endOfDay,
  week: endOfWeek,
  month: endOfMonth,
  quarter: endOfQuarter,
  year: endOfYear,
};

_adapters._date.override({
  _id: 'date-fns-utc',

  formats: () => FORMATS,

  parse(value, fmt) {
    if (value === null || value === undefined) return null;
    let date;
    if (typeof value === 'number') date = new Date(value);
    else if (value instanceof Date) date = value;
    else if (typeof value === 'string') {
      date = typeof fmt === 'string' ? parse(value, fmt, new Date(), IN_UTC) : parseISO(value, IN_UTC);
    } else return null;
    return isValid(date) ? date.getTime() : null;
  },

  format: (time, fmt) => format(time, fmt, IN_UTC),

  add: (time, amount, unit) => (ADD[unit] ? ADD[unit](time, amount, IN_UTC).getTime() : time),

  diff: (max, min, unit) => (DIFF[unit] ? DIFF[unit](max, min, IN_UTC) : 0),

  startOf(time, unit, weekday) {
    if (unit === 'isoWeek') return startOfWeek(time, { ...IN_UTC, weekStartsOn: +weekday }).getTime();
    return START[unit] ? START[unit](time, IN_UTC).getTime() : time;
  },

  endOf: (time, unit) => (END[unit] ? END[unit](time, IN_UTC).getTime() : time),
});
