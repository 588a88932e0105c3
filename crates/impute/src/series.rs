//! Reading a series from CSV: `timestamp,value` rows on a regular grid, one row per
//! interval, with an empty value (or `NaN`/`NA`) where the value is missing. A header row is
//! recognised by its value column not being a number.

use std::io::BufRead;

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

fn is_missing(raw: &str) -> bool {
    matches!(raw, "" | "NaN" | "nan" | "NA" | "na" | "null")
}

/// Reads `timestamp,value` rows.
pub fn read_csv(reader: impl BufRead) -> Result<Series, SeriesError> {
    let mut series = Series::default();
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        let number = i + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let Some((ts, raw)) = trimmed.split_once(',') else {
            return Err(SeriesError::Malformed {
                line: number,
                message: "expected two columns, timestamp,value".to_owned(),
            });
        };
        let (ts, raw) = (ts.trim(), raw.trim().trim_matches('"'));
        let value = if is_missing(raw) {
            None
        } else {
            match raw.parse::<f64>() {
                Ok(v) if v.is_finite() => Some(v),
                _ if series.timestamps.is_empty() && i == 0 => continue, // header
                _ => {
                    return Err(SeriesError::Malformed {
                        line: number,
                        message: format!("value {raw:?} is not a number"),
                    });
                }
            }
        };
        series.timestamps.push(ts.trim_matches('"').to_owned());
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
    fn a_bad_value_names_its_line() {
        let csv = "t,value\na,70\nb,seventy\n";
        let e = read_csv(csv.as_bytes()).unwrap_err();
        assert_eq!(e.to_string(), "line 3: value \"seventy\" is not a number");
    }
}
