-- Job $1 taken by worker $2 to run again, unless another worker holds a live lease ($3).
update imputation_jobs
set status = 'running', worker = $2, attempts = 1, started_at = now(),
    heartbeat_at = now(), finished_at = null, error = null
where id = $1 and (status <> 'running' or heartbeat_at < now() - $3::interval)
returning id, participant_id, data_type, range_start, range_end, status as "status: JobStatus",
          method, parameters, summary, error, attempts, worker, created_at, started_at,
          heartbeat_at, finished_at
