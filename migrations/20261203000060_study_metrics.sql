-- What a study collects, the scopes participants did not grant, and since when a participant
-- has needed re-consent.

-- The metrics (catalogue names) a study collects; null collects every metric its
-- participants' providers offer. A study that does not need a metric never fetches it.
alter table studies add column metrics text[];

-- When the participant first needed re-consent in the current episode: set with the flag,
-- kept while it stays set, cleared with it. The ingest exports how many have waited longer
-- than a configured number of days, which the alert rules watch.
alter table participants add column reconsent_since timestamptz;
update participants set reconsent_since = updated_at where needs_reconsent;

-- Metrics skipped for a participant because the provider says (or the stored grant shows)
-- that the scope they need was not granted: listed by `reconsent-list` with the scope, and
-- removed once the metric loads again (after a new consent with the scope).
create table scopes_not_granted (
  participant_id text        not null references participants on delete cascade,
  source         text        not null,
  data_type      text        not null,
  scope          text        not null,
  since          timestamptz not null default now(),
  primary key (participant_id, source, data_type)
);

do $$
begin
  execute 'grant select, insert, update, delete on scopes_not_granted to wearhouse_ingest';
  execute 'grant select on scopes_not_granted to wearhouse_grafana';
  execute 'grant select (reconsent_since) on participants to wearhouse_grafana';
exception when insufficient_privilege then
  raise notice 'cannot grant on scopes_not_granted (%); grant its rights by hand', sqlerrm;
end
$$;
