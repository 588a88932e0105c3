-- The ingest refreshes the planner's statistics right after a load (a query planned on
-- statistics that still say "empty" can take minutes), but ANALYZE is for a relation's owner,
-- and the ingest now works as wearhouse_ingest. These two functions run it as their owner on
-- the relations a load writes, and on nothing else.
create function analyze_samples() returns void
  language plpgsql security definer set search_path = public, pg_temp as $$
begin
  analyze raw_data, participants;
end
$$;

-- The 1-minute rollup: the table the writer keeps, or on TimescaleDB the continuous
-- aggregate's materialisation (the catalogue is read only there).
create function analyze_minute_rollup() returns void
  language plpgsql security definer set search_path = public, pg_temp as $$
declare
  minute text;
begin
  if exists (select from pg_class where oid = to_regclass('data_1m') and relkind in ('r', 'p')) then
    minute := 'data_1m';
  else
    execute $q$select format('%I.%I', materialization_hypertable_schema,
                             materialization_hypertable_name)
               from timescaledb_information.continuous_aggregates
               where view_schema = current_schema() and view_name = 'data_1m'$q$
      into minute;
  end if;
  execute 'analyze ' || minute;
end
$$;

revoke all on function analyze_samples(), analyze_minute_rollup() from public;
do $$
begin
  execute 'grant execute on function analyze_samples(), analyze_minute_rollup() to wearhouse_ingest';
exception when insufficient_privilege or undefined_object then
  raise notice 'cannot grant the analyse functions to wearhouse_ingest (%); grant them by hand', sqlerrm;
end
$$;
