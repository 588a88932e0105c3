//! The fake's data endpoints. Everything is derived from the user id and the instant (or the
//! date) through a seeded generator, so the same period always reads the same, whichever
//! endpoint or time zone view asks; nothing exists after the tracker's last sync.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, Days, Duration, NaiveDate, TimeZone, Timelike, Utc};
use serde_json::{Value, json};

use super::{AzmShape, FakeUser, Fault, RequestRecord, Shared, VISIT, error_body};
use crate::sources::fitbit::localtime::day_start;

/// splitmix64 seeded from an FNV-1a hash of (user, tag, key).
struct Rng(u64);

impl Rng {
    fn new(user: &str, tag: &str, key: i64) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in user.bytes().chain(tag.bytes()).chain(key.to_le_bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        Rng(h)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> i64 {
        (self.next() % n) as i64
    }
}

type Outcome = Result<Value, (StatusCode, Value)>;

fn bad(error_type: &str, field: &str, msg: &str) -> (StatusCode, Value) {
    (
        StatusCode::BAD_REQUEST,
        error_body(error_type, Some(field), msg),
    )
}

/// Handles every data path.
pub(super) async fn handle(State(s): State<Arc<Shared>>, uri: Uri, headers: HeaderMap) -> Response {
    let config = s.config();
    let now = s.now();
    let path = uri.path().to_owned();
    let query = uri.query().map(str::to_owned);
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_owned();
    let mut inner = s.inner();
    let grant = inner.access.get(&token).cloned();
    let auth_error = match &grant {
        None => Some((
            "invalid_token",
            format!("Access token invalid: {token}. {VISIT}"),
        )),
        Some(g) if inner.revoked_grants.contains(&g.grant) => Some((
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
            user_id: grant.map(|g| g.user_id),
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
    let user = inner
        .users
        .get(&grant.user_id)
        .cloned()
        .expect("known user");

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
            None => {
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
                    now,
                };
                match route(&ctx, &path) {
                    Ok(v) => (StatusCode::OK, v.to_string()),
                    Err((status, v)) => (status, v.to_string()),
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
    out_headers.insert("content-type", HeaderValue::from_static("application/json"));
    (status, out_headers, body).into_response()
}

struct Ctx<'a> {
    user: &'a FakeUser,
    scopes: &'a [String],
    intraday: bool,
    utc: bool,
    imperial: bool,
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
                               "offsetFromUTCMillis": millis, "displayName": "Fake"}}),
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

// ---- intraday ------------------------------------------------------------------------

fn local_hour(c: &Ctx<'_>, t: i64) -> u32 {
    Utc.timestamp_opt(t, 0)
        .unwrap()
        .with_timezone(&c.user.timezone)
        .hour()
}

fn steps_at(c: &Ctx<'_>, minute: i64) -> i64 {
    let mut r = Rng::new(&c.user.user_id, "steps", minute);
    let h = local_hour(c, minute * 60);
    if (7..22).contains(&h) && r.below(10) < 3 {
        60 + r.below(60)
    } else {
        0
    }
}

/// Sparse heart-rate readings in `[from, to)`: every 5–15 s, except whole hours off the wrist.
fn heart_seconds(c: &Ctx<'_>, from: i64, to: i64) -> Vec<(i64, i64)> {
    let cutoff = c.cutoff().timestamp();
    let mut out = Vec::new();
    for hour in from.div_euclid(3600)..=(to - 1).div_euclid(3600) {
        let mut r = Rng::new(&c.user.user_id, "hr", hour);
        if r.below(24) == 0 {
            continue;
        }
        let h = f64::from(local_hour(c, hour * 3600));
        let base = 64.0 + 8.0 * ((h - 16.0) / 24.0 * std::f64::consts::TAU).cos();
        let mut t = hour * 3600 + r.below(5);
        while t < (hour + 1) * 3600 {
            if t >= from && t < to && t < cutoff {
                let active = if steps_at(c, t.div_euclid(60)) > 0 {
                    30.0
                } else {
                    0.0
                };
                out.push((t, (base + active) as i64 + r.below(7)));
            }
            t += 5 + r.below(11);
        }
    }
    out
}

fn heart_summary(c: &Ctx<'_>, d: NaiveDate) -> Option<Value> {
    if day_start(c.user.timezone, d) >= c.cutoff() {
        return None;
    }
    let mut r = Rng::new(&c.user.user_id, "rhr", i64::from(d.num_days_from_ce()));
    let mut value = json!({"customHeartRateZones": [], "heartRateZones": [
        {"name": "Out of Range", "min": 30, "max": 98, "minutes": 1180, "caloriesOut": 1510.4},
        {"name": "Fat Burn", "min": 98, "max": 125, "minutes": 210, "caloriesOut": 780.1},
        {"name": "Cardio", "min": 125, "max": 152, "minutes": 12, "caloriesOut": 95.3},
        {"name": "Peak", "min": 152, "max": 220, "minutes": 0, "caloriesOut": 0}]});
    // Some days have too little data for a resting heart rate; Fitbit then omits the field.
    if r.below(5) != 0 {
        value["restingHeartRate"] = json!(52 + r.below(12));
    }
    Some(json!({"dateTime": d.to_string(), "value": value}))
}

fn intraday(c: &Ctx<'_>, res: &str, d: &str, level: &str) -> Outcome {
    let (scope, what) = if res == "heart" {
        ("heartrate", "heart rate")
    } else {
        ("activity", "activity")
    };
    c.need(scope, what)?;
    c.need_intraday()?;
    let d = c.date(d)?;
    let tz = c.user.timezone;
    let (from, to) = if c.utc {
        (
            d.and_hms_opt(0, 0, 0).unwrap().and_utc(),
            (d + Days::new(1)).and_hms_opt(0, 0, 0).unwrap().and_utc(),
        )
    } else {
        (day_start(tz, d), day_start(tz, d + Days::new(1)))
    };
    let label = |t: i64| {
        let t = Utc.timestamp_opt(t, 0).unwrap();
        if c.utc {
            t.format("%H:%M:%S").to_string()
        } else {
            t.with_timezone(&tz).format("%H:%M:%S").to_string()
        }
    };
    let (from, to) = (from.timestamp(), to.timestamp());
    let cutoff = c.cutoff().timestamp();
    let minutes = (from / 60..to / 60).filter(|m| m * 60 < cutoff);
    let date = d.to_string();
    match (res, level) {
        ("heart", "1sec" | "1min") => {
            let secs = heart_seconds(c, from, to);
            let dataset: Vec<Value> = if level == "1sec" {
                secs.iter()
                    .map(|(t, v)| json!({"time": label(*t), "value": v}))
                    .collect()
            } else {
                let mut per_minute: std::collections::BTreeMap<i64, (i64, i64)> =
                    Default::default();
                for (t, v) in &secs {
                    let e = per_minute.entry(t.div_euclid(60)).or_default();
                    e.0 += v;
                    e.1 += 1;
                }
                per_minute
                    .into_iter()
                    .map(|(m, (sum, n))| json!({"time": label(m * 60), "value": sum / n}))
                    .collect()
            };
            let (interval_type, summary) = (
                if level == "1sec" { "second" } else { "minute" },
                heart_summary(c, d),
            );
            Ok(
                json!({"activities-heart": summary.into_iter().collect::<Vec<_>>(),
                      "activities-heart-intraday": {"dataset": dataset, "datasetInterval": 1, "datasetType": interval_type}}),
            )
        }
        ("steps" | "calories" | "distance" | "floors", "1min") => {
            let mut total = 0.0;
            let dataset: Vec<Value> = minutes
                .map(|m| {
                    let steps = steps_at(c, m);
                    let (value, extra) = match res {
                        "steps" => (json!(steps), None),
                        "calories" => {
                            let kcal = 1.2 + steps as f64 * 0.05;
                            let level = if steps > 100 {
                                3
                            } else if steps > 0 {
                                1
                            } else {
                                0
                            };
                            (json!(kcal), Some((level, if steps > 0 { 35 } else { 12 })))
                        }
                        "distance" => {
                            let km = steps as f64 * 0.000_75;
                            (json!(if c.imperial { km / 1.609_344 } else { km }), None)
                        }
                        _ => (json!(i64::from(steps > 100 && m % 3 == 0)), None),
                    };
                    total += value.as_f64().unwrap_or(0.0);
                    let mut item = json!({"time": label(m * 60), "value": value});
                    if let Some((level, mets)) = extra {
                        item["level"] = json!(level);
                        item["mets"] = json!(mets);
                    }
                    item
                })
                .collect();
            Ok(json!({
                format!("activities-{res}"): [{"dateTime": date, "value": format!("{total}")}],
                format!("activities-{res}-intraday"): {"dataset": dataset, "datasetInterval": 1, "datasetType": "minute"},
            }))
        }
        ("active-zone-minutes", "1min") => {
            let active: Vec<(i64, i64)> = minutes
                .filter_map(|m| {
                    let steps = steps_at(c, m);
                    (steps > 80).then_some((m, if steps > 100 { 2 } else { 1 }))
                })
                .collect();
            let body = match c.user.azm_shape {
                AzmShape::Minutes => {
                    let minutes: Vec<Value> = active
                        .iter()
                        .map(|(m, v)| {
                            let t = Utc.timestamp_opt(m * 60, 0).unwrap();
                            let t = if c.utc {
                                t.naive_utc()
                            } else {
                                t.with_timezone(&tz).naive_local()
                            };
                            let zone = if *v == 2 {
                                "cardioActiveZoneMinutes"
                            } else {
                                "fatBurnActiveZoneMinutes"
                            };
                            json!({"minute": t.format("%Y-%m-%dT%H:%M:%S").to_string(),
                               "value": {"activeZoneMinutes": v, zone: v}})
                        })
                        .collect();
                    json!([{"dateTime": date, "minutes": minutes}])
                }
                AzmShape::Dataset => {
                    let dataset: Vec<Value> = active
                        .iter()
                        .map(|(m, v)| json!({"time": label(m * 60), "value": v}))
                        .collect();
                    json!({"dataset": dataset, "datasetInterval": 1, "datasetType": "minute"})
                }
            };
            Ok(json!({"activities-active-zone-minutes-intraday": body}))
        }
        _ => Err(bad(
            "validation",
            "detail-level",
            &format!("Invalid detail level {level} for {res}"),
        )),
    }
}

// ---- sleep and nightly data -------------------------------------------------------------

struct Night {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    classic: bool,
    segments: Vec<(DateTime<Utc>, &'static str, i64)>,
    short: Vec<(DateTime<Utc>, &'static str, i64)>,
}

/// The main sleep that ends on local date `d`, if the tracker has synced it.
fn night(c: &Ctx<'_>, d: NaiveDate) -> Option<Night> {
    let mut r = Rng::new(&c.user.user_id, "sleep", i64::from(d.num_days_from_ce()));
    let tz = c.user.timezone;
    let local = (d - Days::new(1)).and_hms_opt(22, 30, 0)?
        + Duration::seconds(60 * r.below(90) + 30 * r.below(2));
    let start = crate::sources::fitbit::localtime::to_utc(tz, local, None);
    let classic = r.below(4) == 0;
    let mut segments = Vec::new();
    let mut short = Vec::new();
    let mut t = start;
    let push = |segments: &mut Vec<_>, t: &mut DateTime<Utc>, level: &'static str, secs: i64| {
        segments.push((*t, level, secs));
        *t += Duration::seconds(secs);
    };
    push(
        &mut segments,
        &mut t,
        if classic { "awake" } else { "wake" },
        30 * (4 + r.below(8)),
    );
    let cycle: [&str; 4] = if classic {
        ["asleep", "restless", "asleep", "asleep"]
    } else {
        ["light", "deep", "light", "rem"]
    };
    let mut i = 0;
    while t - start < Duration::hours(7) {
        let level = cycle[i % 4];
        let secs = 30 * (20 + r.below(60));
        if level == "light" && !classic && short.len() < 3 {
            short.push((t + Duration::seconds(300), "wake", 30 * (1 + r.below(6))));
        }
        push(&mut segments, &mut t, level, secs);
        i += 1;
    }
    push(
        &mut segments,
        &mut t,
        if classic { "awake" } else { "wake" },
        180,
    );
    (t <= c.cutoff()).then_some(Night {
        start,
        end: t,
        classic,
        segments,
        short,
    })
}

fn local_fmt(c: &Ctx<'_>, t: DateTime<Utc>, fmt: &str) -> String {
    t.with_timezone(&c.user.timezone).format(fmt).to_string()
}

fn sleep(c: &Ctx<'_>, a: &str, b: &str, by_date: bool) -> Outcome {
    c.need("sleep", "sleep")?;
    let (a, b) = c.range(a, b, 100)?;
    let mut logs = Vec::new();
    let mut pending = false;
    for d in a.iter_days().take_while(|d| *d <= b) {
        if c.user.pending_sleep.contains(&d) {
            pending = true;
            continue;
        }
        let Some(n) = night(c, d) else { continue };
        let f = "%Y-%m-%dT%H:%M:%S%.3f";
        let level = |(t, l, s): &(DateTime<Utc>, &str, i64)| json!({"dateTime": local_fmt(c, *t, f), "level": l, "seconds": s});
        let mut minutes: std::collections::BTreeMap<&str, (i64, i64)> = Default::default();
        for (_, l, s) in &n.segments {
            let e = minutes.entry(l).or_default();
            e.0 += 1;
            e.1 += s / 60;
        }
        let awake = if n.classic { "awake" } else { "wake" };
        let summary: serde_json::Map<String, Value> = minutes
            .iter()
            .map(|(l, (count, mins))| {
                let mut v = json!({"count": count, "minutes": mins});
                if !n.classic {
                    v["thirtyDayAvgMinutes"] = json!(mins);
                }
                (l.to_string(), v)
            })
            .collect();
        let in_bed = (n.end - n.start).num_minutes();
        let awake_min = minutes.get(awake).map_or(0, |m| m.1);
        let mut levels =
            json!({"data": n.segments.iter().map(level).collect::<Vec<_>>(), "summary": summary});
        if !n.classic {
            levels["shortData"] = n.short.iter().map(level).collect();
        }
        logs.push(json!({"logId": 40_000_000_000i64 + i64::from(d.num_days_from_ce()), "dateOfSleep": d.to_string(),
            "startTime": local_fmt(c, n.start, f), "endTime": local_fmt(c, n.end, f),
            "duration": (n.end - n.start).num_milliseconds(), "efficiency": 92, "infoCode": 0, "isMainSleep": true,
            "logType": "auto_detected", "type": if n.classic { "classic" } else { "stages" },
            "minutesAsleep": in_bed - awake_min, "minutesAwake": awake_min, "minutesToFallAsleep": 0,
            "minutesAfterWakeup": 0, "timeInBed": in_bed, "levels": levels}));
    }
    let mut body = json!({"sleep": logs});
    if by_date {
        body["summary"] =
            json!({"totalSleepRecords": body["sleep"].as_array().map_or(0, Vec::len)});
    }
    if pending {
        body["meta"] = json!({"state": "pending", "retryDuration": 30000});
    }
    Ok(body)
}

fn spo2_day(c: &Ctx<'_>, d: NaiveDate) -> Option<Value> {
    let n = night(c, d)?;
    let mut r = Rng::new(&c.user.user_id, "spo2", i64::from(d.num_days_from_ce()));
    let mut t = n.start + Duration::minutes(30);
    let mut minutes = Vec::new();
    while t < n.end - Duration::minutes(30) {
        minutes.push(json!({"value": 94.0 + r.below(50) as f64 / 10.0, "minute": local_fmt(c, t, "%Y-%m-%dT%H:%M:%S")}));
        t += Duration::minutes(1);
    }
    Some(json!({"dateTime": d.to_string(), "minutes": minutes}))
}

fn hrv_day(c: &Ctx<'_>, d: NaiveDate) -> Option<Value> {
    let n = night(c, d)?;
    let mut r = Rng::new(&c.user.user_id, "hrv", i64::from(d.num_days_from_ce()));
    let mut t = n.start + Duration::minutes(15);
    let mut minutes = Vec::new();
    while t < n.end {
        minutes.push(json!({"minute": local_fmt(c, t, "%Y-%m-%dT%H:%M:%S%.3f"),
            "value": {"rmssd": 20.0 + r.below(400) as f64 / 10.0, "coverage": 0.9, "hf": 150.0, "lf": 400.0}}));
        t += Duration::minutes(5);
    }
    Some(json!({"dateTime": d.to_string(), "minutes": minutes}))
}

fn br_day(c: &Ctx<'_>, d: NaiveDate) -> Option<Value> {
    night(c, d)?;
    let mut r = Rng::new(&c.user.user_id, "br", i64::from(d.num_days_from_ce()));
    let full = 12.0 + r.below(50) as f64 / 10.0;
    Some(json!({"dateTime": d.to_string(), "value": {
        "deepSleepSummary": {"breathingRate": full - 0.8}, "remSleepSummary": {"breathingRate": full + 0.6},
        "lightSleepSummary": {"breathingRate": full}, "fullSleepSummary": {"breathingRate": full}}}))
}

fn temp_day(c: &Ctx<'_>, d: NaiveDate) -> Option<Value> {
    night(c, d)?;
    let mut r = Rng::new(&c.user.user_id, "temp", i64::from(d.num_days_from_ce()));
    Some(
        json!({"dateTime": d.to_string(), "value": {"nightlyRelative": (r.below(21) - 10) as f64 / 10.0},
                "logType": "dedicated_temp_sensor"}),
    )
}

#[allow(clippy::too_many_arguments)]
fn nightly_range(
    c: &Ctx<'_>,
    a: &str,
    b: &str,
    scope: &str,
    what: &str,
    key: &str,
    day: fn(&Ctx<'_>, NaiveDate) -> Option<Value>,
) -> Outcome {
    c.need(scope, what)?;
    let (a, b) = c.range(a, b, 30)?;
    let days: Vec<Value> = a
        .iter_days()
        .take_while(|d| *d <= b)
        .filter_map(|d| day(c, d))
        .collect();
    Ok(json!({key: days}))
}
