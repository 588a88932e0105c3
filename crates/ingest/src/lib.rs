//! wearhouse-ingest: collects wearable data into the warehouse. It reads as a pipeline:
//! [`sources`] (one per provider) → normalisation → the sink (the core COPY writer), driven by
//! a watermark per participant, source and metric.

pub mod import;
pub mod migration;
pub mod oauth;
pub mod sources;

#[cfg(feature = "testing")]
pub mod testing;
