-- Chooses the storage backend. TimescaleDB is used when the extension is available and
-- preloaded, unless the database (or the migrating session) sets wearhouse.timescaledb = 'off'.
-- Later migrations branch on wearhouse_backend(), so the same files migrate plain PostgreSQL,
-- TimescaleDB's Apache-only build and TimescaleDB community.

do $$
begin
  if coalesce(nullif(current_setting('wearhouse.timescaledb', true), ''), 'auto') <> 'off'
     and exists (select 1 from pg_available_extensions where name = 'timescaledb')
     and coalesce(current_setting('shared_preload_libraries', true), '') ~ 'timescaledb' then
    create extension if not exists timescaledb;
  end if;
end
$$;

-- 'timescaledb' (community: hypertables, compression, continuous aggregates),
-- 'timescaledb-apache' (hypertables only) or 'postgres'.
create or replace function wearhouse_backend() returns text
language sql stable as $$
  select case
    when not exists (select 1 from pg_extension where extname = 'timescaledb') then 'postgres'
    when coalesce(current_setting('timescaledb.license', true), 'timescale') = 'apache'
      then 'timescaledb-apache'
    else 'timescaledb'
  end
$$;

-- A migration setting given to `wearhouse-api migrate`, or its default.
create or replace function wearhouse_setting(name text, fallback text) returns text
language sql stable as $$
  select coalesce(nullif(current_setting('wearhouse.' || name, true), ''), fallback)
$$;
