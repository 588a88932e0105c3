-- The rollups are read by series: one participant's metric over a time range (the API, the
-- Grafana participant view, the adherence refresh). On TimescaleDB, creating a continuous
-- aggregate also indexes (participant_id, bucket) and (data_type, bucket); every
-- materialised row then updates four indexes, which made refreshing a day of 1-minute buckets
-- twice as slow, and neither index finds a series without reading the participant's other
-- metrics. Here each aggregate keeps its bucket index and gets one series index instead.
-- Plain PostgreSQL's rollup tables already have that index as their primary key.
--
-- The 1-minute aggregate's chunks cover one day (as raw_data's do) rather than ten: a day's
-- refresh then writes into one chunk whose indexes stay small enough to be cached.
do $$
declare
  r record;
begin
  if wearhouse_backend() = 'timescaledb' then
    for r in
      select i.schemaname, i.indexname
      from timescaledb_information.continuous_aggregates c
      join pg_indexes i on i.schemaname = c.materialization_hypertable_schema
                       and i.tablename = c.materialization_hypertable_name
      where c.view_schema = current_schema()
        and c.view_name in ('data_1m', 'data_1h', 'data_1d')
        and (i.indexdef like '%(participant_id, bucket DESC)'
             or i.indexdef like '%(data_type, bucket DESC)')
    loop
      execute format('drop index %I.%I', r.schemaname, r.indexname);
    end loop;
    create index if not exists data_1m_series on data_1m (participant_id, data_type, bucket);
    create index if not exists data_1h_series on data_1h (participant_id, data_type, bucket);
    create index if not exists data_1d_series on data_1d (participant_id, data_type, bucket);
    alter materialized view data_1m set (timescaledb.chunk_interval = '1 day');
  end if;
end
$$;
