//! The fake's `/v4` endpoints: authentication, the per-user minute quota, injected faults,
//! unlinked accounts, identity/settings/pairedDevices, `dataPoints` lists with filters and
//! Google's paging, and `dataPoints:rollUp` for `total-calories`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Offset, TimeZone, Utc};
use serde_json::{Value, json};

use super::filter::{self, DataType, FieldValue, Kind};
use super::points::{self, Point};
use super::{FakeGoogleConfig, FakeGoogleUser, GoogleFault, GoogleRequest, Shared, status_body};

/// An answer: status, JSON body, points carried, whether a next page exists.
struct Answer {
    status: u16,
    body: String,
    points: usize,
    next_page: bool,
}

impl Answer {
    fn ok(v: Value, points: usize) -> Self {
        let next_page = v.get("nextPageToken").is_some();
        Answer {
            status: 200,
            body: v.to_string(),
            points,
            next_page,
        }
    }
    fn err((status, body): (u16, String)) -> Self {
        Answer {
            status,
            body,
            points: 0,
            next_page: false,
        }
    }
}

fn invalid_argument(message: &str, reason: &str) -> (u16, String) {
    let details = json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                          "reason": reason, "domain": "health.googleapis.com"}]);
    (400, status_body(400, "INVALID_ARGUMENT", message, details))
}

/// Handles every `/v4` path.
pub(super) async fn handle(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let config = s.config();
    let now = s.now();
    let path = uri.path().to_owned();
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_owned();
    let mut inner = s.inner();
    let grant = inner
        .access
        .get(&token)
        .filter(|g| !inner.revoked.contains(&g.grant))
        .filter(|g| (now - g.issued).num_seconds() < config.token_ttl_secs)
        .cloned();
    let user = grant
        .as_ref()
        .and_then(|g| inner.users.get(&g.user).cloned());
    let answer = match &user {
        None => Answer::err((
            401,
            status_body(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
                json!([]),
            ),
        )),
        Some(user) => {
            let minute = now.timestamp().div_euclid(60);
            let count = inner
                .minute_counts
                .entry((user.health_user_id.clone(), minute))
                .or_default();
            *count += 1;
            if *count > config.requests_per_minute {
                Answer::err(quota_exceeded(&config))
            } else if let Some(GoogleFault::Status(code)) = inner.faults.pop_front() {
                Answer::err((
                    code,
                    status_body(
                        code,
                        if code == 503 {
                            "UNAVAILABLE"
                        } else {
                            "INTERNAL"
                        },
                        "The service is currently unavailable.",
                        json!([]),
                    ),
                ))
            } else if !user.linked {
                Answer::err(not_linked())
            } else {
                route(&config, user, &method, &path, &params, &body)
            }
        }
    };
    let mut logged = params;
    if method == Method::POST {
        logged.push(("body".into(), String::from_utf8_lossy(&body).into_owned()));
    }
    inner.log.push(GoogleRequest {
        user: user.map(|u| u.health_user_id),
        method: method.to_string(),
        path,
        params: logged,
        status: answer.status,
        points: answer.points,
        next_page: answer.next_page,
    });
    (
        StatusCode::from_u16(answer.status).expect("status"),
        [("content-type", "application/json; charset=UTF-8")],
        answer.body,
    )
        .into_response()
}

fn quota_exceeded(config: &FakeGoogleConfig) -> (u16, String) {
    let details = json!([
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED",
         "domain": "googleapis.com", "metadata": {"service": "health.googleapis.com",
         "quota_limit_value": config.requests_per_minute.to_string()}},
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
         "violations": [{"subject": "user", "description": "Requests per minute per user"}]}
    ]);
    (
        429,
        status_body(
            429,
            "RESOURCE_EXHAUSTED",
            "Quota exceeded for quota metric 'Requests' and limit 'Requests per minute per user' of service 'health.googleapis.com'.",
            details,
        ),
    )
}

fn not_linked() -> (u16, String) {
    let details = json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "ACCOUNT_NOT_LINKED", "domain": "health.googleapis.com"}]);
    (
        400,
        status_body(
            400,
            "FAILED_PRECONDITION",
            "The Google account is not linked to a Google Health profile.",
            details,
        ),
    )
}

fn route(
    config: &FakeGoogleConfig,
    user: &FakeGoogleUser,
    method: &Method,
    path: &str,
    params: &[(String, String)],
    body: &[u8],
) -> Answer {
    let not_found = || {
        Answer::err((
            404,
            status_body(
                404,
                "NOT_FOUND",
                "Requested entity was not found.",
                json!([]),
            ),
        ))
    };
    let Some(rest) = path.strip_prefix("/v4/users/") else {
        return not_found();
    };
    let Some((who, rest)) = rest.split_once('/') else {
        return not_found();
    };
    if who != "me" && who != user.health_user_id {
        return Answer::err((
            403,
            status_body(
                403,
                "PERMISSION_DENIED",
                "The caller does not have permission",
                json!([]),
            ),
        ));
    }
    let id = &user.health_user_id;
    match (method, rest) {
        (&Method::GET, "identity") => {
            let mut v = json!({"name": format!("users/{id}/identity"), "healthUserId": id});
            if let Some(l) = &user.legacy_user_id {
                v["legacyUserId"] = l.clone().into();
            }
            Answer::ok(v, 0)
        }
        (&Method::GET, "settings") => {
            let offset = user
                .timezone
                .offset_from_utc_datetime(&Utc::now().naive_utc())
                .fix()
                .local_minus_utc();
            Answer::ok(
                json!({"name": format!("users/{id}/settings"), "timeZone": user.timezone.name(), "utcOffset": format!("{offset}s")}),
                0,
            )
        }
        (&Method::GET, "pairedDevices") => match user.last_sync {
            None => Answer::ok(json!({}), 0),
            Some(t) => Answer::ok(
                json!({"pairedDevices": [{"name": format!("users/{id}/pairedDevices/1"), "displayName": "Charge 6",
                "lastSyncTime": t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}]}),
                0,
            ),
        },
        _ => {
            let Some(rest) = rest.strip_prefix("dataTypes/") else {
                return not_found();
            };
            let Some((kebab, op)) = rest.split_once("/dataPoints") else {
                return not_found();
            };
            let Some(t) = filter::data_type(kebab) else {
                return Answer::err(invalid_argument(
                    &format!("Invalid parent data type collection: unknown data type '{kebab}'."),
                    "INVALID_PARENT_DATA_TYPE_COLLECTION",
                ));
            };
            match (method, op) {
                (&Method::GET, "") => list(config, t, user, params),
                (&Method::POST, ":rollUp") => roll_up(t, user, body),
                _ => not_found(),
            }
        }
    }
}

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
    points::Rng::new(&parts.join("\u{1f}"), "page", 0).next()
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

fn list(
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
fn roll_up(t: &DataType, user: &FakeGoogleUser, body: &[u8]) -> Answer {
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
