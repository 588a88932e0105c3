//! Reading a series from CSV: `timestamp,value` rows on a regular grid, one row per
//! interval, with an empty value (or `NaN`/`NA`) where the value is missing. A header row is
//! recognised by its value column not being a number.

use std::io::Read;

/// A series as read: timestamps are kept verbatim and echoed back in the output.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    pub timestamps: Vec<String>,
    pub values: Vec<Option<f64>>,
}

/// Why a CSV could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SeriesError {
    #[error("reading the input failed")]
    Io(#[from] std::io::Error),
    #[error("line {line}: {message}")]
    Malformed { line: usize, message: String },
}

impl From<csv::Error> for SeriesError {
    fn from(e: csv::Error) -> Self {
        if e.is_io_error() {
            match e.into_kind() {
                csv::ErrorKind::Io(e) => return SeriesError::Io(e),
                _ => unreachable!("an I/O error"),
            }
        }
        // Invalid UTF-8, as reading lines of text reported it before.
        SeriesError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

fn is_missing(raw: &str) -> bool {
    matches!(raw, "" | "NaN" | "nan" | "NA" | "na" | "null")
}

/// Reads `timestamp,value` rows.
pub fn read_csv(reader: impl Read) -> Result<Series, SeriesError> {
    let mut rows = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(reader);
    let mut series = Series::default();
    for row in rows.records() {
        let row = row?;
        let line = row.position().map_or(0, |p| p.line() as usize);
        if row.len() == 1 && row[0].is_empty() {
            continue;
        }
        let malformed = |message: String| SeriesError::Malformed { line, message };
        let (Some(ts), Some(raw), 2) = (row.get(0), row.get(1), row.len()) else {
            if line == 1 && row.len() > 2 {
                continue; // a header with more columns
            }
            return Err(malformed(
                "expected two columns, timestamp,value".to_owned(),
            ));
        };
        let value = if is_missing(raw) {
            None
        } else {
            match raw.parse::<f64>() {
                Ok(v) if v.is_finite() => Some(v),
                _ if line == 1 => continue, // header
                _ => return Err(malformed(format!("value {raw:?} is not a number"))),
            }
        };
        series.timestamps.push(ts.to_owned());
        series.values.push(value);
    }
    Ok(series)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_is_skipped_and_empty_values_are_missing() {
        let csv = "timestamp,value\n2024-01-01T00:00:00Z,70\n2024-01-01T00:01:00Z,\n\
                   2024-01-01T00:02:00Z,NaN\n2024-01-01T00:03:00Z,72.5\n";
        let s = read_csv(csv.as_bytes()).unwrap();
        assert_eq!(s.values, vec![Some(70.0), None, None, Some(72.5)]);
        assert_eq!(s.timestamps[1], "2024-01-01T00:01:00Z");
    }

    #[test]
    fn quoted_fields_are_read_and_a_row_of_one_column_names_its_line() {
        let csv = "\"2024-01-01T00:00:00Z\",\"70\"\n  \n2024-01-01T00:01:00Z\n";
        let e = read_csv(csv.as_bytes()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 3: expected two columns, timestamp,value"
        );
        let s = read_csv("\"2024-01-01T00:00:00Z\",\"70\"\n".as_bytes()).unwrap();
        assert_eq!(s.timestamps, ["2024-01-01T00:00:00Z"]);
        assert_eq!(s.values, [Some(70.0)]);
    }

    #[test]
    fn a_bad_value_names_its_line() {
        let csv = "t,value\na,70\nb,seventy\n";
        let e = read_csv(csv.as_bytes()).unwrap_err();
        assert_eq!(e.to_string(), "line 3: value \"seventy\" is not a number");
    }
}
