-- Runs of the database's maintenance jobs (TimescaleDB's compression and refresh policies, the
-- adherence job) made by the ingest daemon when TimescaleDB's own scheduler cannot run them
-- (`WEARHOUSE_RUN_DB_JOBS`). `CALL run_job(id)` leaves TimescaleDB's job statistics as they
-- were, so the daemon keeps its own record here: when each job is next due, and what the
-- metrics and alerts report next to the scheduler's statistics. One row per job; a restarted
-- daemon (or a second replica) carries on from it.
create table db_job_runs (
  job_id               integer     primary key,
  last_start           timestamptz,
  last_finish          timestamptz,
  last_success         timestamptz,
  consecutive_failures integer     not null default 0,
  total_runs           bigint      not null default 0,
  total_failures       bigint      not null default 0,
  last_error           text
);

comment on table db_job_runs is
  'Maintenance jobs run by the ingest daemon in place of the TimescaleDB scheduler';

-- The daemon runs the jobs as their owner (the login that ran the migrations), which owns this
-- table; its metrics are read as wearhouse_ingest. pg_monitor lets that role see the server's
-- activity (connections by state, the scheduler's background workers) without superuser.
do $$
begin
  if exists (select from pg_roles where rolname = 'wearhouse_ingest') then
    execute 'grant select on db_job_runs to wearhouse_ingest';
    begin
      execute 'grant pg_monitor to wearhouse_ingest';
    exception when insufficient_privilege then
      raise notice 'cannot grant pg_monitor to wearhouse_ingest (%); connection metrics then count only its own sessions', sqlerrm;
    end;
  end if;
exception when insufficient_privilege then
  raise notice 'cannot grant db_job_runs to wearhouse_ingest (%); grant it by hand', sqlerrm;
end
$$;
