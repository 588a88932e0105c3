-- The database roles of the other services, created empty: the migrations that follow grant
-- each one what its service needs and nothing more (ingest, impute, and Grafana's read-only
-- view). Roles are shared by every database of the server, so a role that exists is kept.
do $$
declare
  name text;
begin
  foreach name in array array['wearhouse_ingest', 'wearhouse_impute', 'wearhouse_grafana'] loop
    if not exists (select from pg_roles where rolname = name) then
      begin
        execute format('create role %I nologin', name);
      exception when duplicate_object or unique_violation then
        null; -- created meanwhile by a migration of another database of this server
      end;
    end if;
  end loop;
exception when insufficient_privilege then
  raise notice 'cannot create the service roles (%); create them by hand', sqlerrm;
end
$$;
