-- Delta-load runs, and the spans whose TimescaleDB continuous aggregates still need a refresh.

-- One row per finished run: the ingest service restores its "last success" metric from here at
-- start, so a restart does not look like "never succeeded" to the staleness alerts.
create table ingest_runs (
  id           bigint generated always as identity primary key,
  started_at   timestamptz not null,
  finished_at  timestamptz not null,
  outcome      text        not null check (outcome in ('success', 'failure')),
  participants integer     not null default 0,
  failed       integer     not null default 0,
  samples      bigint      not null default 0
);

create index ingest_runs_success on ingest_runs (finished_at) where outcome = 'success';

-- Spans written by a load whose continuous aggregates are refreshed at the end of the run.
-- A span is recorded before the watermarks move past it and removed after the refresh, so a
-- crash in between leaves it here for the next run. Unused on plain PostgreSQL, where the
-- writer keeps the rollup tables current in the same transaction as the raw rows.
create table rollup_refresh_pending (
  id          bigint generated always as identity primary key,
  range_start timestamptz not null,
  range_end   timestamptz not null,
  created_at  timestamptz not null default now(),
  check (range_end > range_start)
);
