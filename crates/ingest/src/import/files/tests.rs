use super::*;

fn p() -> ParticipantId {
    ParticipantId::parse("P001").unwrap()
}

/// Reads `bytes` as a file of `kind` in UTC with at most `max` samples.
fn read_as(kind: Kind, bytes: &[u8], max: usize) -> Result<Vec<Sample>, Skip> {
    let meter = Meter::new(u64::MAX);
    let input = super::super::metered::Metered {
        inner: bytes,
        meter: &meter,
    };
    read(&p(), chrono_tz::UTC, kind, &meter, input, max)
}

fn reason(r: Result<Vec<Sample>, Skip>) -> (bool, String) {
    match r.map(|s| s.len()).unwrap_err() {
        Skip::NotRead(why) => (false, why),
        Skip::Refused(why) => (true, why),
    }
}

#[test]
fn an_hrv_summary_is_read_by_its_header_and_a_bad_cell_names_its_line() {
    let csv = b"timestamp, rmssd ,nremhr\n2026-10-05T00:00:00,41.2,55.1\n\n";
    let samples = read_as(Kind::HrvCsv, csv, 10).unwrap();
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].value_numeric, Some(41.2));
    let bad = b"timestamp,rmssd\n2026-10-05T00:00:00,41.2\n2026-10-06T00:00:00,high\n";
    assert_eq!(
        reason(read_as(Kind::HrvCsv, bad, 10)),
        (false, "unreadable rmssd \"high\" on line 3".into())
    );
    assert_eq!(
        reason(read_as(Kind::HrvCsv, b"date,value\n", 10)),
        (
            false,
            "expected timestamp and rmssd columns, found [\"date\", \"value\"]".into()
        )
    );
}

#[test]
fn a_csv_line_longer_than_the_limit_is_refused_without_reading_the_rest() {
    let mut csv = b"timestamp,rmssd\n2026-10-05T00:00:00,".to_vec();
    csv.extend(std::iter::repeat_n(b'9', 4 * MAX_CSV_LINE_BYTES as usize));
    let (refused, why) = reason(read_as(Kind::HrvCsv, &csv, 10));
    assert!(refused);
    assert!(why.contains("a CSV line longer than 64 KiB"), "{why}");
}

#[test]
fn a_json_entry_longer_than_the_limit_is_refused() {
    let long = "9".repeat(2 * MAX_JSON_ENTRY_BYTES as usize);
    let json = format!(r#"[{{"dateTime":"10/05/26 08:00:00","value":"{long}"}}]"#);
    let (refused, why) = reason(read_as(
        Kind::Scalar(Metric::Steps, 1.0),
        json.as_bytes(),
        10,
    ));
    assert!(refused);
    assert!(why.contains("a JSON entry longer than 1 MiB"), "{why}");
}

#[test]
fn json_that_is_not_an_array_or_not_json_says_so() {
    let steps = Kind::Scalar(Metric::Steps, 1.0);
    assert_eq!(
        reason(read_as(steps, br#"{"dateTime":"x"}"#, 10)),
        (false, "expected a JSON array of entries".into())
    );
    let (refused, why) = reason(read_as(steps, b"[{]", 10));
    assert!(!refused && why.starts_with("malformed JSON"), "{why}");
    let (_, why) = reason(read_as(steps, b"[] trailing", 10));
    assert!(why.starts_with("malformed JSON"), "{why}");
}

#[test]
fn a_sleep_segment_longer_than_a_day_is_not_expanded() {
    // A quintillion seconds would be 3e16 samples (or a panic, out of chrono's range).
    let json = br#"[{"levels":{"data":[{"dateTime":"2026-10-04T23:10:00.000","level":"light","seconds":1000000000000000000}]}}]"#;
    let (refused, why) = reason(read_as(Kind::Sleep, json, usize::MAX));
    assert!(!refused);
    assert!(why.contains("segments are at most a day"), "{why}");
    let json = br#"[{"levels":{"data":[{"dateTime":"2026-10-04T23:10:00.000","level":"light","seconds":86400}]}}]"#;
    assert_eq!(read_as(Kind::Sleep, json, usize::MAX).unwrap().len(), 2880);
}

#[test]
fn a_file_yielding_more_samples_than_the_limit_is_refused() {
    let json = br#"[{"levels":{"data":[{"dateTime":"2026-10-04T23:10:00.000","level":"light","seconds":86400}]}}]"#;
    let (refused, why) = reason(read_as(Kind::Sleep, json, 100));
    assert!(refused);
    assert!(why.contains("more than 100 samples"), "{why}");
    assert!(why.contains("--max-entry-samples"), "{why}");
}

#[test]
fn dates_at_the_end_of_chronos_range_are_refused_not_a_panic() {
    let json = br#"[{"levels":{"data":[{"dateTime":"+262142-12-31T23:59:59","level":"light","seconds":86400}]}}]"#;
    let (refused, why) = reason(read_as(Kind::Sleep, json, usize::MAX));
    assert!(!refused);
    assert!(why.starts_with("unreadable dateTime"), "{why}");
    let long = format!(r#"[{{"dateTime":"{}","value":1}}]"#, "7".repeat(10_000));
    let (_, why) = reason(read_as(
        Kind::Scalar(Metric::Steps, 1.0),
        long.as_bytes(),
        10,
    ));
    assert!(why.len() < 100, "{why}");
}
