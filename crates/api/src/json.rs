//! JSON request bodies whose failures name the field at fault. Axum's `Json<T>` rejects with
//! plain text and a 422 that does not say which field was wrong; [`JsonBody`] answers the API's
//! usual 400 `invalid_parameter` naming the field (`body` when the JSON itself is unreadable),
//! 400 naming the field that holds a NUL character (which PostgreSQL cannot store in text),
//! 413 for a body over the route's limit, and 415 for a `Content-Type` other than JSON. A
//! body without `Content-Type` is read as JSON, as scripts often send it.

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;
use crate::extract::{Body, NUL_MESSAGE};

/// Whether the `Content-Type` is `application/json` or a `+json` type.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .is_some_and(|m| {
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
}

/// The path (`contact.email`, `items[2]`) of the first string or key in `value` that holds a
/// NUL character.
pub fn nul_at(value: &Value) -> Option<String> {
    fn walk(value: &Value, path: &mut String) -> bool {
        match value {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().enumerate().any(|(i, v)| {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let found = walk(v, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            Value::Object(map) => map.iter().any(|(k, v)| {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                let found = k.contains('\0') || walk(v, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            _ => false,
        }
    }
    let mut path = String::new();
    walk(value, &mut path).then(|| if path.is_empty() { "body".into() } else { path })
}

/// A request body meant to be JSON, as bytes (for a handler that reads it field by field):
/// 415 for a `Content-Type` other than JSON, 413 over the route's limit.
#[derive(Debug, Clone)]
pub struct JsonBytes(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        refuse_other_types(req.headers())?;
        let Body(bytes) = Body::from_request(req, state).await?;
        Ok(JsonBytes(bytes))
    }
}

/// 415 unless the `Content-Type` is absent or JSON.
fn refuse_other_types(headers: &HeaderMap) -> Result<(), ApiError> {
    if headers.contains_key(header::CONTENT_TYPE) && !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType {
            expected: "application/json",
        });
    }
    Ok(())
}

/// A request body parsed as JSON into `T`.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        refuse_other_types(req.headers())?;
        let Body(bytes) = Body::from_request(req, state).await?;
        parse(&bytes).map(JsonBody)
    }
}

/// Parses `bytes` as `T`, naming the field a failure is about.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // JSON can only carry a NUL as the escape `\u0000`; only then is the body walked for it.
    if bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000"))
        && let Some(field) = serde_json::from_slice(bytes).ok().as_ref().and_then(nul_at)
    {
        return Err(ApiError::invalid(field, NUL_MESSAGE));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let unreadable = inner.is_syntax() || inner.is_eof();
        let message = inner.to_string();
        // serde reports a missing field at the enclosing object, not at the field.
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
        {
            return ApiError::invalid(field, "is required");
        }
        let parameter = if unreadable || path == "." || path == "?" || path.is_empty() {
            "body".to_owned()
        } else {
            path
        };
        // The position in the body helps nobody reading an error for one field.
        let message = match message.rsplit_once(" at line ") {
            Some((m, _)) if parameter != "body" => m.to_owned(),
            _ => message,
        };
        ApiError::invalid(parameter, message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Person {
        #[allow(dead_code)]
        name: String,
        #[allow(dead_code)]
        hours: Option<u32>,
    }

    fn parameter(raw: &str) -> String {
        match parse::<Person>(raw.as_bytes()).unwrap_err() {
            ApiError::InvalidParameter { parameter, .. } => parameter,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bad_body_names_the_field_at_fault() {
        assert_eq!(parameter(r#"{"hours": 3}"#), "name");
        assert_eq!(parameter(r#"{"name": "a", "hours": "x"}"#), "hours");
        assert_eq!(parameter(r#"{"name": "a", "hours": -1}"#), "hours");
        assert_eq!(parameter("not json"), "body");
        assert!(parse::<Person>(br#"{"name": "a", "other": 1}"#).is_ok());
    }

    #[test]
    fn a_nul_character_is_refused_naming_the_field() {
        assert_eq!(parameter(r#"{"name": "a\u0000b"}"#), "name");
        assert_eq!(
            parameter(r#"{"name": "a", "x": {"y": ["", "\u0000"]}}"#),
            "x.y[1]"
        );
        assert_eq!(parameter(r#"{"name": "a", "k\u0000": 1}"#), "k\0");
        // An escaped backslash before `u0000` is no NUL.
        assert!(parse::<Person>(br#"{"name": "a\\u0000"}"#).is_ok());
    }
}
