-- The 1-minute, 1-hour and 1-day rollups. On TimescaleDB community they are continuous
-- aggregates (1h built from 1m, 1d from 1h, with real-time aggregation on). Elsewhere they
-- are tables that the sample writer keeps current for exactly the buckets a load touches.
-- 1h and 1d roll up sums and counts: an average of averages would be wrong.

do $$
declare
  tail text := 'participant_id, data_type';
begin
  if wearhouse_backend() = 'timescaledb' then
    execute $sql$
      create materialized view data_1m
      with (timescaledb.continuous, timescaledb.materialized_only = false) as
      select time_bucket('1 minute', timestamp) as bucket, participant_id, data_type,
             avg(value_numeric)   as avg_value_numeric,
             sum(value_numeric)   as sum_value_numeric,
             count(value_numeric) as count_value_numeric,
             min(value_numeric)   as min_value_numeric,
             max(value_numeric)   as max_value_numeric
      from raw_data
      group by 1, 2, 3
      with no data
    $sql$;
    execute $sql$
      create materialized view data_1h
      with (timescaledb.continuous, timescaledb.materialized_only = false) as
      select time_bucket('1 hour', bucket) as bucket, participant_id, data_type,
             sum(sum_value_numeric) / nullif(sum(count_value_numeric), 0) as avg_value_numeric,
             sum(sum_value_numeric)   as sum_value_numeric,
             sum(count_value_numeric) as count_value_numeric,
             min(min_value_numeric)   as min_value_numeric,
             max(max_value_numeric)   as max_value_numeric
      from data_1m
      group by 1, 2, 3
      with no data
    $sql$;
    execute $sql$
      create materialized view data_1d
      with (timescaledb.continuous, timescaledb.materialized_only = false) as
      select time_bucket('1 day', bucket) as bucket, participant_id, data_type,
             sum(sum_value_numeric) / nullif(sum(count_value_numeric), 0) as avg_value_numeric,
             sum(sum_value_numeric)   as sum_value_numeric,
             sum(count_value_numeric) as count_value_numeric,
             min(min_value_numeric)   as min_value_numeric,
             max(max_value_numeric)   as max_value_numeric
      from data_1h
      group by 1, 2, 3
      with no data
    $sql$;
    perform add_continuous_aggregate_policy('data_1m',
      start_offset => interval '3 days', end_offset => interval '1 minute',
      schedule_interval => interval '5 minutes', if_not_exists => true);
    perform add_continuous_aggregate_policy('data_1h',
      start_offset => interval '3 days', end_offset => interval '1 hour',
      schedule_interval => interval '30 minutes', if_not_exists => true);
    perform add_continuous_aggregate_policy('data_1d',
      start_offset => interval '7 days', end_offset => interval '1 day',
      schedule_interval => interval '1 hour', if_not_exists => true);
  else
    foreach tail in array array['1m', '1h', '1d'] loop
      execute format($sql$
        create table %I (
          bucket              timestamptz not null,
          participant_id      text        not null,
          data_type           text        not null,
          avg_value_numeric   double precision,
          sum_value_numeric   double precision,
          count_value_numeric bigint      not null,
          min_value_numeric   double precision,
          max_value_numeric   double precision,
          primary key (participant_id, data_type, bucket)
        )$sql$, 'data_' || tail);
    end loop;
  end if;
end
$$;
