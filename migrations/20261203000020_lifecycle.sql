-- The participant lifecycle: withdrawal (collection stops, the data collected so far stays)
-- and erasure (every row naming the participant goes, the audit trail records that it did).

-- Withdrawal: when, why and by whom. The API marks the participant withdrawn; the ingest
-- revokes the grant at the provider and deletes the tokens, since only it holds the provider
-- client and may read `oauth_tokens`.
alter table participants
  add column withdrawn_at      timestamptz,
  add column withdrawal_reason text,
  -- The actor as the audit trail names them (e-mail, `cli <user>`).
  add column withdrawn_by      text;

-- Whether a participant still holds a grant that the ingest has yet to revoke, without
-- letting the caller read the grant: the API answers a withdrawal with it.
create function participant_grant_pending(p_participant text) returns boolean
language sql stable security definer set search_path = public, pg_temp
as $$
  select exists (select 1 from oauth_tokens where participant_id = p_participant)
$$;

-- Erases a participant: deletes their rows from every table of this schema that has a
-- `participant_id` column (so a table added later cannot escape), from the materialised
-- continuous aggregates on TimescaleDB, and finally the participant row itself, then appends
-- one audit row (pseudonymous id, who, when, row counts per table; nothing else) and returns
-- the counts. audit_log keeps its rows: they name the participant by pseudonymous id only.
--
-- No tombstone is kept: the participant row holds the time zone, provider account and
-- contact details, all personal data; the audit row is the evidence that the erasure happened.
--
-- Refused while the ingest is loading the participant (its advisory lock), since a load in
-- flight would write samples after the delete, and while a grant is not yet revoked at the
-- provider: deleting the tokens would leave a live grant nobody can revoke any more.
--
-- On TimescaleDB, raw_data's compressed chunks are deleted from in place (TimescaleDB 2.11 or
-- later), as are the aggregates' materialisations; the caller then refreshes the aggregates
-- over the returned time span (a refresh cannot run inside a transaction) so that no bucket
-- is rebuilt from data of the span that is already gone.
create function erase_participant(
  p_participant text, p_actor_user_id bigint, p_actor text, p_request_id text,
  p_client_addr text
) returns jsonb
language plpgsql security definer set search_path = public, pg_temp
as $$
declare
  v_study text;
  v_provider text;
  v_counts jsonb := '{}';
  v_from timestamptz;
  v_to timestamptz;
  v_n bigint;
  r record;
begin
  select study_id into v_study from participants where participant_id = p_participant for update;
  if not found then
    raise exception 'unknown participant %', p_participant using errcode = 'no_data_found';
  end if;
  if not pg_try_advisory_xact_lock(hashtextextended('wearhouse-ingest:' || p_participant, 0)) then
    raise exception 'the ingest is loading participant % right now; try again in a few minutes',
      p_participant using errcode = 'lock_not_available';
  end if;
  select provider into v_provider from oauth_tokens
  where participant_id = p_participant and revoked_at is null limit 1;
  if found then
    raise exception 'participant % still holds a % grant; withdraw them first (`wearhouse-ingest participant withdraw`) so that the grant is revoked at the provider',
      p_participant, v_provider using errcode = 'object_not_in_prerequisite_state';
  end if;

  select min(timestamp), max(timestamp) into v_from, v_to
  from raw_data where participant_id = p_participant;

  -- Tables that others reference go after those that reference them (imputation_jobs after
  -- imputed_data, participants last), so each count is the table's own rows, not a cascade.
  for r in
    select c.oid::regclass as rel, c.relname::text as name
    from pg_class c
    join pg_attribute a on a.attrelid = c.oid and a.attname = 'participant_id'
                       and not a.attisdropped
    where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')
      and not c.relispartition and c.relname not in ('audit_log', 'participants')
    order by exists (select 1 from pg_constraint f
                     where f.contype = 'f' and f.confrelid = c.oid and f.conrelid <> c.oid),
             c.relname
  loop
    execute format('delete from %s where participant_id = $1', r.rel) using p_participant;
    get diagnostics v_n = row_count;
    v_counts := v_counts || jsonb_build_object(r.name, v_n);
  end loop;

  if wearhouse_backend() = 'timescaledb' then
    for r in execute $sql$
      select view_name::text as name,
             format('%I.%I', materialization_hypertable_schema,
                    materialization_hypertable_name) as rel
      from timescaledb_information.continuous_aggregates
      where view_schema = 'public'
      order by view_name
    $sql$
    loop
      execute format('delete from %s where participant_id = $1', r.rel) using p_participant;
      get diagnostics v_n = row_count;
      v_counts := v_counts || jsonb_build_object(r.name, v_n);
    end loop;
  end if;

  delete from participants where participant_id = p_participant;
  get diagnostics v_n = row_count;
  v_counts := v_counts || jsonb_build_object('participants', v_n);

  perform audit_append(p_actor_user_id, p_actor, 'participant_erased', v_study,
                       array[p_participant], p_request_id, p_client_addr, 'ok',
                       jsonb_build_object('rows', v_counts));
  return jsonb_build_object('rows', v_counts, 'study_id', v_study,
                            'samples_from', v_from, 'samples_to', v_to);
end
$$;

-- The API withdraws participants and erases them; nobody else is given the function.
do $$
begin
  execute 'revoke all on function participant_grant_pending(text) from public';
  execute 'revoke all on function erase_participant(text, bigint, text, text, text) from public';
  if exists (select from pg_roles where rolname = 'wearhouse_api') then
    execute 'grant update (status, withdrawn_at, withdrawal_reason, withdrawn_by, updated_at)
             on participants to wearhouse_api';
    execute 'grant execute on function participant_grant_pending(text) to wearhouse_api';
    execute 'grant execute on function erase_participant(text, bigint, text, text, text)
             to wearhouse_api';
  end if;
exception when insufficient_privilege then
  raise notice 'cannot grant the lifecycle rights to wearhouse_api (%); grant them by hand', sqlerrm;
end
$$;
