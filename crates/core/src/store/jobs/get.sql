select id, participant_id, data_type, range_start, range_end, status as "status: JobStatus",
       method, parameters, summary, error, attempts, worker, created_at, started_at,
       heartbeat_at, finished_at
from imputation_jobs where id = $1
