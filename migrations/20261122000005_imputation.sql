-- Imputation jobs and their output. raw_data is never modified by imputation.

create table imputation_jobs (
  id             uuid primary key,
  participant_id text        not null,
  data_type      text        not null,
  range_start    timestamptz not null,
  range_end      timestamptz not null,
  status         text        not null default 'queued'
                 check (status in ('queued', 'running', 'succeeded', 'failed')),
  method         text,
  parameters     jsonb,
  summary        jsonb,
  error          text,
  attempts       integer     not null default 0,
  worker         text,
  created_at     timestamptz not null default now(),
  started_at     timestamptz,
  heartbeat_at   timestamptz,
  finished_at    timestamptz,
  check (range_end > range_start)
);

create index imputation_jobs_queue on imputation_jobs (created_at) where status in ('queued', 'running');

create table imputed_data (
  timestamp      timestamptz      not null,
  participant_id text             not null,
  data_type      text             not null,
  value_numeric  double precision,
  value_text     text,
  is_imputed     boolean          not null,
  method         text             not null,
  job_id         uuid             not null references imputation_jobs on delete cascade,
  constraint imputed_data_key unique (job_id, participant_id, data_type, timestamp)
);

create index imputed_data_series on imputed_data (participant_id, data_type, timestamp);

create or replace function wearhouse_notify_imputation_job() returns trigger
language plpgsql as $$
begin
  perform pg_notify('imputation_jobs', new.id::text);
  return new;
end
$$;

create trigger imputation_jobs_notify after insert on imputation_jobs
  for each row execute function wearhouse_notify_imputation_job();
