//! The fake's data types and their AIP-160 filters: which members each record type accepts
//! (as observed live: sample types only `sample_time.physical_time`, sleep only the end time,
//! daily types only `date`), value formats, and the exact 400 bodies for what is refused.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::json;

/// How a data type records time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Sample,
    Interval,
    Daily,
    Sleep,
    /// Served only by the rollup methods.
    RollupOnly,
}

/// A data type the fake serves: kebab id, snake filter prefix, JSON key, kind.
pub(super) struct DataType {
    pub kebab: &'static str,
    pub snake: &'static str,
    pub key: &'static str,
    pub kind: Kind,
}

const fn t(kebab: &'static str, snake: &'static str, key: &'static str, kind: Kind) -> DataType {
    DataType {
        kebab,
        snake,
        key,
        kind,
    }
}

pub(super) const TYPES: [DataType; 11] = [
    t("heart-rate", "heart_rate", "heartRate", Kind::Sample),
    t(
        "oxygen-saturation",
        "oxygen_saturation",
        "oxygenSaturation",
        Kind::Sample,
    ),
    t("steps", "steps", "steps", Kind::Interval),
    t("distance", "distance", "distance", Kind::Interval),
    t(
        "active-zone-minutes",
        "active_zone_minutes",
        "activeZoneMinutes",
        Kind::Interval,
    ),
    t("sleep", "sleep", "sleep", Kind::Sleep),
    t(
        "daily-resting-heart-rate",
        "daily_resting_heart_rate",
        "dailyRestingHeartRate",
        Kind::Daily,
    ),
    t(
        "daily-heart-rate-variability",
        "daily_heart_rate_variability",
        "dailyHeartRateVariability",
        Kind::Daily,
    ),
    t(
        "daily-respiratory-rate",
        "daily_respiratory_rate",
        "dailyRespiratoryRate",
        Kind::Daily,
    ),
    t(
        "total-calories",
        "total_calories",
        "totalCalories",
        Kind::RollupOnly,
    ),
    t("floors", "floors", "floors", Kind::RollupOnly),
];

pub(super) fn data_type(kebab: &str) -> Option<&'static DataType> {
    TYPES.iter().find(|t| t.kebab == kebab)
}

/// A comparable value of a point's filter field.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub(super) enum FieldValue {
    Instant(DateTime<Utc>),
    Civil(NaiveDateTime),
    Date(NaiveDate),
}

/// Which time of a point a member refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    Start,
    CivilStart,
    End,
    CivilEnd,
    Date,
}

/// One `member op literal` comparison.
#[derive(Debug, Clone)]
pub(super) struct Clause {
    pub field: Field,
    pub greater_equal: bool,
    pub value: FieldValue,
}

/// A parsed filter: alternatives (OR) of conjunctions (AND).
pub(super) type Filter = Vec<Vec<Clause>>;

impl Clause {
    pub fn holds(&self, v: FieldValue) -> bool {
        match v.partial_cmp(&self.value) {
            Some(o) if self.greater_equal => o.is_ge(),
            Some(o) => o.is_lt(),
            None => false,
        }
    }
}

fn members(t: &DataType) -> Vec<(String, Field)> {
    let p = t.snake;
    match t.kind {
        Kind::Sample => vec![(format!("{p}.sample_time.physical_time"), Field::Start)],
        Kind::Interval => vec![
            (format!("{p}.interval.start_time"), Field::Start),
            (format!("{p}.interval.civil_start_time"), Field::CivilStart),
        ],
        Kind::Daily => vec![(format!("{p}.date"), Field::Date)],
        Kind::Sleep => vec![
            (format!("{p}.interval.end_time"), Field::End),
            (format!("{p}.interval.civil_end_time"), Field::CivilEnd),
        ],
        Kind::RollupOnly => vec![],
    }
}

/// The 400 answer to a refused filter, as Google words it.
pub(super) fn filter_error(detailed: &str, description: &str) -> (u16, String) {
    let details = json!([
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo",
         "reason": "INVALID_DATA_POINT_FILTER",
         "domain": "health.googleapis.com",
         "metadata": {"detailedReasons": detailed}},
        {"@type": "type.googleapis.com/google.rpc.BadRequest",
         "fieldViolations": [{"field": "filter", "description": description}]}
    ]);
    (
        400,
        super::status_body(
            400,
            "INVALID_ARGUMENT",
            &format!("Invalid data point filter: {detailed}"),
            details,
        ),
    )
}

/// Parses `filter` for data type `t`.
pub(super) fn parse(t: &DataType, filter: &str) -> Result<Filter, (u16, String)> {
    let allowed = members(t);
    let mut out = Vec::new();
    let mut offset = 0;
    let or_allowed = t.kind == Kind::Sleep;
    let alternatives: Vec<&str> = filter.split(" OR ").collect();
    if alternatives.len() > 1 && !or_allowed {
        return Err(filter_error(
            "INVALID_DATA_POINT_FILTER_SYNTAX",
            "OR is not supported for this data type. (at line 1, column 1)",
        ));
    }
    for alternative in alternatives {
        let mut conjunction = Vec::new();
        for clause in alternative.split(" AND ") {
            let column = filter[offset..]
                .find(clause.trim())
                .map_or(offset, |i| offset + i)
                + 1;
            offset = column - 1 + clause.trim().len();
            let mut parts = clause.split_whitespace();
            let (Some(member), Some(op), Some(literal), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(filter_error(
                    "INVALID_DATA_POINT_FILTER_SYNTAX",
                    &format!("Syntax error in {clause:?}. (at line 1, column {column})"),
                ));
            };
            let Some((_, field)) = allowed.iter().find(|(m, _)| m == member) else {
                return Err(filter_error(
                    "INVALID_DATA_POINT_FILTER_DATA_TYPE_MEMBER",
                    &format!(
                        "Member '{member}' is not supported for filtering. (at line 1, column {column})"
                    ),
                ));
            };
            let greater_equal = match op {
                ">=" => true,
                "<" => false,
                _ => {
                    return Err(filter_error(
                        "INVALID_DATA_POINT_FILTER_SYNTAX",
                        &format!(
                            "Operator '{op}' is not supported; use >= or <. (at line 1, column {column})"
                        ),
                    ));
                }
            };
            let raw = literal.trim_matches('"');
            let value = match field {
                Field::Start | Field::End => DateTime::parse_from_rfc3339(raw)
                    .ok()
                    .map(|t| FieldValue::Instant(t.with_timezone(&Utc))),
                Field::CivilStart | Field::CivilEnd => {
                    NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S")
                        .ok()
                        .or_else(|| {
                            NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                                .ok()
                                .and_then(|d| d.and_hms_opt(0, 0, 0))
                        })
                        .map(FieldValue::Civil)
                }
                Field::Date => NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                    .ok()
                    .map(FieldValue::Date),
            };
            let Some(value) = value else {
                return Err(filter_error(
                    "INVALID_DATA_POINT_FILTER_SYNTAX",
                    &format!(
                        "Invalid value {literal} for member '{member}'. (at line 1, column {column})"
                    ),
                ));
            };
            conjunction.push(Clause {
                field: *field,
                greater_equal,
                value,
            });
        }
        out.push(conjunction);
    }
    Ok(out)
}
