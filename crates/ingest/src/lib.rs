//! wearhouse-ingest.
