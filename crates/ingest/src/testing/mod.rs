//! Test support (feature `testing`, never in the release binary): local fake servers for the
//! providers we cannot reach from tests.

pub mod fake_fitbit;

pub use fake_fitbit::{FakeFitbit, FakeFitbitConfig, FakeTokens, FakeUser, Fault, RequestRecord};
