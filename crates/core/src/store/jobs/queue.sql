-- A new job for any worker; the insert trigger NOTIFYs imputation_jobs at commit.
insert into imputation_jobs (id, participant_id, data_type, range_start, range_end)
values ($1, $2, $3, $4, $5)
returning id, participant_id, data_type, range_start, range_end, status as "status: JobStatus",
          method, parameters, summary, error, attempts, worker, created_at, started_at,
          heartbeat_at, finished_at
