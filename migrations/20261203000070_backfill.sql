-- History from before enrolment. A study often enrols participants who have worn their device
-- for months; the first local day their load fetches can be set per participant (at enrolment
-- or later), instead of only for every participant at once on the ingest's command line.
-- `provider_account_since` is the day the participant's provider account was created, as the
-- provider's profile reports it at consent: nothing exists before it, so a start set earlier
-- is clamped to it (and the load says so).
alter table participants
  add column backfill_from          date,
  add column provider_account_since date;

comment on column participants.backfill_from is
  'First local day the ingest fetches for this participant; null: the ingest''s --backfill-from, else the enrolment day';
comment on column participants.provider_account_since is
  'Day the provider account was created (provider profile), the earliest day with data';

do $$
begin
  if exists (select from pg_roles where rolname = 'wearhouse_api') then
    execute 'grant update (backfill_from) on participants to wearhouse_api';
    -- Moving the start earlier moves the participant's watermarks back with it.
    execute 'grant select, update (watermark, updated_at) on ingest_state to wearhouse_api';
  end if;
exception when insufficient_privilege then
  raise notice 'cannot grant the backfill rights to wearhouse_api (%); grant them by hand', sqlerrm;
end
$$;

-- `wearhouse-ingest enroll` next to a running daemon hands the consent to it through a
-- single-use consent link, created under the ingest's role.
do $$
begin
  if exists (select from pg_roles where rolname = 'wearhouse_ingest') then
    execute 'grant insert on consent_links to wearhouse_ingest';
    execute format('grant usage on sequence %s to wearhouse_ingest',
                   pg_get_serial_sequence('consent_links', 'link_id'));
  end if;
exception when insufficient_privilege then
  raise notice 'cannot let wearhouse_ingest create consent links (%); grant it by hand', sqlerrm;
end
$$;
