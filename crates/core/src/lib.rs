//! wearhouse-core: the domain (metric catalogue, participants, samples, time ranges,
//! resolutions), configuration blocks shared by every binary, database access and telemetry.
//!
//! Every service reads and writes wearable data through [`store`]; nothing else talks SQL
//! to `raw_data` or the rollups.

pub mod config;
pub mod crypto;
pub mod error;
pub mod metric;
pub mod participant;
pub mod process;
pub mod resolution;
pub mod sample;
pub mod store;
pub mod telemetry;
pub mod time;

#[cfg(feature = "testing")]
pub mod testing;

pub use error::{Error, ErrorKind};
pub use metric::{ImputationStrategy, Metric, MetricKind};
pub use participant::ParticipantId;
pub use resolution::Resolution;
pub use sample::Sample;
pub use time::TimeRange;
