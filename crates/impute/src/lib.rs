//! wearhouse-impute: fills gaps in wearable series. Heart rate gets an ARIMA model fitted by
//! exact maximum likelihood, its gaps filled by the Kalman smoother ([`arima`]); other
//! metrics get their catalogue default ([`fill`]). [`cli`] is the command line.

pub mod arima;
pub mod cli;
pub mod fill;
pub mod series;
