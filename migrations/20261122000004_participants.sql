-- Participants, their provider grants and the ingest watermarks.

create table participants (
  participant_id   text primary key,
  timezone         text        not null default 'UTC',
  status           text        not null default 'active'
                   check (status in ('active', 'paused', 'withdrawn', 'completed')),
  enrolled_at      timestamptz not null default now(),
  -- The source new data comes from: 'synthetic', 'fitbit', 'google-health'.
  provider         text,
  provider_user_id text,
  needs_reconsent  boolean     not null default false,
  reconsent_reason text,
  contact_name     text,
  contact_email    text,
  last_device_sync timestamptz,
  created_at       timestamptz not null default now(),
  updated_at       timestamptz not null default now()
);

create table oauth_tokens (
  participant_id   text        not null references participants on delete cascade,
  provider         text        not null,
  provider_user_id text,
  access_token     text        not null,
  refresh_token    text,
  expires_at       timestamptz not null,
  scope            text,
  revoked_at       timestamptz,
  updated_at       timestamptz not null default now(),
  primary key (participant_id, provider)
);

-- The day from which the next delta load fetches, per participant, source and metric.
create table ingest_state (
  participant_id text        not null references participants on delete cascade,
  source         text        not null,
  data_type      text        not null,
  watermark      timestamptz not null,
  last_run_at    timestamptz,
  last_error     text,
  updated_at     timestamptz not null default now(),
  primary key (participant_id, source, data_type)
);
