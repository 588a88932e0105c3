-- OAuth grants sealed at rest, and the least-privilege roles of ingest, impute and Grafana.

-- Grants: the tokens move to sealed columns (XChaCha20-Poly1305 under the key in
-- WEARHOUSE_TOKEN_KEY_FILE, which the database never sees, so this migration cannot encrypt).
-- The old columns are renamed so that nothing writes plain text by accident, and stay only
-- until the ingest seals them: every ingest command that touches grants seals the plain rows
-- it finds before anything else, and a row holds each token in exactly one form.
alter table oauth_tokens rename column access_token to plain_access_token;
alter table oauth_tokens rename column refresh_token to plain_refresh_token;
alter table oauth_tokens alter column plain_access_token drop not null;
alter table oauth_tokens
  -- nonce ‖ ciphertext ‖ tag, with participant, provider and column as associated data.
  add column access_token_sealed  bytea,
  add column refresh_token_sealed bytea,
  -- Which key sealed them (a hash of the key, not the key), so a rotation or a wrong key
  -- file is told apart from a damaged value.
  add column token_key_id         text,
  add constraint oauth_tokens_one_form check (
    num_nonnulls(access_token_sealed, plain_access_token) = 1
    and num_nonnulls(refresh_token_sealed, plain_refresh_token) <= 1
    and (token_key_id is null) = (access_token_sealed is null)
    and (refresh_token_sealed is null or token_key_id is not null)
  );

-- What each service's role may do, read off its code. Roles are per server, privileges per
-- database, so this runs in every database migrated. Where the migrating user may not grant
-- (not the owner), the grants are left to the operator, as for wearhouse_api.
do $$
begin
  execute 'grant usage on schema public to wearhouse_ingest, wearhouse_impute, wearhouse_grafana';

  -- Ingest: loads samples and rollups, keeps watermarks, runs, grants, enrolments and
  -- provider moves, refreshes adherence, and appends its command-line audit rows through
  -- audit_append. Nothing of sign-in (users, sessions, api_tokens), nor the audit trail's rows.
  execute 'grant select, insert, update, delete on raw_data, data_1m, data_1h, data_1d,
             rollup_refresh_pending, ingest_state, oauth_tokens, adherence_days
           to wearhouse_ingest';
  execute 'grant select, insert, update on participants, ingest_runs, provider_moves,
             source_handovers to wearhouse_ingest';
  -- refresh_adherence reads imputed values, settings and studies (enrolment checks a study).
  execute 'grant select on imputed_data, adherence_settings, studies, participant_adherence,
             participant_adherence_daily to wearhouse_ingest';
  execute 'grant usage on sequence ingest_runs_id_seq, rollup_refresh_pending_id_seq
           to wearhouse_ingest';
  execute 'grant execute on function audit_append to wearhouse_ingest';

  -- Impute: claims and finishes jobs, reads the series and the participant's time zone,
  -- replaces its own output. Never grants, contact details or sign-in.
  execute 'grant select, insert, update on imputation_jobs to wearhouse_impute';
  execute 'grant select, insert, delete on imputed_data to wearhouse_impute';
  execute 'grant select on raw_data, data_1m, data_1h, data_1d to wearhouse_impute';
  execute 'grant select (participant_id, study_id, timezone, status, enrolled_at, provider,
             last_device_sync) on participants to wearhouse_impute';

  -- Grafana runs analysts' SQL: read-only, on what the dashboards show. Participants by
  -- pseudonymous id only (no contact details, no provider account id); adherence through its
  -- views, which expose no contact column. Never grants, contact requests, sign-in or the
  -- audit trail.
  execute 'grant select on raw_data, data_1m, data_1h, data_1d, imputed_data, adherence_days,
             adherence_settings, participant_adherence, participant_adherence_daily, studies,
             ingest_runs, ingest_state to wearhouse_grafana';
  execute 'grant select (participant_id, study_id, timezone, status, enrolled_at, provider,
             needs_reconsent, reconsent_reason, last_device_sync, created_at, updated_at)
           on participants to wearhouse_grafana';

  -- The API: unchanged but for sequences of tables it cannot insert into (ingest runs, the
  -- rollup queue) or fills only through audit_append, which runs as its owner.
  execute 'revoke usage on sequence ingest_runs_id_seq, rollup_refresh_pending_id_seq,
             audit_log_id from wearhouse_api';
exception when insufficient_privilege then
  raise notice 'cannot grant to the service roles (%); grant their rights by hand', sqlerrm;
end
$$;

-- TimescaleDB refreshes a continuous aggregate only for its owner (or a member of the owner's
-- role), and the ingest refreshes the rollups after each load: they are handed to the ingest's
-- role. They are derived data, rebuilt from raw_data by a refresh.
do $$
declare
  view text;
begin
  if wearhouse_backend() = 'timescaledb' then
    foreach view in array array['data_1m', 'data_1h', 'data_1d'] loop
      if exists (select from timescaledb_information.continuous_aggregates
                 where view_schema = current_schema() and view_name = view) then
        execute format('alter materialized view %I owner to wearhouse_ingest', view);
      end if;
    end loop;
  end if;
exception when insufficient_privilege then
  raise notice 'cannot hand the rollups to wearhouse_ingest (%); do it by hand', sqlerrm;
end
$$;
