//! Who is on the other end of a request: the client's address and the request id, for rate
//! limits and the audit trail.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;

/// The client's address and the request's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// `X-Real-IP` as set by the nginx in front (which overwrites whatever the client sent),
    /// else the peer of the connection.
    pub addr: IpAddr,
    /// The `x-request-id` the API gave the request.
    pub request_id: Option<String>,
}

impl ClientInfo {
    fn from_parts(headers: &HeaderMap, extensions: &axum::http::Extensions) -> Self {
        let forwarded = headers
            .get("x-real-ip")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let peer = extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        ClientInfo {
            addr: forwarded
                .or(peer)
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            request_id: headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }
    }

    /// The client of a request.
    pub fn of(request: &Request) -> Self {
        Self::from_parts(request.headers(), request.extensions())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_parts(&parts.headers, &parts.extensions))
    }
}
