-- Consent links: a coordinator sends a participant a link that starts the provider's consent
-- without a wearhouse account. Only the SHA-256 of the link's random token is kept, so reading
-- the table does not yield a usable link. A link is single-use: the ingest daemon sets used_at
-- in the transaction that stores the grant.
create table consent_links (
  link_id              bigint generated always as identity primary key,
  token_hash           bytea       not null unique,
  participant_id       text        not null references participants on delete cascade,
  provider             text        not null check (provider in ('fitbit', 'google-health')),
  -- The coordinator who made it (null once that user is gone: the audit trail keeps who).
  created_by           bigint      references users on delete set null,
  created_at           timestamptz not null default now(),
  expires_at           timestamptz not null,
  used_at              timestamptz,
  revoked_at           timestamptz,
  -- The coordinator confirmed that a provider account other than the one on record may
  -- replace it; without this the consent of a different account is refused.
  allow_account_change boolean     not null default false,
  check (expires_at > created_at)
);
create index consent_links_participant on consent_links (participant_id, created_at desc);

-- The API creates participants, edits their time zone and contact details, and creates and
-- revokes links; the ingest daemon reads a link and marks it used. Where the migrating user
-- may not grant, the grants are left to the operator.
do $$
begin
  if exists (select from pg_roles where rolname = 'wearhouse_api') then
    execute 'grant select, insert on consent_links to wearhouse_api';
    execute 'grant update (revoked_at) on consent_links to wearhouse_api';
    execute format('grant usage on sequence %s to wearhouse_api',
                   pg_get_serial_sequence('consent_links', 'link_id'));
    execute 'grant insert on participants to wearhouse_api';
    execute 'grant update (timezone, contact_name, contact_email, updated_at) on participants to wearhouse_api';
  end if;
  if exists (select from pg_roles where rolname = 'wearhouse_ingest') then
    execute 'grant select on consent_links to wearhouse_ingest';
    execute 'grant update (used_at) on consent_links to wearhouse_ingest';
  end if;
exception when insufficient_privilege then
  raise notice 'cannot grant on consent_links (%); grant its rights by hand', sqlerrm;
end
$$;
