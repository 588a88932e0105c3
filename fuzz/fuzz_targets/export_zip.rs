//! Any bytes as the `.zip` an export downloads as: opening it either fails with a clear error
//! or lists files that are each read or refused within the limits. None may panic.
#![no_main]

use chrono_tz::Tz;
use libfuzzer_sys::fuzz_target;
use wearhouse_core::ParticipantId;
use wearhouse_ingest::import::ExportReader;
use wearhouse_ingest::import::limits::Limits;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("wearhouse-fuzz-zip-{}.zip", std::process::id()));
    std::fs::write(&path, data).unwrap();
    let limits = Limits {
        max_entry_bytes: 1 << 20,
        max_entry_samples: 100_000,
    };
    let p = ParticipantId::parse("fuzz").unwrap();
    let Ok(mut files) = ExportReader::open(&path, &p, Tz::UTC, limits) else {
        return;
    };
    while let Some((_, result)) = files.next_file() {
        if let Ok(samples) = result {
            assert!(samples.len() <= limits.max_entry_samples);
        }
    }
});
