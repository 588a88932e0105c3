//! `dataPoints` lists (filters, Google's page sizes, newest-first pages with opaque tokens)
//! and `dataPoints:rollUp`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::super::filter::{self, DataType, FieldValue, Kind};
use super::super::points::{self, Point};
use super::super::{FakeGoogleConfig, FakeGoogleUser};
use super::{Answer, invalid_argument};
use crate::rng::Rng;

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// An opaque page token: the offset and a fingerprint of the request it belongs to.
fn page_token(offset: usize, fingerprint: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{offset}:{fingerprint:x}"))
}

fn fingerprint(parts: &[&str]) -> u64 {
    Rng::new(&parts.join("\u{1f}"), "page", 0).next()
}

fn open_token(token: &str, fingerprint: u64) -> Result<usize, (u16, String)> {
    let bad = || {
        invalid_argument(
            "Invalid page token: the other parameters must match the call that produced it.",
            "INVALID_PAGE_TOKEN",
        )
    };
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (offset, fp) = raw.split_once(':').ok_or_else(bad)?;
    if fp != format!("{fingerprint:x}") {
        return Err(bad());
    }
    offset.parse().map_err(|_| bad())
}

/// Page size as Google applies it: the type's default when absent, truncated to its maximum.
fn page_size(t: &DataType, requested: Option<&str>) -> Result<usize, (u16, String)> {
    let (default, max) = match t.kebab {
        "sleep" => (25, 25),
        // Live, heart-rate without pageSize answered 50 per page.
        "heart-rate" => (50, 10_000),
        _ => (1440, 10_000),
    };
    match requested {
        None => Ok(default),
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if n < 0 => Err(invalid_argument(
                "page_size must not be negative",
                "INVALID_PAGE_SIZE",
            )),
            Ok(0) => Ok(default),
            Ok(n) => Ok((n as usize).min(max)),
            Err(_) => Err(invalid_argument(
                "Invalid value for page_size",
                "INVALID_PAGE_SIZE",
            )),
        },
    }
}

/// Bounds generation to the instants a filter can match (generating all time is not an
/// option); without bounds, the week before the last sync.
fn window(user: &FakeGoogleUser, f: &filter::Filter) -> (DateTime<Utc>, DateTime<Utc>) {
    let end = user.last_sync.unwrap_or_else(Utc::now);
    let (mut lo, mut hi) = (end - Duration::days(7), end);
    let instant = |v: &FieldValue| match v {
        FieldValue::Instant(t) => *t,
        FieldValue::Civil(c) => c.and_utc(),
        FieldValue::Date(d) => d.and_hms_opt(0, 0, 0).expect("midnight").and_utc(),
    };
    let clauses: Vec<_> = f.iter().flatten().collect();
    if let Some(l) = clauses
        .iter()
        .filter(|c| c.greater_equal)
        .map(|c| instant(&c.value))
        .min()
    {
        lo = l - Duration::days(2);
        hi = end;
    }
    if let Some(h) = clauses
        .iter()
        .filter(|c| !c.greater_equal)
        .map(|c| instant(&c.value))
        .max()
    {
        hi = h + Duration::days(2);
        if clauses.iter().all(|c| !c.greater_equal) {
            lo = hi - Duration::days(9);
        }
    }
    // At most 40 days per request, enough for any test and bounded in memory.
    (lo.max(hi - Duration::days(40)), hi)
}

pub(super) fn list(
    config: &FakeGoogleConfig,
    t: &DataType,
    user: &FakeGoogleUser,
    params: &[(String, String)],
) -> Answer {
    if t.kind == Kind::RollupOnly {
        return Answer::err(invalid_argument(
            &format!(
                "Data type '{}' does not support list; use rollUp or dailyRollUp.",
                t.kebab
            ),
            "INVALID_PARENT_DATA_TYPE_COLLECTION",
        ));
    }
    let raw_filter = param(params, "filter").unwrap_or("");
    let parsed = if raw_filter.trim().is_empty() {
        Vec::new()
    } else {
        match filter::parse(t, raw_filter) {
            Ok(f) => f,
            Err(e) => return Answer::err(e),
        }
    };
    let size = match page_size(t, param(params, "pageSize")) {
        Ok(n) => n,
        Err(e) => return Answer::err(e),
    };
    let fp = fingerprint(&[t.kebab, raw_filter, param(params, "pageSize").unwrap_or("")]);
    let (lo, hi) = window(user, &parsed);
    let mut matching: Vec<Point> = points::generate(t, user, lo, hi)
        .into_iter()
        .filter(|p| {
            parsed.is_empty()
                || parsed
                    .iter()
                    .any(|all| all.iter().all(|c| c.holds(p.field(c.field))))
        })
        .collect();
    // Newest first.
    matching.sort_by_key(|p| std::cmp::Reverse(p.start));
    let offset = match param(params, "pageToken").filter(|t| !t.is_empty()) {
        None if config.empty_first_page => {
            return Answer::ok(json!({"nextPageToken": page_token(0, fp)}), 0);
        }
        None => 0,
        Some(tok) => match open_token(tok, fp) {
            Ok(o) => o,
            Err(e) => return Answer::err(e),
        },
    };
    if offset >= matching.len() {
        // proto3 leaves out the empty list and the empty token: the page is `{}`.
        return Answer::ok(json!({}), 0);
    }
    let page: Vec<Value> = matching[offset..]
        .iter()
        .take(size)
        .map(|p| p.json.clone())
        .collect();
    let n = page.len();
    let mut v = json!({"dataPoints": page});
    let next = offset + n;
    if next < matching.len() || config.empty_object_last_page {
        v["nextPageToken"] = page_token(next, fp).into();
    }
    Answer::ok(v, n)
}

/// `dataPoints:rollUp` for `total-calories`: physical-time windows, newest first, at most
/// 14 days, the start aligned with the window.
pub(super) fn roll_up(t: &DataType, user: &FakeGoogleUser, body: &[u8]) -> Answer {
    if t.kebab != "total-calories" {
        return Answer::err(invalid_argument(
            &format!(
                "The fake serves rollUp only for total-calories, not '{}'.",
                t.kebab
            ),
            "INVALID_PARENT_DATA_TYPE_COLLECTION",
        ));
    }
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return Answer::err(invalid_argument(
            "Invalid JSON payload received.",
            "INVALID_ARGUMENT",
        ));
    };
    let time = |k: &str| {
        req["range"][k]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let (Some(start), Some(end)) = (time("startTime"), time("endTime")) else {
        return Answer::err(invalid_argument(
            "range.startTime and range.endTime are required RFC 3339 instants.",
            "INVALID_TIME_RANGE",
        ));
    };
    let window = req["windowSize"]
        .as_str()
        .and_then(|w| w.strip_suffix('s'))
        .and_then(|w| w.parse::<i64>().ok())
        .unwrap_or(0);
    if window < 60 || window % 60 != 0 {
        return Answer::err(invalid_argument(
            "windowSize must be a whole number of minutes.",
            "INVALID_WINDOW_SIZE",
        ));
    }
    if end <= start || end - start > Duration::days(14) {
        return Answer::err(invalid_argument(
            "The range must be positive and at most 14 days for total-calories.",
            "INVALID_TIME_RANGE",
        ));
    }
    if start.timestamp() % window != 0 {
        return Answer::err(invalid_argument(
            "range.startTime must line up with windowSize.",
            "INVALID_TIME_RANGE",
        ));
    }
    let size = req["pageSize"]
        .as_u64()
        .filter(|n| *n > 0)
        .unwrap_or(1440)
        .min(10_000) as usize;
    let fp = fingerprint(&[
        &start.to_rfc3339(),
        &end.to_rfc3339(),
        &window.to_string(),
        &size.to_string(),
    ]);
    let offset = match req["pageToken"].as_str().filter(|t| !t.is_empty()) {
        None => 0,
        Some(tok) => match open_token(tok, fp) {
            Ok(o) => o,
            Err(e) => return Answer::err(e),
        },
    };
    let last = end.min(user.last_sync.unwrap_or(start));
    let mut buckets = Vec::new();
    let mut at = start;
    while at + Duration::seconds(window) <= last {
        let stop = at + Duration::seconds(window);
        let mut kcal: f64 = 0.0;
        let mut m = at;
        while m < stop {
            kcal += points::kcal(user, m);
            m += Duration::minutes(1);
        }
        buckets.push((at, stop, (kcal * 100.0).round() / 100.0));
        at = stop;
    }
    buckets.reverse();
    let page: Vec<Value> = buckets
        .iter()
        .skip(offset)
        .take(size)
        .map(|(a, b, k)| {
            json!({
        "startTime": a.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "endTime": b.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "totalCalories": {"kcalSum": k}})
        })
        .collect();
    let n = page.len();
    let mut v = if n == 0 {
        json!({})
    } else {
        json!({"rollupDataPoints": page})
    };
    if offset + n < buckets.len() {
        v["nextPageToken"] = page_token(offset + n, fp).into();
    }
    Answer::ok(v, n)
}
