//! Imputation as its users meet it, in one test binary: agreement with statsmodels, the `fit`
//! command, jobs run against a real database, and the worker.

mod api_jobs;
mod cli;
mod jobs_run;
mod jobs_worker;
mod statsmodels;
mod support;
mod worker_faults;
