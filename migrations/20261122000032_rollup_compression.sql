-- TimescaleDB: the 1-minute continuous aggregate is stored in columnar (compressed) form,
-- segmented by series and ordered by bucket, like raw_data.
--
-- Why: materialising 1-minute buckets row by row was the slowest part of a bulk load. Each
-- bucket went into a heap and two B-tree indexes (one of them keyed on two text columns), at
-- about 100,000 buckets per second per refresh; a 100-participant month is 9.6 million
-- buckets. With compression on, the ingest's explicit refreshes ask TimescaleDB to compress
-- while it materialises (`timescaledb.enable_direct_compress_on_cagg_refresh`, set by the
-- writer for its refresh session where the server has it): a day's window then takes about
-- half the time, and the result is stored the way a series is read, one participant's metric
-- as a batch. Buckets materialised by the refresh policy land uncompressed and are compressed
-- by the policy below once they are older than its refresh window.
--
-- The 1-hour and 1-day aggregates are 60 and 1,440 times smaller and stay row-stored.
do $$
begin
  if wearhouse_backend() = 'timescaledb' then
    alter materialized view data_1m set (
      timescaledb.compress = true,
      timescaledb.compress_segmentby = 'participant_id, data_type',
      timescaledb.compress_orderby = 'bucket');
    -- A continuous aggregate's chunks can only be compressed outside the window its refresh
    -- policy rewrites (3 days, see 20261122000003_rollups.sql).
    perform add_compression_policy('data_1m',
      greatest(wearhouse_setting('compress_after', '3 days')::interval, interval '3 days'),
      if_not_exists => true);
  end if;
end
$$;
