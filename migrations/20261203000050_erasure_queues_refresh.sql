-- An erasure on TimescaleDB deletes the participant's rows from raw_data and from the
-- continuous aggregates' materialisations, and the delete logs an invalidation over the
-- participant's span. Settling it is a refresh, which only the aggregates' owner (the ingest's
-- role) may run and which cannot run inside the erasing transaction: the API queues the span
-- in the same transaction as the erasure, and the ingest refreshes it with the spans its loads
-- queue. No bucket of the participant comes back either way, since a refresh recomputes from
-- raw_data, where their rows are gone.
do $$
begin
  if exists (select from pg_roles where rolname = 'wearhouse_api') then
    execute 'grant insert on rollup_refresh_pending to wearhouse_api';
    execute 'grant usage on sequence rollup_refresh_pending_id_seq to wearhouse_api';
  end if;
exception when insufficient_privilege then
  raise notice 'cannot let wearhouse_api queue a refresh (%); grant it by hand', sqlerrm;
end
$$;
