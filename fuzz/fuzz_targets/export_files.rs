//! Any bytes as one file of a Fitbit account export, under each name the importer
//! understands (the first byte picks the name), read as `import` reads it: from a zip archive,
//! within the default limits. None may panic, and a file's samples never exceed the limit.
#![no_main]

use std::io::Write as _;

use chrono_tz::Tz;
use libfuzzer_sys::fuzz_target;
use wearhouse_core::ParticipantId;
use wearhouse_ingest::import::ExportReader;
use wearhouse_ingest::import::limits::Limits;

const NAMES: [&str; 8] = [
    "heart_rate-2025-06-01.json",
    "steps-2025-06-01.json",
    "calories-2025-06-01.json",
    "distance-2025-06-01.json",
    "resting_heart_rate-2025-06-01.json",
    "sleep-2025-06-01.json",
    "Daily Heart Rate Variability Summary - 2025-06-01.csv",
    "estimated_oxygen_variation-2025-06-01.csv",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, content)) = data.split_first() else {
        return;
    };
    let name = NAMES[usize::from(pick) % NAMES.len()];
    let path =
        std::env::temp_dir().join(format!("wearhouse-fuzz-files-{}.zip", std::process::id()));
    {
        let file = std::fs::File::create(&path).unwrap();
        let mut zip = zip::ZipWriter::new(file);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zip.start_file(format!("Takeout/Fitbit/Global Export Data/{name}"), options)
            .unwrap();
        zip.write_all(content).unwrap();
        zip.finish().unwrap();
    }
    let limits = Limits {
        max_entry_bytes: 1 << 20,
        max_entry_samples: 100_000,
    };
    let p = ParticipantId::parse("fuzz").unwrap();
    let mut files = ExportReader::open(&path, &p, Tz::Europe__Berlin, limits).unwrap();
    while let Some((_, result)) = files.next_file() {
        if let Ok(samples) = result {
            assert!(samples.len() <= limits.max_entry_samples);
        }
    }
});
