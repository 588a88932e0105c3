//! wearhouse-api.
