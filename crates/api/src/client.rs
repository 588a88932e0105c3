//! Who is on the other end of a request: the client's address and the request id, for rate
//! limits and the audit trail. The address is the TCP peer's, unless the peer is one of the
//! trusted proxies (`--trusted-proxies`): then it is the `X-Real-IP` that proxy set. A header
//! from anyone else is ignored, or a client reaching the API directly could name any address
//! it likes and escape the per-address limits.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

/// The client's address and the request's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// `X-Real-IP` when a trusted proxy (the nginx in front, which overwrites whatever the
    /// client sent) forwarded the request, else the peer of the connection.
    pub addr: IpAddr,
    /// The `x-request-id` the API gave the request.
    pub request_id: Option<String>,
}

/// The proxies whose `X-Real-IP` is believed: addresses and CIDR networks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// The default: a proxy on the same host (the native stack's nginx).
    pub const DEFAULT: &'static str = "127.0.0.1,::1";

    /// Parses a comma-separated list of addresses (`10.0.0.5`, `::1`) and networks
    /// (`172.16.0.0/12`, `fd00::/8`); an empty list trusts no proxy.
    pub fn parse(raw: &str) -> Result<Self, String> {
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!(
                            "{s:?} is neither an IP address (10.0.0.5, ::1) nor a CIDR network \
                             (10.0.0.0/8, fd00::/8); give a comma-separated list of them in \
                             --trusted-proxies (WEARHOUSE_TRUSTED_PROXIES)"
                        )
                    })
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    /// Whether `peer` is one of the trusted proxies (an IPv4 peer seen as an IPv4-mapped IPv6
    /// address on a dual-stack listener counts as the IPv4 address).
    pub fn trusts(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.0.iter().any(|net| net.contains(&peer))
    }
}

impl Default for TrustedProxies {
    fn default() -> Self {
        Self::parse(Self::DEFAULT).expect("the default parses")
    }
}

impl FromStr for TrustedProxies {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&list.join(","))
    }
}

impl ClientInfo {
    /// The client of a request whose connection came from `peer`.
    pub fn resolve(headers: &HeaderMap, peer: Option<IpAddr>, trusted: &TrustedProxies) -> Self {
        let forwarded = || {
            headers
                .get("x-real-ip")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<IpAddr>().ok())
        };
        let addr = match peer {
            Some(p) if trusted.trusts(p) => forwarded().unwrap_or(p),
            Some(p) => p,
            None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        ClientInfo {
            addr,
            request_id: headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }
    }

    fn from_parts(headers: &HeaderMap, extensions: &axum::http::Extensions) -> Self {
        if let Some(known) = extensions.get::<ClientInfo>() {
            return known.clone();
        }
        // Outside the app's layers (which always identify the client), no proxy is trusted.
        let peer = extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Self::resolve(headers, peer, &TrustedProxies(Vec::new()))
    }

    /// The client of a request.
    pub fn of(request: &Request) -> Self {
        Self::from_parts(request.headers(), request.extensions())
    }
}

/// Middleware: works out the client of every request once, with the trusted proxies, for the
/// handlers and the sign-in guard to read.
pub async fn identify(
    State(trusted): State<Arc<TrustedProxies>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let client = ClientInfo::resolve(request.headers(), peer, &trusted);
    request.extensions_mut().insert(client);
    next.run(request).await
}

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_parts(&parts.headers, &parts.extensions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(real_ip: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-real-ip", real_ip.parse().unwrap());
        h
    }

    #[test]
    fn x_real_ip_is_believed_only_from_a_trusted_proxy() {
        let trusted = TrustedProxies::parse("10.1.0.0/16, 192.0.2.7,fd00::/8").unwrap();
        let h = headers("203.0.113.9");
        let from = |peer: &str| ClientInfo::resolve(&h, Some(peer.parse().unwrap()), &trusted);
        let forwarded: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(from("10.1.200.3").addr, forwarded);
        assert_eq!(from("192.0.2.7").addr, forwarded);
        assert_eq!(from("::ffff:192.0.2.7").addr, forwarded);
        assert_eq!(from("fd00::1").addr, forwarded);
        assert_eq!(from("10.2.0.1").addr, "10.2.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(
            from("192.0.2.8").addr,
            "192.0.2.8".parse::<IpAddr>().unwrap()
        );
        // A trusted proxy that sent no (or a garbled) header: its own address.
        let garbled = headers("not an address");
        let peer: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(
            ClientInfo::resolve(&garbled, Some(peer), &trusted).addr,
            peer
        );
    }

    #[test]
    fn the_default_trusts_this_host_only_and_bad_entries_are_named() {
        let default = TrustedProxies::default();
        assert!(default.trusts("127.0.0.1".parse().unwrap()));
        assert!(default.trusts("::1".parse().unwrap()));
        assert!(!default.trusts("127.0.0.2".parse().unwrap()));
        assert!(!default.trusts("10.0.0.1".parse().unwrap()));
        assert_eq!(default.to_string(), "127.0.0.1/32,::1/128");
        assert_eq!(
            TrustedProxies::parse("").unwrap(),
            TrustedProxies(Vec::new())
        );
        for bad in ["10.0.0.0/33", "localhost", "10.0.0.1,nginx", "300.1.1.1"] {
            let e = TrustedProxies::parse(bad).unwrap_err();
            assert!(e.contains("WEARHOUSE_TRUSTED_PROXIES"), "{bad}: {e}");
        }
    }
}
