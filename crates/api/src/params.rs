//! Query-string parsing that names the parameter at fault. Axum's `Query<T>` rejects with
//! plain text and cannot express repeated keys (`participant_id=a&participant_id=b`), so a
//! handler's parameter struct implements [`FromQuery`] over the decoded pairs
//! ([`QueryParams`]) and every failure becomes an [`ApiError::InvalidParameter`]. The same
//! struct derives `utoipa::IntoParams`, so `/openapi.json` documents what is really parsed.
//! Unknown parameters are ignored; an empty value counts as absent, as HTML forms send them.
//! A NUL character in any name or value is refused, naming the parameter (see
//! [`crate::extract`]).

use std::str::FromStr;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::extract::refuse_nul;

/// The decoded `name=value` pairs of a request's query string, in order.
#[derive(Debug, Clone, Default)]
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    /// Decodes a raw query string.
    pub fn parse(raw: &str) -> Self {
        QueryParams(
            url::form_urlencoded::parse(raw.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// Decodes a raw query string from a request: a NUL character anywhere is a 400 naming
    /// the parameter it is in.
    pub fn from_request_query(raw: &str) -> Result<Self, ApiError> {
        let query = Self::parse(raw);
        for (name, value) in &query.0 {
            refuse_nul(name, name)?;
            refuse_nul(name, value)?;
        }
        Ok(query)
    }

    /// Every non-empty value of `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// The value of a parameter given at most once.
    pub fn one<'a>(&'a self, name: &str) -> Result<Option<&'a str>, ApiError> {
        let mut values = self
            .0
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(ApiError::invalid(name, "given more than once"));
        }
        Ok(first.map(str::trim))
    }

    /// A required parameter.
    pub fn required<'a>(&'a self, name: &str) -> Result<&'a str, ApiError> {
        self.one(name)?
            .ok_or_else(|| ApiError::invalid(name, "is required"))
    }

    /// An optional whole number, at least `min`.
    pub fn number<T>(&self, name: &str, min: T) -> Result<Option<T>, ApiError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let Some(raw) = self.one(name)? else {
            return Ok(None);
        };
        let n: T = raw.parse().map_err(|_| {
            ApiError::invalid(
                name,
                format!("{raw:?} is not a whole number of at least {min}"),
            )
        })?;
        if n < min {
            return Err(ApiError::invalid(
                name,
                format!("{n} is too small; use at least {min}"),
            ));
        }
        Ok(Some(n))
    }
}

/// A parameter struct read from the decoded pairs; each failure names its parameter.
pub trait FromQuery: Sized {
    /// Parses and checks every parameter, in the order the struct documents them.
    fn from_query(query: &QueryParams) -> Result<Self, ApiError>;
}

/// Extractor of a [`FromQuery`] struct; a failure answers 400 `invalid_parameter`.
#[derive(Debug, Clone)]
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: FromQuery> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let query = QueryParams::from_request_parts(parts, state).await?;
        T::from_query(&query).map(Params)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        QueryParams::from_request_query(parts.uri.query().unwrap_or(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_empty_values_are_handled_as_documented() {
        let q = QueryParams::parse("a=1&a=2&b=&c=%20x%20");
        assert_eq!(q.all("a").collect::<Vec<_>>(), ["1", "2"]);
        assert!(q.one("a").is_err());
        assert_eq!(q.one("b").unwrap(), None);
        assert_eq!(q.one("c").unwrap(), Some("x"));
        assert!(
            matches!(q.required("b"), Err(ApiError::InvalidParameter { parameter, .. }) if parameter == "b")
        );
    }

    #[test]
    fn a_nul_character_anywhere_is_refused_naming_the_parameter() {
        for (raw, name) in [
            ("actor=a%00b", "actor"),
            ("a=1&action=%00", "action"),
            ("x%00y=1", "x\0y"),
        ] {
            let e = QueryParams::from_request_query(raw).unwrap_err();
            assert!(
                matches!(&e, ApiError::InvalidParameter { parameter, .. } if parameter == name),
                "{raw}: {e:?}"
            );
        }
        assert!(QueryParams::from_request_query("a=1&b=%20").is_ok());
    }

    #[test]
    fn numbers_name_the_parameter_when_malformed_or_too_small() {
        let q = QueryParams::parse("limit=ten&offset=-1&max_points=0");
        for (name, min) in [("limit", 1u64), ("offset", 0), ("max_points", 1)] {
            let e = q.number::<u64>(name, min).unwrap_err();
            assert!(
                matches!(&e, ApiError::InvalidParameter { parameter, .. } if parameter == name),
                "{e:?}"
            );
        }
        assert_eq!(
            QueryParams::parse("limit=5")
                .number::<u32>("limit", 1)
                .unwrap(),
            Some(5)
        );
    }
}
