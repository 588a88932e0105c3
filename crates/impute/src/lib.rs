//! wearhouse-impute.
