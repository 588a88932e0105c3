//! The Grafana files in `grafana/`: dashboards are well-formed and refer only to provisioned
//! datasources and existing dashboards, and every SQL query in them runs, with Grafana's macros
//! and variables substituted, against a seeded database on every backend and returns rows.

mod dashboards;
mod macros;
mod queries;
mod roles;
