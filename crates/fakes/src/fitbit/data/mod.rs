//! The fake's data endpoints. Everything is derived from the user id and the instant (or the
//! date) through a seeded generator, so the same period always reads the same, whichever
//! endpoint or time zone view asks; nothing exists after the tracker's last sync.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde_json::{Value, json};

mod intraday;
mod nightly;

use super::{FakeUser, Fault, RequestRecord, Shared, VISIT, error_body};
use intraday::{heart_summary, intraday};
use nightly::{br_day, hrv_day, nightly_range, sleep, spo2_day, temp_day};

type Outcome = Result<Value, (StatusCode, Value)>;

fn bad(error_type: &str, field: &str, msg: &str) -> (StatusCode, Value) {
    (
        StatusCode::BAD_REQUEST,
        error_body(error_type, Some(field), msg),
    )
}

/// Handles every data path.
pub(super) async fn handle(State(s): State<Arc<Shared>>, uri: Uri, headers: HeaderMap) -> Response {
    let latency = s.inner().api_latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let config = s.config();
    let now = s.now();
    let path = uri.path().to_owned();
    let query = uri.query().map(str::to_owned);
    let token = crate::token::bearer(&headers);
    let mut inner = s.inner();
    let grant = inner.grants.access.get(&token).cloned();
    let auth_error = match &grant {
        None => Some((
            "invalid_token",
            format!("Access token invalid: {token}. {VISIT}"),
        )),
        Some(g) if inner.grants.revoked.contains(&g.grant) => Some((
            "invalid_token",
            format!("Access token invalid: {token}. {VISIT}"),
        )),
        Some(g) if (now - g.issued).num_seconds() >= config.token_ttl_secs => Some((
            "expired_token",
            format!("Access token expired: {token}. {VISIT}"),
        )),
        Some(_) => None,
    };
    if let Some((error_type, message)) = auth_error {
        inner.log.push(RequestRecord {
            user_id: grant.map(|g| g.user),
            path,
            query,
            status: 401,
        });
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(error_body(error_type, None, &message)),
        )
            .into_response();
    }
    let grant = grant.expect("authorised");
    let user = inner.users.get(&grant.user).cloned().expect("known user");

    // The hourly quota: counted per user per clock hour, reported on every response.
    let hour = now.timestamp().div_euclid(3600);
    let count = inner
        .hour_counts
        .entry((user.user_id.clone(), hour))
        .or_default();
    *count += 1;
    let used = *count;
    let reset = (hour + 1) * 3600 - now.timestamp();
    let mut out_headers = HeaderMap::new();
    let mut set = |k: &'static str, v: String| {
        out_headers.insert(k, HeaderValue::from_str(&v).expect("header value"));
    };
    set("fitbit-rate-limit-limit", config.rate_limit.to_string());
    set(
        "fitbit-rate-limit-remaining",
        config.rate_limit.saturating_sub(used).to_string(),
    );
    set("fitbit-rate-limit-reset", reset.to_string());

    let mut cut = false;
    let (status, body) = if used > config.rate_limit {
        set("retry-after", reset.to_string());
        (
            StatusCode::TOO_MANY_REQUESTS,
            error_body("system", Some("n/a"), "Too Many Requests").to_string(),
        )
    } else {
        match inner.faults.pop_front() {
            Some(Fault::Status(code)) => (
                StatusCode::from_u16(code).expect("status"),
                error_body(
                    "request",
                    Some(&code.to_string()),
                    "An error occurred with the Fitbit Web API while processing the request. Error id: fake-0001",
                )
                .to_string(),
            ),
            Some(Fault::MalformedJson) => (StatusCode::OK, "{\"activities-heart\":[{\"dateTime\":".into()),
            Some(Fault::RateLimited { retry_after_secs }) => {
                set("retry-after", retry_after_secs.to_string());
                set("fitbit-rate-limit-remaining", "0".into());
                set("fitbit-rate-limit-reset", retry_after_secs.to_string());
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    error_body("system", Some("n/a"), "Too Many Requests").to_string(),
                )
            }
            fault => {
                // A night that is processing stays pending until its retryDuration has passed
                // since it was first asked for.
                let mut pending: BTreeSet<NaiveDate> = user.pending_sleep.iter().copied().collect();
                if path.contains("/sleep/") {
                    for d in &user.processing_sleep {
                        let since = *inner
                            .sleep_asked
                            .entry((user.user_id.clone(), *d))
                            .or_insert(now);
                        let retry = chrono::Duration::milliseconds(user.sleep_retry_ms as i64);
                        if now < since + retry {
                            pending.insert(*d);
                        }
                    }
                }
                let imperial = headers
                    .get("accept-language")
                    .and_then(|v| v.to_str().ok())
                    == Some("en_US");
                let ctx = Ctx {
                    user: &user,
                    scopes: &grant.scopes,
                    intraday: config.intraday_enabled,
                    utc: query.as_deref().is_some_and(|q| q.contains("timezone=UTC")),
                    imperial,
                    pending_sleep: &pending,
                    now,
                };
                let (status, body) = match route(&ctx, &path) {
                    Ok(v) => (StatusCode::OK, v.to_string()),
                    Err((status, v)) => (status, v.to_string()),
                };
                match fault {
                    Some(Fault::TruncatedBody) => (status, body[..body.len() / 2].to_owned()),
                    Some(Fault::ConnectionCut) => {
                        cut = true;
                        (status, body)
                    }
                    _ => (status, body),
                }
            }
        }
    };
    inner.log.push(RequestRecord {
        user_id: Some(user.user_id.clone()),
        path,
        query,
        status: status.as_u16(),
    });
    if cut {
        return crate::cut_off(status, "application/json", body);
    }
    out_headers.insert("content-type", HeaderValue::from_static("application/json"));
    (status, out_headers, body).into_response()
}

struct Ctx<'a> {
    user: &'a FakeUser,
    scopes: &'a [String],
    intraday: bool,
    utc: bool,
    imperial: bool,
    /// Dates of sleep still being processed at this request.
    pending_sleep: &'a BTreeSet<NaiveDate>,
    now: DateTime<Utc>,
}

impl Ctx<'_> {
    fn need(&self, scope: &str, what: &str) -> Result<(), (StatusCode, Value)> {
        if self.scopes.iter().any(|s| s == scope) {
            return Ok(());
        }
        Err((
            StatusCode::FORBIDDEN,
            error_body(
                "insufficient_scope",
                None,
                &format!(
                    "This application does not have permission to access {what} data. {VISIT}"
                ),
            ),
        ))
    }

    fn need_intraday(&self) -> Result<(), (StatusCode, Value)> {
        if self.intraday {
            return Ok(());
        }
        Err((
            StatusCode::FORBIDDEN,
            error_body(
                "insufficient_permissions",
                None,
                "API client is not authorized by Fitbit to access the resource requested. Please visit https://dev.fitbit.com/docs/oauth2 for more information on the Fitbit Web API authorization process.",
            ),
        ))
    }

    fn date(&self, raw: &str) -> Result<NaiveDate, (StatusCode, Value)> {
        if raw == "today" {
            return Ok(self.now.with_timezone(&self.user.timezone).date_naive());
        }
        raw.parse()
            .map_err(|_| bad("validation", "date", &format!("Invalid date: {raw}")))
    }

    fn range(
        &self,
        a: &str,
        b: &str,
        max_days: i64,
    ) -> Result<(NaiveDate, NaiveDate), (StatusCode, Value)> {
        let (a, b) = (self.date(a)?, self.date(b)?);
        if b < a {
            return Err(bad(
                "validation",
                "endDate",
                "Invalid date range: end date is before start date",
            ));
        }
        if (b - a).num_days() + 1 > max_days {
            return Err(bad(
                "validation",
                "endDate",
                &format!("The date range must not be bigger than {max_days} days."),
            ));
        }
        Ok((a, b))
    }

    fn cutoff(&self) -> DateTime<Utc> {
        self.user
            .last_sync_instant()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

fn route(c: &Ctx<'_>, path: &str) -> Outcome {
    if c.user
        .not_served
        .iter()
        .any(|p| path.starts_with(p.as_str()))
    {
        return Err(not_found());
    }
    let path = path.strip_suffix(".json").unwrap_or(path);
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (version, user, rest) = match segs.as_slice() {
        [v, "user", u, rest @ ..] => (*v, *u, rest),
        _ => return Err(not_found()),
    };
    if user != "-" && user != c.user.user_id {
        return Err((
            StatusCode::FORBIDDEN,
            error_body(
                "insufficient_permissions",
                None,
                "Access to another user's data is not allowed",
            ),
        ));
    }
    match (version, rest) {
        ("1", ["profile"]) => {
            c.need("profile", "profile")?;
            let tz = c.user.timezone;
            let offset = tz.offset_from_utc_datetime(&c.now.naive_utc());
            let millis = i64::from(chrono::Offset::fix(&offset).local_minus_utc()) * 1000;
            Ok(
                json!({"user": {"encodedId": c.user.user_id, "timezone": tz.name(),
                               "offsetFromUTCMillis": millis, "displayName": "Fake",
                               "memberSince": c.user.member_since.to_string()}}),
            )
        }
        ("1", ["devices"]) => {
            c.need("settings", "settings")?;
            Ok(devices(c))
        }
        ("1", ["activities", "heart", "date", a, b])
            if !b.ends_with("min") && !b.ends_with("sec") =>
        {
            c.need("heartrate", "heart rate")?;
            let (a, b) = c.range(a, b, 366)?;
            let days: Vec<Value> = a
                .iter_days()
                .take_while(|d| *d <= b)
                .filter_map(|d| heart_summary(c, d))
                .collect();
            Ok(json!({"activities-heart": days}))
        }
        ("1", ["activities", res, "date", d, "1d", level]) => intraday(c, res, d, level),
        ("1", ["activities", _, "date", a, b, _]) => {
            if a != b {
                return Err(bad(
                    "request",
                    "n/a",
                    "Time range should not be bigger than 24 hours.",
                ));
            }
            Err(not_found())
        }
        ("1", ["spo2", "date", d, "all"]) => {
            c.need("oxygen_saturation", "oxygen saturation")?;
            let d = c.date(d)?;
            Ok(spo2_day(c, d).unwrap_or_else(|| json!({"dateTime": d.to_string(), "minutes": []})))
        }
        ("1", ["spo2", "date", a, b, "all"]) => {
            c.need("oxygen_saturation", "oxygen saturation")?;
            let (a, b) = c.range(a, b, 30)?;
            Ok(Value::Array(
                a.iter_days()
                    .take_while(|d| *d <= b)
                    .filter_map(|d| spo2_day(c, d))
                    .collect(),
            ))
        }
        ("1", ["hrv", "date", d, "all"]) => {
            nightly_range(c, d, d, "heartrate", "heart rate", "hrv", hrv_day)
        }
        ("1", ["hrv", "date", a, b, "all"]) => {
            nightly_range(c, a, b, "heartrate", "heart rate", "hrv", hrv_day)
        }
        ("1", ["br", "date", d, "all"]) => {
            nightly_range(c, d, d, "respiratory_rate", "breathing rate", "br", br_day)
        }
        ("1", ["br", "date", a, b, "all"]) => {
            nightly_range(c, a, b, "respiratory_rate", "breathing rate", "br", br_day)
        }
        ("1", ["temp", "skin", "date", d]) => {
            nightly_range(c, d, d, "temperature", "temperature", "tempSkin", temp_day)
        }
        ("1", ["temp", "skin", "date", a, b]) => {
            nightly_range(c, a, b, "temperature", "temperature", "tempSkin", temp_day)
        }
        ("1.2", ["sleep", "date", d]) => sleep(c, d, d, true),
        ("1.2", ["sleep", "date", a, b]) => sleep(c, a, b, false),
        _ => Err(not_found()),
    }
}

fn not_found() -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        error_body(
            "not_found",
            None,
            "The API you are requesting could not be found.",
        ),
    )
}

fn devices(c: &Ctx<'_>) -> Value {
    let tz = c.user.timezone;
    let fmt = "%Y-%m-%dT%H:%M:%S%.3f";
    let mut list = vec![
        json!({"battery": "High", "batteryLevel": 90, "deviceVersion": "Aria Air",
        "features": [], "id": "3000000001", "mac": "00AABBCCDDEE", "type": "SCALE",
        // A scale syncs independently; its sync says nothing about wearable data.
        "lastSyncTime": c.now.with_timezone(&tz).format(fmt).to_string()}),
    ];
    if let Some(t) = c.user.last_sync {
        list.push(
            json!({"battery": "Medium", "batteryLevel": 55, "deviceVersion": "Charge 6",
            "features": [], "id": "2871043915", "mac": "A1B2C3D4E5F6", "type": "TRACKER",
            "lastSyncTime": t.format(fmt).to_string()}),
        );
    }
    Value::Array(list)
}
