//! JSON request bodies whose failures name the field at fault. Axum's `Json<T>` rejects with
//! plain text and a 422 that does not say which field was wrong; [`JsonBody`] answers the API's
//! usual 400 `invalid_parameter` naming the field (`body` when the JSON itself is unreadable).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A request body parsed as JSON into `T`.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::invalid("body", e.body_text()))?;
        parse(&bytes).map(JsonBody)
    }
}

/// Parses `bytes` as `T`, naming the field a failure is about.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        // serde reports a missing field at the enclosing object, not at the field.
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
        {
            return ApiError::invalid(field, "is required");
        }
        let parameter = if path == "." || path.is_empty() {
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
    struct Body {
        #[allow(dead_code)]
        name: String,
        #[allow(dead_code)]
        hours: Option<u32>,
    }

    fn parameter(raw: &str) -> String {
        match parse::<Body>(raw.as_bytes()).unwrap_err() {
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
        assert!(parse::<Body>(br#"{"name": "a", "other": 1}"#).is_ok());
    }
}
