//! Extractors whose every failure is the API's JSON error: path parameters ([`Path`]), query
//! strings read by serde ([`Query`]), form bodies ([`Form`]) and raw bodies ([`Body`]). Axum's
//! own extractors reject with a plain-text body; these wrap or replace them, name the
//! parameter at fault where one is known, answer 413 for a body over the route's limit and 415
//! for a body of another media type. They also refuse a NUL character in any text with a 400
//! naming the parameter: PostgreSQL cannot store one in `text`, and would otherwise fail the
//! request deep inside with a 5xx. [`crate::params`] and [`crate::json`] do the same for the
//! API's own query parameters and JSON bodies.

use axum::body::Bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The message of a 400 for a NUL character.
pub const NUL_MESSAGE: &str = "must not contain a NUL character (U+0000)";

/// A 400 naming `name` when `value` holds a NUL character.
pub fn refuse_nul(name: &str, value: &str) -> Result<(), ApiError> {
    if value.contains('\0') {
        return Err(ApiError::invalid(name, NUL_MESSAGE));
    }
    Ok(())
}

/// The error for a body that could not be read: 413 over the route's limit, else a 400.
pub fn body_rejection(e: BytesRejection) -> ApiError {
    match e {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
            ApiError::PayloadTooLarge
        }
        other => ApiError::invalid("body", format!("cannot be read: {}", other.body_text())),
    }
}

/// The request body as bytes, within the route's body limit.
#[derive(Debug, Clone)]
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(Body)
            .map_err(body_rejection)
    }
}

/// Whether the request's `Content-Type` is `expected` (parameters such as `charset` aside).
pub fn has_content_type(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(expected))
}

/// Path parameters deserialised into `T` (a `String`, a tuple, or a struct named after the
/// route template's parameters).
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // Every parameter as text first: a failure names its key, and so does a NUL.
        let axum::extract::Path(raw) =
            axum::extract::Path::<Vec<(String, String)>>::from_request_parts(parts, state)
                .await
                .map_err(|e| path_rejection(e, &[]))?;
        for (key, value) in &raw {
            refuse_nul(key, value)?;
        }
        let keys: Vec<&str> = raw.iter().map(|(k, _)| k.as_str()).collect();
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(t)| Path(t))
            .map_err(|e| path_rejection(e, &keys))
    }
}

/// A path rejection as a 400 naming the parameter; `keys` are the route's parameters in
/// order, to name one that failed by position.
fn path_rejection(e: PathRejection, keys: &[&str]) -> ApiError {
    let PathRejection::FailedToDeserializePathParams(e) = e else {
        return ApiError::Internal(anyhow::anyhow!("path parameters: {}", e.body_text()));
    };
    let invalid = |key: &str, value: &str, expected: &str| {
        ApiError::invalid(key, format!("{value:?} is not a valid {expected}"))
    };
    match e.into_kind() {
        ErrorKind::InvalidUtf8InPathParam { key } => ApiError::invalid(
            key,
            "is not UTF-8 text once percent-decoded; percent-encode UTF-8 bytes only",
        ),
        ErrorKind::ParseErrorAtKey {
            key,
            value,
            expected_type,
        } => invalid(&key, &value, expected_type),
        ErrorKind::ParseErrorAtIndex {
            index,
            value,
            expected_type,
        } => invalid(
            keys.get(index).copied().unwrap_or("path"),
            &value,
            expected_type,
        ),
        ErrorKind::ParseError {
            value,
            expected_type,
        } => invalid(
            keys.first().copied().unwrap_or("path"),
            &value,
            expected_type,
        ),
        ErrorKind::DeserializeError {
            key,
            value,
            message,
        } => ApiError::invalid(key, format!("{value:?}: {message}")),
        other => ApiError::Internal(anyhow::anyhow!("path parameters: {other}")),
    }
}

/// A query string deserialised into `T` by serde (for routes whose parameters need no
/// [`crate::params::FromQuery`] checks of their own).
#[derive(Debug, Clone)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let raw = parts.uri.query().unwrap_or("");
        urlencoded(raw.as_bytes()).map(Query)
    }
}

/// An `application/x-www-form-urlencoded` body deserialised into `T`.
#[derive(Debug, Clone)]
pub struct Form<T>(pub T);

/// The media type [`Form`] reads.
const FORM_TYPE: &str = "application/x-www-form-urlencoded";

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Form<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if req.method() == Method::GET || req.method() == Method::HEAD {
            let raw = req.uri().query().unwrap_or("").to_owned();
            return urlencoded(raw.as_bytes()).map(Form);
        }
        if !has_content_type(req.headers(), FORM_TYPE) {
            return Err(ApiError::UnsupportedMediaType {
                expected: FORM_TYPE,
            });
        }
        let Body(bytes) = Body::from_request(req, state).await?;
        urlencoded(&bytes).map(Form)
    }
}

/// Decodes `name=value&…` into `T`, naming the field at fault.
fn urlencoded<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    for (name, value) in url::form_urlencoded::parse(bytes) {
        refuse_nul(&name, &name)?;
        refuse_nul(&name, &value)?;
    }
    let de = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(bytes));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
        {
            return ApiError::invalid(field, "is required");
        }
        let parameter = if path == "." || path.is_empty() {
            "query".to_owned()
        } else {
            path
        };
        ApiError::invalid(parameter, message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Fields {
        #[allow(dead_code)]
        name: String,
        #[allow(dead_code)]
        count: Option<u32>,
    }

    fn parameter(raw: &str) -> String {
        match urlencoded::<Fields>(raw.as_bytes()).unwrap_err() {
            ApiError::InvalidParameter { parameter, .. } => parameter,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bad_form_or_query_names_the_field_at_fault() {
        assert_eq!(parameter("count=3"), "name");
        assert_eq!(parameter("name=a&count=x"), "count");
        assert_eq!(parameter("name=a%00b"), "name");
        assert_eq!(parameter("name=a&other=%00"), "other");
        assert!(urlencoded::<Fields>(b"name=a&other=1").is_ok());
    }
}
