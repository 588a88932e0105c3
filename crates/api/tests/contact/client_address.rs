//! Whose address the contact form's rate limit counts: the peer's, unless the peer is a
//! trusted proxy (`--trusted-proxies`), whose `X-Real-IP` names the client.

use std::process::Command;

use wearhouse_api::client::TrustedProxies;
use wearhouse_api::startup::ServeArgs;

use crate::sink::Sink;
use crate::support::{TestApp, settings, spawn_with};

/// The app with a burst of two submissions per address, trusting `trusted` as proxies.
async fn app(sink: &Sink, trusted: &str) -> TestApp {
    let mut contact = settings(sink.addr.port());
    contact.contact_rate_burst = 2;
    contact.contact_rate_refill_secs = 3_600;
    spawn_with(ServeArgs {
        contact,
        trusted_proxies: TrustedProxies::parse(trusted).unwrap(),
        ..ServeArgs::default()
    })
    .await
}

fn fields(token: &str) -> Vec<(&str, &str)> {
    vec![
        ("csrf_token", token),
        ("participant_id", "P001"),
        ("requester_name", "Dr Ada Example"),
        ("requester_email", "ada@example.org"),
        ("subject", "Device not worn"),
        ("message", "Could you check on the participant?"),
    ]
}

async fn audited_addresses(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar(
        "select client_addr from audit_log where action = 'contact_sent' order by audit_id",
    )
    .fetch_all(app.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn a_client_reaching_the_api_directly_cannot_escape_the_rate_limit_with_x_real_ip() {
    let sink = Sink::start("127.0.0.1:0").await;
    // The tests connect from 127.0.0.1, which is not a proxy here.
    let app = app(&sink, "192.0.2.1,10.0.0.0/8").await;
    let (_, form) = app.load_form("P001").await;
    let mut statuses = Vec::new();
    for ip in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        let ((status, _), _) = app
            .submit_with(
                &fields(&form.token),
                Some(&form.cookie),
                &[("x-real-ip", ip)],
            )
            .await;
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 200, 429]);
    assert_eq!(audited_addresses(&app).await, ["127.0.0.1", "127.0.0.1"]);
}

#[tokio::test]
async fn a_trusted_proxys_x_real_ip_names_the_client() {
    let sink = Sink::start("127.0.0.1:0").await;
    let app = app(&sink, TrustedProxies::DEFAULT).await;
    let (_, form) = app.load_form("P001").await;
    let mut statuses = Vec::new();
    for ip in ["203.0.113.1", "203.0.113.1", "203.0.113.1", "203.0.113.2"] {
        let ((status, _), _) = app
            .submit_with(
                &fields(&form.token),
                Some(&form.cookie),
                &[("x-real-ip", ip)],
            )
            .await;
        statuses.push(status);
    }
    // Each client has its own bucket: the second one is not held by the first one's flood.
    assert_eq!(statuses, [200, 200, 429, 200]);
    assert_eq!(
        audited_addresses(&app).await,
        ["203.0.113.1", "203.0.113.1", "203.0.113.2"]
    );
}

#[test]
fn a_bad_trusted_proxies_setting_stops_the_api_at_startup_naming_it() {
    for (flag, env) in [(Some("10.0.0.0/33"), None), (None, Some("127.0.0.1,nginx"))] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wearhouse-api"));
        command
            .arg("serve")
            .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
            .env_remove("WEARHOUSE_TRUSTED_PROXIES");
        if let Some(value) = flag {
            command.args(["--trusted-proxies", value]);
        }
        if let Some(value) = env {
            command.env("WEARHOUSE_TRUSTED_PROXIES", value);
        }
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        let bad = flag.unwrap_or("nginx").split(',').next_back().unwrap();
        assert!(stderr.contains(&format!("{bad:?}")), "{stderr}");
        assert!(
            stderr.contains("--trusted-proxies") && stderr.contains("WEARHOUSE_TRUSTED_PROXIES"),
            "{stderr}"
        );
    }
}
