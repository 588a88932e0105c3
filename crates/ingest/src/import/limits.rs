//! What one export file may cost the importer, and report text that stays short whatever the
//! file holds. An export comes from outside (a participant's download, passed on by e-mail or a
//! USB stick), so a few kilobytes of it must not be able to take gigabytes of memory, hours of
//! work or a report of megabytes.

use std::fmt;
use std::str::FromStr;

/// The default of `--max-entry-bytes`: real export files are a few megabytes at most (a day of
/// heart rate at one reading per second is about 6 MiB of JSON).
pub const DEFAULT_MAX_ENTRY_BYTES: u64 = 512 * MIB;

/// The default of `--max-entry-samples`: a day of one-per-second heart rate is 86 400 samples, a
/// month of sleep stages 89 280; each sample takes about 150 bytes until it is written.
pub const DEFAULT_MAX_ENTRY_SAMPLES: usize = 2_000_000;

/// An archive entry may decompress to at most this many times its compressed size. Export JSON
/// compresses about tenfold; a file of repeated bytes (an archive bomb) about a thousandfold.
pub const MAX_COMPRESSION_RATIO: u64 = 100;

/// Below this many decompressed bytes the ratio is not checked: a small file of repeated text
/// compresses well and costs nothing.
pub const RATIO_FLOOR: u64 = MIB;

/// The longest JSON entry (one element of a file's top-level array) read; the largest real ones,
/// sleep logs, are a few tens of KiB. An entry is parsed whole, so this bounds that parse.
pub const MAX_JSON_ENTRY_BYTES: u64 = MIB;

/// The longest CSV line read (the header included); real lines are under 100 bytes.
pub const MAX_CSV_LINE_BYTES: u64 = 64 * KIB;

/// The longest sleep segment read: a sleep log covers less than a day, and each segment becomes
/// one sample per 30 s.
pub const MAX_SLEEP_SEGMENT_SECONDS: i64 = crate::sources::sleep_stages::MAX_SEGMENT_SECONDS;

/// The most characters of one reason in a report.
pub const MAX_REASON_CHARS: usize = 300;

/// The most items (columns, names) one reason lists before "and N more".
pub const MAX_LISTED: usize = 5;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// The limits of one import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most bytes read from one file (after decompression, counted as read).
    pub max_entry_bytes: u64,
    /// The most samples one file may yield.
    pub max_entry_samples: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
            max_entry_samples: DEFAULT_MAX_ENTRY_SAMPLES,
        }
    }
}

/// A number of bytes, written as `1048576`, `512KiB`, `64MiB`, `1GiB` (or `K`, `M`, `G`, all
/// powers of 1024; `kB`, `MB`, `GB` are powers of 1000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let number: u64 = digits
            .parse()
            .map_err(|_| format!("{s:?} is not a size; write e.g. 512MiB, 64M or 1048576"))?;
        let scale = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kib" => KIB,
            "m" | "mib" => MIB,
            "g" | "gib" => GIB,
            "kb" => 1000,
            "mb" => 1000 * 1000,
            "gb" => 1000 * 1000 * 1000,
            other => {
                return Err(format!(
                    "unknown unit {other:?} in {s:?}; use B, KiB, MiB, GiB (or K, M, G, kB, MB, GB)"
                ));
            }
        };
        number
            .checked_mul(scale)
            .map(ByteSize)
            .ok_or_else(|| format!("{s:?} is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, scale) in [("GiB", GIB), ("MiB", MIB), ("KiB", KIB)] {
            if n >= scale && n.is_multiple_of(scale) {
                return write!(f, "{} {unit}", n / scale);
            }
        }
        write!(f, "{n} bytes")
    }
}

/// `s` cut to [`MAX_REASON_CHARS`] characters, saying how much was left out.
pub fn bounded(s: &str) -> String {
    bounded_to(s, MAX_REASON_CHARS)
}

/// `s` cut to `max` characters, saying how much was left out.
pub fn bounded_to(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((cut, _)) => format!("{}… ({} more bytes)", &s[..cut], s.len() - cut),
    }
}

/// At most [`MAX_LISTED`] of `items`, quoted and each cut short, then "and N more".
pub fn some_of(items: &[&str]) -> String {
    let total = items.len();
    let shown: Vec<String> = items
        .iter()
        .take(MAX_LISTED)
        .map(|i| format!("{:?}", bounded_to(i, 40)))
        .collect();
    let mut out = format!("[{}]", shown.join(", "));
    if total > shown.len() {
        out.push_str(&format!(" and {} more", total - shown.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_with_and_without_units_and_print_back() {
        let size = |s: &str| s.parse::<ByteSize>().map(|b| b.0);
        assert_eq!(size("1048576"), Ok(MIB));
        assert_eq!(size("512MiB"), Ok(512 * MIB));
        assert_eq!(size("64 M"), Ok(64 * MIB));
        assert_eq!(size("1g"), Ok(GIB));
        assert_eq!(size("10kB"), Ok(10_000));
        assert!(size("lots").unwrap_err().contains("not a size"));
        assert!(size("5 parsecs").unwrap_err().contains("unknown unit"));
        assert!(size("99999999999999G").unwrap_err().contains("too large"));
        assert_eq!(ByteSize(512 * MIB).to_string(), "512 MiB");
        assert_eq!(ByteSize(1000).to_string(), "1000 bytes");
    }

    #[test]
    fn long_text_and_long_lists_are_cut_short() {
        assert_eq!(bounded_to("abcdef", 3), "abc… (3 more bytes)");
        assert_eq!(bounded_to("abc", 3), "abc");
        assert_eq!(some_of(&["a", "b"]), r#"["a", "b"]"#);
        let many: Vec<String> = (0..1000).map(|i| format!("c{i}")).collect();
        assert_eq!(
            some_of(&many.iter().map(String::as_str).collect::<Vec<_>>()),
            r#"["c0", "c1", "c2", "c3", "c4"] and 995 more"#
        );
    }
}
