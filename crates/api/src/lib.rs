//! wearhouse-api: the REST API over the warehouse, and the `migrate` command that creates and
//! upgrades the schema.

pub mod cli;
pub mod migrate;
