-- Idempotency-Key of the API's creating POSTs (`POST /contact`, `POST /data/run_imputation`):
-- a retry with the same key from the same caller within 24 hours gets the first answer back
-- and creates nothing new. The row is claimed (no status yet) before the request runs, so a
-- retry that arrives while the first is still running is told so instead of running twice;
-- the answer is stored when it is known. Only a hash of the request is kept, to tell a
-- different request under a reused key.
create table idempotency_keys (
  user_id       bigint      not null,
  key           text        not null,
  request_hash  bytea       not null,
  status        smallint,
  headers       jsonb,
  body          bytea,
  created_at    timestamptz not null default now(),
  primary key (user_id, key)
);

create index idempotency_keys_created_at on idempotency_keys (created_at);

comment on table idempotency_keys is
  'Idempotency-Key of creating API requests: the request hash and the first answer, kept 24 hours';

-- A kept answer may name a participant (the contact form's confirmation does): erasing the
-- participant forgets such answers with the rest of their rows.
create function idempotency_forget_participant() returns trigger
language plpgsql set search_path = public, pg_temp as $$
begin
  delete from idempotency_keys
  where position(convert_to(old.participant_id, 'UTF8') in body) > 0;
  return old;
end
$$;

create trigger participants_forget_idempotency after delete on participants
  for each row execute function idempotency_forget_participant();

do $$
begin
  if exists (select from pg_roles where rolname = 'wearhouse_api') then
    execute 'grant select, insert, update, delete on idempotency_keys to wearhouse_api';
  end if;
exception when insufficient_privilege then
  raise notice 'cannot grant idempotency_keys to wearhouse_api (%); grant it by hand', sqlerrm;
end
$$;
