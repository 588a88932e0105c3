-- The oldest queued job, or a running one whose lease ($2) expired with attempts left ($3),
-- taken by worker $1. `skip locked`: concurrent claimers pass over each other's candidate.
with next as (
  select id from imputation_jobs
  where status = 'queued'
     or (status = 'running' and heartbeat_at < now() - $2::interval and attempts < $3)
  order by created_at, id
  limit 1
  for update skip locked
)
update imputation_jobs j
set status = 'running', worker = $1, attempts = j.attempts + 1, started_at = now(),
    heartbeat_at = now(), error = null
from next where j.id = next.id
returning j.id, j.participant_id, j.data_type, j.range_start, j.range_end,
          j.status as "status: JobStatus", j.method, j.parameters, j.summary, j.error,
          j.attempts, j.worker, j.created_at, j.started_at, j.heartbeat_at, j.finished_at
