//! wearhouse-fakes: local fake servers of the services the tests cannot reach (the Fitbit Web
//! API and Google Health with their OAuth endpoints, and an OpenID Provider for single sign-on),
//! faults included. A dev-dependency only, never in a release binary. The fakes speak HTTP and
//! JSON as the real services do and share no code with the clients they test, so a misreading
//! of a provider is not repeated on both sides.

pub mod fitbit;
pub mod google;
mod grants;
mod localtime;
pub mod oidc;
mod rng;
mod sleep;
mod state;
mod token;

pub use fitbit::{
    AzmShape, FakeFitbit, FakeFitbitConfig, FakeTokens, FakeUser, Fault, RequestRecord,
};
pub use google::{
    FakeGoogleConfig, FakeGoogleHealth, FakeGoogleTokens, FakeGoogleUser, GoogleFault,
    GoogleRequest,
};
pub use oidc::{
    FakeOidcClient, FakeOidcConfig, FakeOidcIssuer, FakeOidcUser, OidcFault, OidcTokenRequest,
};

use std::net::SocketAddr;

use axum::Router;

/// An answer whose connection drops half-way through the body: the headers and the first half
/// arrive, then the stream fails, as a provider or proxy that dies mid-answer does.
fn cut_off(
    status: axum::http::StatusCode,
    content_type: &'static str,
    body: String,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let half = body.as_bytes()[..body.len() / 2].to_vec();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![
        Ok(half),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "cut off",
        )),
    ];
    (
        status,
        [("content-type", content_type)],
        axum::body::Body::from_stream(futures::stream::iter(chunks)),
    )
        .into_response()
}

/// A fake's HTTP server on a free port of 127.0.0.1; it stops when dropped.
struct LocalServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl LocalServer {
    async fn start(app: Router, name: &str) -> LocalServer {
        Self::start_at(app, name, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    async fn start_at(app: Router, name: &str, addr: SocketAddr) -> LocalServer {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("bind the {name} server to {addr}: {e}"));
        let addr = listener.local_addr().expect("local address");
        let name = name.to_owned();
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                panic!("{name} server: {e}");
            }
        });
        LocalServer { addr, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The consent page's approval: the browser is sent back to `redirect_uri` with `params` and
/// the request's `state`. `None` when `redirect_uri` is not a URL.
fn redirect_back(
    redirect_uri: &str,
    params: &[(&str, &str)],
    state: Option<&String>,
) -> Option<axum::response::Response> {
    use axum::response::IntoResponse as _;
    let mut target = url::Url::parse(redirect_uri).ok()?;
    target.query_pairs_mut().extend_pairs(params);
    if let Some(state) = state {
        target.query_pairs_mut().append_pair("state", state);
    }
    Some(axum::response::Redirect::to(target.as_str()).into_response())
}

/// Plays the participant's browser on a fake's consent page: opens `consent_url`, which
/// approves at once, and returns the redirect the provider sends the browser to
/// (`redirect_uri?code&state`). An `Err` carries the consent page's error text.
async fn follow_consent(consent_url: &str) -> Result<url::Url, String> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client");
    let response = client
        .get(consent_url)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_redirection() {
        return Err(response.text().await.unwrap_or_default());
    }
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or("redirect without a location")?;
    url::Url::parse(location).map_err(|e| e.to_string())
}
