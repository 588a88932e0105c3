-- Who may see what: studies, staff users and the studies they work on, sign-in sessions, API
-- tokens, and the append-only, hash-chained audit trail. Secrets are never stored: sessions
-- and tokens are kept as SHA-256 hashes of their random secret, passwords as argon2id hashes.

create table studies (
  study_id   text primary key
             check (study_id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
  name       text        not null,
  created_at timestamptz not null default now()
);

-- Existing participants go to the default study, the synthetic cohort to `demo`.
insert into studies (study_id, name) values
  ('default', 'Default study'),
  ('demo', 'Synthetic demo cohort');

alter table participants
  add column study_id text not null default 'default' references studies;
update participants set study_id = 'demo' where provider = 'synthetic';
create index participants_study on participants (study_id, participant_id);

create table users (
  user_id       bigint generated always as identity primary key,
  email         text        not null check (email ~ '^[^@\s]+@[^@\s]+$'),
  role          text        not null
                check (role in ('admin', 'coordinator', 'researcher', 'analyst')),
  -- argon2id in PHC string form; null for users who only sign in through the identity provider.
  password_hash text,
  -- The identity provider's issuer and subject, set at the first single sign-on.
  oidc_issuer   text,
  oidc_subject  text,
  disabled_at   timestamptz,
  last_login_at timestamptz,
  created_at    timestamptz not null default now(),
  updated_at    timestamptz not null default now(),
  unique (oidc_issuer, oidc_subject)
);
create unique index users_email on users (lower(email));

-- The studies a user works on; an admin works on all without rows here.
create table user_studies (
  user_id  bigint not null references users on delete cascade,
  study_id text   not null references studies on delete cascade,
  primary key (user_id, study_id)
);

create table sessions (
  -- SHA-256 of the random secret in the browser's cookie.
  session_hash bytea       primary key,
  user_id      bigint      not null references users on delete cascade,
  created_at   timestamptz not null default now(),
  last_seen_at timestamptz not null default now(),
  ended_at     timestamptz,
  client_addr  text
);
create index sessions_user on sessions (user_id) where ended_at is null;

create table api_tokens (
  token_id     bigint generated always as identity primary key,
  user_id      bigint      not null references users on delete cascade,
  name         text        not null check (length(name) between 1 and 100),
  -- SHA-256 of the token; the token itself is shown once, when it is created.
  token_hash   bytea       not null unique,
  created_at   timestamptz not null default now(),
  expires_at   timestamptz,
  revoked_at   timestamptz,
  last_used_at timestamptz,
  unique (user_id, name)
);

-- One row per access to participant data and per change to who may access it. Each row's
-- hash covers its own fields and the previous row's hash, so altering or removing a row
-- breaks the chain from there on (`wearhouse-api audit verify`).
create table audit_log (
  audit_id        bigint      primary key,
  at              timestamptz not null,
  actor_user_id   bigint,
  -- The user's e-mail, `token <name> of <e-mail>`, `cli <operating-system user>`, or for a
  -- failed sign-in the e-mail that was tried.
  actor           text        not null,
  action          text        not null,
  study_id        text,
  participant_ids text[]      not null default '{}',
  request_id      text,
  client_addr     text,
  -- `ok`, `denied` or `failed`.
  outcome         text        not null,
  detail          jsonb       not null default '{}',
  prev_hash       bytea       not null,
  hash            bytea       not null
);
create index audit_log_at on audit_log (at);
create index audit_log_participants on audit_log using gin (participant_ids);
create sequence audit_log_id owned by audit_log.audit_id;

-- The hash of one row: SHA-256 over the previous hash and the row's fields in a fixed order,
-- rendered as jsonb text (whose rendering is canonical) with the time in epoch microseconds,
-- so neither the session's time zone nor its date style changes it.
create function audit_digest(
  prev_hash bytea, audit_id bigint, at timestamptz, actor_user_id bigint, actor text,
  action text, study_id text, participant_ids text[], request_id text, client_addr text,
  outcome text, detail jsonb
) returns bytea
language sql immutable
as $$
  select sha256(prev_hash || convert_to(jsonb_build_array(
    audit_id, (extract(epoch from at) * 1000000)::bigint, actor_user_id, actor, action,
    study_id, to_jsonb(participant_ids), request_id, client_addr, outcome, detail
  )::text, 'UTF8'))
$$;

-- Appends one row. Appends take turns (a transaction-level advisory lock held to commit), so
-- ids follow the chain; a rolled-back append leaves a gap in the ids, never in the chain.
create function audit_append(
  p_actor_user_id bigint, p_actor text, p_action text, p_study_id text,
  p_participant_ids text[], p_request_id text, p_client_addr text, p_outcome text,
  p_detail jsonb
) returns bigint
language plpgsql security definer set search_path = public, pg_temp
as $$
declare
  v_prev bytea;
  v_id bigint;
  v_at timestamptz := clock_timestamp();
  v_detail jsonb := coalesce(p_detail, '{}');
  v_participants text[] := coalesce(p_participant_ids, '{}');
begin
  perform pg_advisory_xact_lock(hashtext('wearhouse audit_log'));
  select hash into v_prev from audit_log order by audit_id desc limit 1;
  v_prev := coalesce(v_prev, '\x'::bytea);
  v_id := nextval('audit_log_id');
  insert into audit_log (audit_id, at, actor_user_id, actor, action, study_id, participant_ids,
                         request_id, client_addr, outcome, detail, prev_hash, hash)
  values (v_id, v_at, p_actor_user_id, p_actor, p_action, p_study_id, v_participants,
          p_request_id, p_client_addr, p_outcome, v_detail, v_prev,
          audit_digest(v_prev, v_id, v_at, p_actor_user_id, p_actor, p_action, p_study_id,
                       v_participants, p_request_id, p_client_addr, p_outcome, v_detail));
  return v_id;
end
$$;

-- Rows are never changed or removed through SQL, whoever asks; only a superuser who turns the
-- trigger off can, and `audit verify` then finds the altered row.
create function audit_log_append_only() returns trigger
language plpgsql as $$
begin
  raise exception 'audit_log is append-only (% refused)', tg_op
    using errcode = 'insufficient_privilege';
end
$$;
create trigger audit_log_append_only
  before update or delete on audit_log
  for each row execute function audit_log_append_only();
create trigger audit_log_no_truncate
  before truncate on audit_log
  for each statement execute function audit_log_append_only();

-- The API's own database role: it reads what it serves, keeps sessions, tokens' last use,
-- imputation jobs and contact requests, provisions single-sign-on users, and appends to the audit trail through audit_append
-- only; it cannot read participants' OAuth grants nor change or remove an audit row. Where
-- the migrating user may not create roles, the grants are left to the operator.
do $$
begin
  if not exists (select from pg_roles where rolname = 'wearhouse_api') then
    begin
      create role wearhouse_api nologin;
    exception when duplicate_object or unique_violation then
      null; -- created meanwhile by a migration of another database of this server
    end;
  end if;
  execute 'grant usage on schema public to wearhouse_api';
  execute 'grant select on all tables in schema public to wearhouse_api';
  execute 'revoke all on oauth_tokens from wearhouse_api';
  execute 'revoke all on audit_log from wearhouse_api';
  execute 'grant select on audit_log to wearhouse_api';
  execute 'grant insert, update on imputation_jobs, contact_requests to wearhouse_api';
  execute 'grant insert, update, delete on sessions to wearhouse_api';
  execute 'grant update on api_tokens, users to wearhouse_api';
  -- Single sign-on with an issuer's roles claim creates users and sets their studies.
  execute 'grant insert on users to wearhouse_api';
  execute 'grant insert, delete on user_studies to wearhouse_api';
  execute 'grant usage on all sequences in schema public to wearhouse_api';
  execute 'revoke all on function audit_append from public';
  execute 'grant execute on function audit_append to wearhouse_api';
exception when insufficient_privilege then
  raise notice 'cannot create or grant to role wearhouse_api (%); grant its rights by hand', sqlerrm;
end
$$;
