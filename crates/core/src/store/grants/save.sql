-- Stores a sealed token answer: a missing user id or scope keeps the stored one (the caller
-- seals the kept refresh token again itself); a new grant clears revoked_at and any plain text.
insert into oauth_tokens (participant_id, provider, provider_user_id, access_token_sealed,
                          refresh_token_sealed, token_key_id, expires_at, scope, revoked_at,
                          updated_at)
values ($1, $2, $3, $4, $5, $6, $7, $8, null, now())
on conflict (participant_id, provider) do update set
  provider_user_id = coalesce(excluded.provider_user_id, oauth_tokens.provider_user_id),
  plain_access_token = null,
  plain_refresh_token = null,
  access_token_sealed = excluded.access_token_sealed,
  refresh_token_sealed = excluded.refresh_token_sealed,
  token_key_id = excluded.token_key_id,
  expires_at = excluded.expires_at,
  scope = coalesce(excluded.scope, oauth_tokens.scope),
  revoked_at = null,
  updated_at = now()
returning participant_id, provider, provider_user_id, plain_access_token, plain_refresh_token,
          access_token_sealed, refresh_token_sealed, token_key_id, expires_at, scope,
          revoked_at, updated_at
