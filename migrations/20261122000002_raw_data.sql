-- Every sample, as the original system stored it. The unique key makes loading the same data
-- twice a no-op; the writer replaces a value when a later load revises it.
create table raw_data (
  timestamp      timestamptz      not null,
  participant_id text             not null,
  data_type      text             not null,
  value_numeric  double precision,
  value_text     text,
  constraint raw_data_key unique (participant_id, data_type, timestamp)
);

do $$
begin
  if wearhouse_backend() <> 'postgres' then
    perform create_hypertable(
      'raw_data', 'timestamp',
      chunk_time_interval => wearhouse_setting('chunk_interval', '1 day')::interval,
      create_default_indexes => false,
      if_not_exists => true,
      migrate_data => true);
  end if;
  if wearhouse_backend() = 'timescaledb' then
    alter table raw_data set (
      timescaledb.compress,
      timescaledb.compress_segmentby = 'participant_id, data_type',
      timescaledb.compress_orderby = 'timestamp');
    perform add_compression_policy(
      'raw_data', wearhouse_setting('compress_after', '3 days')::interval, if_not_exists => true);
  end if;
end
$$;
