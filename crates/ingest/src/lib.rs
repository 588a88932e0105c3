//! wearhouse-ingest: collects wearable data into the warehouse. It reads as a pipeline:
//! [`sources`] (one per provider) → [`pipeline`] (watermarks, last sync, batching) → [`sink`]
//! (the core COPY writer and rollup refresh), driven once by `run`, on a schedule by
//! [`daemon`], or over a generated study by `synthetic` ([`cohort`]).

pub mod backfill;
pub mod cli;
pub mod cohort;
pub mod daemon;
pub mod db_jobs;
pub mod enroll;
pub mod import;
pub mod metrics;
pub mod migration;
pub mod oauth;
pub mod pipeline;
pub mod runs;
pub mod sink;
pub mod sources;
pub mod withdraw;
