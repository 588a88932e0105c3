//! `wearhouse-fake-providers`: the fake Fitbit and Google Health servers as a process, for the
//! native stack's end-to-end test (`tests/stack/run.sh`, or `scripts/stack up` with
//! `WEARHOUSE_FAKE_PROVIDERS=1`). Their consent pages approve at once as the one fake user of
//! each provider, so a consent link opened in a browser comes straight back to the stack's
//! OAuth callback. Dev only: it is never part of an image.
//!
//! ```sh
//! wearhouse-fake-providers --fitbit-listen 127.0.0.1:9201 --google-listen 127.0.0.1:9202
//! ```
//! The client ids and secrets it accepts are the defaults below (or `--fitbit-client-id` …),
//! to be given to the ingest daemon as its provider settings.

use std::net::SocketAddr;

use chrono_tz::Tz;
use wearhouse_fakes::{
    FakeFitbit, FakeFitbitConfig, FakeGoogleConfig, FakeGoogleHealth, FakeGoogleUser, FakeUser,
};

/// Settings, each `--name value`; every one has a default.
struct Settings {
    fitbit_listen: SocketAddr,
    google_listen: SocketAddr,
    fitbit_client_id: String,
    fitbit_client_secret: String,
    google_client_id: String,
    google_client_secret: String,
}

const USAGE: &str = "usage: wearhouse-fake-providers [--fitbit-listen ADDR] [--google-listen ADDR] \
[--fitbit-client-id ID] [--fitbit-client-secret S] [--google-client-id ID] [--google-client-secret S]";

fn settings() -> Result<Settings, String> {
    let mut s = Settings {
        fitbit_listen: ([127, 0, 0, 1], 9201).into(),
        google_listen: ([127, 0, 0, 1], 9202).into(),
        fitbit_client_id: "FAKEFITBIT".into(),
        fitbit_client_secret: "fake-fitbit-secret".into(),
        google_client_id: "fake.apps.googleusercontent.com".into(),
        google_client_secret: "fake-google-secret".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.into());
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let addr = |v: &str| {
            v.parse::<SocketAddr>()
                .map_err(|e| format!("{flag} {v:?} is not an address such as 127.0.0.1:9201: {e}"))
        };
        match flag.as_str() {
            "--fitbit-listen" => s.fitbit_listen = addr(&value)?,
            "--google-listen" => s.google_listen = addr(&value)?,
            "--fitbit-client-id" => s.fitbit_client_id = value,
            "--fitbit-client-secret" => s.fitbit_client_secret = value,
            "--google-client-id" => s.google_client_id = value,
            "--google-client-secret" => s.google_client_secret = value,
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    Ok(s)
}

#[tokio::main]
async fn main() {
    let s = match settings() {
        Ok(s) => s,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    let fitbit = FakeFitbit::start_at(
        FakeFitbitConfig::server_app(&s.fitbit_client_id, &s.fitbit_client_secret),
        s.fitbit_listen,
    )
    .await;
    fitbit.add_user(FakeUser::new("FAKE01", Tz::Europe__London));
    let google = FakeGoogleHealth::start_at(
        FakeGoogleConfig::new(&s.google_client_id, &s.google_client_secret),
        s.google_listen,
    )
    .await;
    google.add_user(FakeGoogleUser::new(
        "1000000000000000001",
        Tz::Europe__London,
    ));
    println!(
        "fake fitbit at {} (consent: {})",
        fitbit.url(),
        fitbit.authorize_url()
    );
    println!("fake google health at {}", google.url());
    let _ = tokio::signal::ctrl_c().await;
}
