// The header's links to the other UIs and the sign-in's return path, without a browser: which
// role sees which link, and that `?next=` leads only to a path of this origin.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { safeNext, toolLinks } from '../../frontend/src/tools.js';

const ORIGIN = 'http://127.0.0.1:8080';

test('each role sees the links its permissions open', () => {
  const labels = (role) => toolLinks(role).map((l) => l.label);
  assert.deepEqual(labels('admin'), ['Grafana', 'Prometheus', 'AlertManager']);
  assert.deepEqual(labels('researcher'), ['Grafana']);
  assert.deepEqual(labels('analyst'), ['Grafana']);
  assert.deepEqual(labels('coordinator'), []);
});

test('the return path the web server appends comes back whole, query string included', () => {
  assert.equal(
    safeNext('?next=/prometheus/graph?g0.expr=up&g0.tab=1', ORIGIN),
    '/prometheus/graph?g0.expr=up&g0.tab=1',
  );
  assert.equal(safeNext('?next=%2Fgrafana%2Fd%2Fx', ORIGIN), '/grafana/d/x');
  assert.equal(safeNext('?next=/a/../grafana/', ORIGIN), '/grafana/');
});

test('a return path to another origin is ignored', () => {
  for (const search of [
    '',
    '?view=1',
    '?next=',
    '?next=//evil.example/',
    '?next=%2F%2Fevil.example%2F',
    '?next=/\\evil.example/',
    '?next=/..//evil.example/',
    '?next=https://evil.example/',
    '?next=javascript:alert(1)',
    '?next=%E0%A4%A',
  ]) {
    assert.equal(safeNext(search, ORIGIN), null, search);
  }
});
