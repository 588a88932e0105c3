//! wearhouse-impute: fills gaps in wearable series. Heart rate gets an ARIMA model fitted by
//! exact maximum likelihood, its gaps filled by the Kalman smoother ([`arima`]); other
//! metrics get their catalogue default ([`fill`]). [`cli`] is the command line.
//!
//! Jobs ([`jobs`]) apply the fills to a participant's stored data and write `imputed_data`;
//! `wearhouse_core::store` holds their SQL (`jobs`, `imputed`), [`worker`] takes them from the
//! queue, [`run`] runs one in-process.

pub mod arima;
pub mod cli;
pub mod fill;
pub mod jobs;
pub mod metrics;
pub mod run;
pub mod series;
pub mod worker;
