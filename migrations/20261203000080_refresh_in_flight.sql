-- A refresh token on its way to the token endpoint. Fitbit's refresh tokens are single-use: if
-- the process dies after the provider rotated the token and before the new pair was stored,
-- the stored token is spent. The token is recorded here (committed) before it is sent and the
-- row is deleted in the statement that stores the new pair, so a row that outlives its refresh
-- tells the next refresh that an identical request was cut off, which a provider that replays
-- refreshes for a grace period answers with the same new pair.
--
-- Its own table, not a column of oauth_tokens: the refresh holds the grant's row lock across
-- the token endpoint call and the record must be committed before the call, from another
-- connection, which could not update the locked row. Sealed like oauth_tokens' tokens (same
-- cipher, participant, provider and column `refresh_token` as associated data).
create table oauth_refresh_in_flight (
  participant_id       text        not null references participants on delete cascade,
  provider             text        not null,
  refresh_token_sealed bytea       not null,
  token_key_id         text        not null,
  started_at           timestamptz not null default now(),
  primary key (participant_id, provider)
);

comment on table oauth_refresh_in_flight is
  'Refresh token sent to the provider whose answer is not stored yet (cut off by a crash if it stays)';

do $$
begin
  if exists (select from pg_roles where rolname = 'wearhouse_ingest') then
    execute 'grant select, insert, update, delete on oauth_refresh_in_flight to wearhouse_ingest';
  end if;
  if exists (select from pg_roles where rolname = 'wearhouse_api') then
    execute 'revoke all on oauth_refresh_in_flight from wearhouse_api';
  end if;
exception when insufficient_privilege then
  raise notice 'cannot grant oauth_refresh_in_flight to wearhouse_ingest (%); grant it by hand', sqlerrm;
end
$$;
