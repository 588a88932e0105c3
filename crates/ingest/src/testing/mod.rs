//! Test support (feature `testing`, never in the release binary): local fake servers for the
//! providers we cannot reach from tests.

pub mod fake_fitbit;
pub mod fake_google;

pub use fake_fitbit::{FakeFitbit, FakeFitbitConfig, FakeTokens, FakeUser, Fault, RequestRecord};
pub use fake_google::{
    FakeGoogleConfig, FakeGoogleHealth, FakeGoogleTokens, FakeGoogleUser, GoogleFault,
    GoogleRequest,
};
