-- Moving participants between providers (the Fitbit Web API → the Google Health API): the move
-- itself, and per metric the instant from which the new source's data is taken, so that history
-- continues without a gap (the new source starts where the old watermark ended) and without an
-- overlap (nothing the old source already delivered is loaded again from the new one).

create table provider_moves (
  participant_id        text        not null references participants on delete cascade,
  from_provider         text        not null,
  to_provider           text        not null,
  -- The participant's id at each provider (Fitbit user id; Google healthUserId).
  from_user_id          text,
  to_user_id            text,
  moved_at              timestamptz not null default now(),
  -- When the old grant was revoked at the old provider; null while that is still to do.
  from_grant_revoked_at timestamptz,
  primary key (participant_id, from_provider, to_provider)
);

create table source_handovers (
  participant_id text        not null references participants on delete cascade,
  to_source      text        not null,
  data_type      text        not null,
  from_source    text        not null,
  -- The old source's watermark at the move: the new source delivers nothing before it.
  not_before     timestamptz not null,
  created_at     timestamptz not null default now(),
  primary key (participant_id, to_source, data_type)
);
