//! The fake's `/v4` endpoints: authentication, the per-user minute quota, injected faults,
//! unlinked accounts, identity/settings/pairedDevices, `dataPoints` lists with filters and
//! Google's paging, and `dataPoints:rollUp` for `total-calories`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{Offset, TimeZone, Utc};
use serde_json::{Value, json};

mod pages;

use super::filter;
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
    let token = crate::token::bearer(&headers);
    let mut inner = s.inner();
    let grant = inner
        .grants
        .access
        .get(&token)
        .filter(|g| !inner.grants.revoked.contains(&g.grant))
        .filter(|g| (now - g.issued).num_seconds() < config.token_ttl_secs)
        .cloned();
    let user = grant
        .as_ref()
        .and_then(|g| inner.users.get(&g.user).cloned());
    let (mut retry_after, mut cut) = (None, false);
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
            } else {
                match inner.faults.pop_front() {
                    Some(GoogleFault::Status(code)) => Answer::err((
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
                    )),
                    Some(GoogleFault::MalformedJson) => Answer {
                        status: 200,
                        body: "{\"dataPoints\":[{\"heartRate\":".into(),
                        points: 0,
                        next_page: false,
                    },
                    Some(GoogleFault::RateLimited { retry_after_secs }) => {
                        retry_after = retry_after_secs;
                        Answer::err(quota_exceeded(&config))
                    }
                    fault => {
                        let scopes = grant.as_ref().map_or(&[][..], |g| &g.scopes[..]);
                        let mut answer = if !user.linked {
                            Answer::err(not_linked())
                        } else {
                            route(&config, user, scopes, &method, &path, &params, &body)
                        };
                        match fault {
                            Some(GoogleFault::TruncatedBody) => {
                                answer.body.truncate(answer.body.len() / 2);
                            }
                            Some(GoogleFault::ConnectionCut) => cut = true,
                            _ => {}
                        }
                        answer
                    }
                }
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
    let status = StatusCode::from_u16(answer.status).expect("status");
    let content_type = "application/json; charset=UTF-8";
    if cut {
        return crate::cut_off(status, content_type, answer.body);
    }
    let mut response = (status, [("content-type", content_type)], answer.body).into_response();
    if let Some(secs) = retry_after {
        response.headers_mut().insert(
            "retry-after",
            axum::http::HeaderValue::from_str(&secs.to_string()).expect("header value"),
        );
    }
    response
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

/// The scope a data type needs (Google's mapping of the Fitbit scopes).
fn scope_of(kebab: &str) -> &'static str {
    match kebab {
        "sleep" => "https://www.googleapis.com/auth/googlehealth.sleep.readonly",
        "steps" | "distance" | "active-zone-minutes" | "total-calories" | "floors" => {
            "https://www.googleapis.com/auth/googlehealth.activity_and_fitness.readonly"
        }
        _ => {
            "https://www.googleapis.com/auth/googlehealth.health_metrics_and_measurements.readonly"
        }
    }
}

fn scope_insufficient() -> (u16, String) {
    let details = json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT", "domain": "googleapis.com",
        "metadata": {"service": "health.googleapis.com", "method": "google.health.v4.DataPointService.ListDataPoints"}}]);
    (
        403,
        status_body(
            403,
            "PERMISSION_DENIED",
            "Request had insufficient authentication scopes.",
            details,
        ),
    )
}

fn route(
    config: &FakeGoogleConfig,
    user: &FakeGoogleUser,
    scopes: &[String],
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
            if !scopes.iter().any(|s| s == scope_of(t.kebab)) {
                return Answer::err(scope_insufficient());
            }
            if user.not_served.iter().any(|k| k == t.kebab) {
                return not_found();
            }
            match (method, op) {
                (&Method::GET, "") => pages::list(config, t, user, params),
                (&Method::POST, ":rollUp") => pages::roll_up(t, user, body),
                _ => not_found(),
            }
        }
    }
}
