-- A new job already claimed by worker $6.
insert into imputation_jobs (id, participant_id, data_type, range_start, range_end,
                             status, worker, attempts, started_at, heartbeat_at)
values ($1, $2, $3, $4, $5, 'running', $6, 1, now(), now())
returning id, participant_id, data_type, range_start, range_end, status as "status: JobStatus",
          method, parameters, summary, error, attempts, worker, created_at, started_at,
          heartbeat_at, finished_at
