//! Resolutions a series can be read at: raw samples or the 1-minute, 1-hour and 1-day rollups.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A resolution, finest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Resolution {
    #[serde(rename = "raw")]
    Raw,
    #[serde(rename = "1m")]
    Minute,
    #[serde(rename = "1h")]
    Hour,
    #[serde(rename = "1d")]
    Day,
}

impl Resolution {
    /// Every resolution, finest first.
    pub const ALL: [Resolution; 4] = [
        Resolution::Raw,
        Resolution::Minute,
        Resolution::Hour,
        Resolution::Day,
    ];

    /// The name used on the wire: `raw`, `1m`, `1h`, `1d`.
    pub const fn name(self) -> &'static str {
        match self {
            Resolution::Raw => "raw",
            Resolution::Minute => "1m",
            Resolution::Hour => "1h",
            Resolution::Day => "1d",
        }
    }

    /// Bucket width in seconds; `None` for raw, whose spacing is the metric's native interval.
    pub const fn bucket_secs(self) -> Option<i64> {
        match self {
            Resolution::Raw => None,
            Resolution::Minute => Some(60),
            Resolution::Hour => Some(3_600),
            Resolution::Day => Some(86_400),
        }
    }

    /// The relation holding this resolution.
    pub const fn relation(self) -> &'static str {
        match self {
            Resolution::Raw => "raw_data",
            Resolution::Minute => "data_1m",
            Resolution::Hour => "data_1h",
            Resolution::Day => "data_1d",
        }
    }

    /// Parses `raw`, `1m`, `1h` or `1d`; the error names `resolution`.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        Resolution::ALL
            .into_iter()
            .find(|r| r.name() == raw.trim())
            .ok_or_else(|| {
                Error::invalid(
                    "resolution",
                    format!("unknown resolution {raw:?}; expected auto, raw, 1m, 1h or 1d"),
                )
            })
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Resolution {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Resolution::parse(s)
    }
}
