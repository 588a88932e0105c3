-- TimescaleDB: the 1-hour continuous aggregate is stored compressed too, like the 1-minute one
-- (20261122000032_rollup_compression.sql), segmented by series and ordered by bucket.
--
-- Why: at a trial's size the rollups, not the raw samples, hold the storage. With 1,000
-- participants × 30 days the row-stored 1-hour aggregate took 457 MB against 631 MB for all
-- compressed raw samples, about 17 GB over three years (docs/benchmarks.md, "Scale"). Its
-- chunks are compressed once they are older than the window its refresh policy rewrites
-- (3 days), as the 1-minute aggregate's are; the 1-day aggregate, built from it, reads
-- compressed chunks as it reads row-stored ones. The daily aggregate is 24 times smaller
-- again and stays row-stored.
--
-- The aggregates belong to the ingest's role, which cannot log in, and TimescaleDB adds a
-- policy only for an owner that can: the view is the migrating login's while the policy is
-- added, then handed back (its jobs follow, like those of the other aggregates).
do $$
declare
  owner name;
begin
  if wearhouse_backend() = 'timescaledb' then
    select c.relowner::regrole::name into owner
      from pg_class c
     where c.oid = format('%I.data_1h', current_schema())::regclass;
    execute format('alter materialized view data_1h owner to %I', current_user);
    alter materialized view data_1h set (
      timescaledb.compress = true,
      timescaledb.compress_segmentby = 'participant_id, data_type',
      timescaledb.compress_orderby = 'bucket');
    perform add_compression_policy('data_1h',
      greatest(wearhouse_setting('compress_after', '3 days')::interval, interval '3 days'),
      if_not_exists => true);
    execute format('alter materialized view data_1h owner to %I', owner);
  end if;
end
$$;
