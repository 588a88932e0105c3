//! Ingest as its users meet it, in one test binary: the delta load against a real database,
//! the providers' clients against local fakes of Fitbit and Google Health, the binary's
//! commands (`run`, `daemon`, `enroll`, `synthetic`), coordinators' consent links and imports of
//! exported files.

mod alert_e2e;
mod consent_links;
mod consent_scopes;
mod daemon;
mod db_jobs;
mod enroll;
mod faulty_run;
mod fitbit_api;
mod fitbit_data;
mod fitbit_oauth;
mod google_data;
mod google_oauth;
mod grants_at_rest;
mod import_export;
mod import_hostile;
mod killed_load;
mod migration_fitbit_to_google;
mod pipeline;
mod provider_faults;
mod providers_run;
mod run_outcomes;
mod sleep_both_providers;
mod support;
mod synthetic;
mod withdraw;
