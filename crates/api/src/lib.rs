//! wearhouse-api: the REST API over the warehouse, and the `migrate` command that creates and
//! upgrades the schema.
//!
//! [`startup`] wires the app; [`routes`] holds one module per resource; [`error`] is the one
//! place errors become HTTP; [`params`], [`json`] and [`extract`] read query strings, bodies
//! and path parameters so that every failure is a JSON error naming its parameter; [`metrics`] counts requests and reports pool and study gauges; [`contact`] is the
//! researcher outreach form and its e-mail outbox; [`exports`] writes a participant's data in
//! standard formats (FHIR R4, Open mHealth).

pub mod admin;
pub mod auth;
pub mod cli;
pub mod client;
pub mod contact;
pub mod db_login;
pub mod error;
pub mod exports;
pub mod extract;
pub mod idempotency;
pub mod json;
pub mod metrics;
pub mod migrate;
pub mod oidc;
pub mod openapi;
pub mod params;
pub mod participant;
pub mod routes;
pub mod startup;
pub mod state;
