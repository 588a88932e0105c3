-- Stores a token answer: a missing refresh token, user id or scope keeps the stored one; a
-- new grant clears revoked_at.
insert into oauth_tokens (participant_id, provider, provider_user_id, access_token,
                          refresh_token, expires_at, scope, revoked_at, updated_at)
values ($1, $2, $3, $4, $5, $6, $7, null, now())
on conflict (participant_id, provider) do update set
  provider_user_id = coalesce(excluded.provider_user_id, oauth_tokens.provider_user_id),
  access_token = excluded.access_token,
  refresh_token = coalesce(excluded.refresh_token, oauth_tokens.refresh_token),
  expires_at = excluded.expires_at,
  scope = coalesce(excluded.scope, oauth_tokens.scope),
  revoked_at = null,
  updated_at = now()
returning participant_id, provider, provider_user_id, access_token, refresh_token,
          expires_at, scope, revoked_at, updated_at
