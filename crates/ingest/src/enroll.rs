//! The `enroll` command: prints a participant's consent link, serves the provider's OAuth
//! callback on the redirect URI's port until the participant has consented, then stores the
//! grant (the provider's own enrolment code does the exchange and the bookkeeping).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context as _;
use chrono_tz::Tz;
use clap::{Args, ValueEnum};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use url::Url;
use wearhouse_core::ParticipantId;
use wearhouse_core::config::DatabaseArgs;
use wearhouse_core::store::participants::{self, NewParticipant};
use wearhouse_core::store::{audit, collection, consent_links};

use crate::metrics::SourceMetrics;
use crate::oauth::Binding;
use crate::sources::registry::{self, ProviderArgs, SourceContext};

/// A provider participants consent at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OAuthProvider {
    /// The Fitbit Web API (callback at `--fitbit-redirect-uri`).
    Fitbit,
    /// The Google Health API (callback at `--google-redirect-uri`).
    GoogleHealth,
}

/// Settings of `wearhouse-ingest enroll`.
#[derive(Debug, Clone, Args)]
pub struct EnrollArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// The participant who consents; created when missing.
    #[arg(long, env = "WEARHOUSE_ENROLL_PARTICIPANT")]
    pub participant: String,

    /// The provider the participant consents at.
    #[arg(long, env = "WEARHOUSE_ENROLL_PROVIDER", value_enum)]
    pub provider: OAuthProvider,

    /// Time zone (IANA name) of a participant created by this command; the zone the provider
    /// reports at consent replaces it.
    #[arg(long, env = "WEARHOUSE_ENROLL_TIMEZONE", default_value = "UTC")]
    pub timezone: Tz,

    /// The study a participant created by this command joins (default: `default`); an
    /// existing participant must already be in it.
    #[arg(long, env = "WEARHOUSE_ENROLL_STUDY")]
    pub study: Option<String>,

    /// Address the callback is served on. Default: the redirect URI's port, on 127.0.0.1 when
    /// its host is local and on every interface otherwise.
    #[arg(long, env = "WEARHOUSE_ENROLL_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// Accept a provider account other than the one on record for the participant (it
    /// replaces it); without this such a consent is refused.
    #[arg(long, env = "WEARHOUSE_ENROLL_ALLOW_ACCOUNT_CHANGE")]
    pub allow_account_change: bool,

    /// First local day to fetch for this participant (history from before enrolment); see
    /// `participant set-backfill` to change it later.
    #[arg(
        long,
        env = "WEARHOUSE_ENROLL_BACKFILL_FROM",
        value_name = "YYYY-MM-DD"
    )]
    pub backfill_from: Option<chrono::NaiveDate>,

    /// How long to wait for the consent before giving up, in seconds.
    #[arg(
        long,
        env = "WEARHOUSE_ENROLL_CONSENT_TIMEOUT_SECS",
        default_value_t = 900
    )]
    pub consent_timeout_secs: u64,

    #[command(flatten)]
    pub providers: ProviderArgs,
}

/// Where to serve the callback for `redirect_uri`.
fn listen_address(redirect_uri: &str) -> anyhow::Result<SocketAddr> {
    let url = Url::parse(redirect_uri)
        .with_context(|| format!("redirect URI {redirect_uri:?} is not a URL"))?;
    let port = url
        .port_or_known_default()
        .context("the redirect URI has no port")?;
    let local = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    let ip = if local {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    Ok(SocketAddr::new(ip, port))
}

/// Runs `enroll`: the consent link goes to stdout, the outcome is returned as text.
///
/// The callback's port is taken before the participant is created, so a consent that could
/// not complete leaves nothing behind. Where the ingest daemon already serves the port, the
/// consent goes through the daemon instead: a single-use consent link is printed, and the
/// command returns as soon as the daemon has stored the grant.
pub async fn run(args: &EnrollArgs, shutdown: &CancellationToken) -> anyhow::Result<String> {
    let participant = ParticipantId::parse(&args.participant)
        .map_err(|e| anyhow::anyhow!("invalid --participant {:?}: {e}", args.participant))?;
    if let Some(from) = args.backfill_from {
        participants::check_backfill_start(from, chrono::Utc::now().date_naive())
            .map_err(|e| anyhow::anyhow!("--backfill-from: {e}"))?;
    }
    let pool = args.database.connect().await?;
    let ctx =
        SourceContext::prepare(pool.clone(), SourceMetrics::default(), &args.providers).await?;
    let study_metrics = {
        let mut conn = pool.acquire().await?;
        let existing = participants::get(&mut conn, &participant).await.ok();
        if let (Some(row), Some(study)) = (&existing, &args.study) {
            anyhow::ensure!(
                &row.study_id == study,
                "participant {participant} belongs to study {:?}, not {study:?}; check --participant and --study",
                row.study_id
            );
        }
        // The consent asks only for the scopes the participant's study needs.
        let study = existing
            .map(|row| row.study_id)
            .or_else(|| args.study.clone())
            .unwrap_or_else(|| "default".to_owned());
        collection::study_metrics(&mut *conn, &study).await?
    };

    let binding = if args.allow_account_change {
        Binding::AccountChangeAllowed
    } else {
        Binding::None
    };
    let (done, mut enrolled) = mpsc::unbounded_channel::<String>();
    let (router, redirect_uri, consent_url) = match args.provider {
        OAuthProvider::Fitbit => {
            let source = registry::fitbit(&args.providers, &ctx)?
                .context("--fitbit-client-id (WEARHOUSE_FITBIT_CLIENT_ID) is required")?;
            let redirect = &args.providers.fitbit.redirect_uri;
            let (tx, mut rx) = mpsc::unbounded_channel();
            let router =
                source.callback_router(pool.clone(), &registry::callback_path(redirect), Some(tx));
            let done = done.clone();
            tokio::spawn(async move {
                if let Some(e) = rx.recv().await {
                    let _ = done.send(format!(
                        "participant {} is enrolled with fitbit (user {}, time zone {})",
                        e.participant,
                        e.provider_user_id.as_deref().unwrap_or("-"),
                        e.timezone
                    ));
                }
            });
            (
                router,
                redirect.clone(),
                source.consent_url_bound(&participant, binding, study_metrics.as_deref()),
            )
        }
        OAuthProvider::GoogleHealth => {
            let source = registry::google_health(&args.providers, &ctx)?
                .context("--google-client-id (WEARHOUSE_GOOGLE_CLIENT_ID) is required")?;
            let redirect = &args.providers.google.redirect_uri;
            let (tx, mut rx) = mpsc::unbounded_channel();
            let router = source.callback_router(&registry::callback_path(redirect), Some(tx));
            let done = done.clone();
            tokio::spawn(async move {
                if let Some(e) = rx.recv().await {
                    let moved = e
                        .moved_from_fitbit
                        .map(|f| format!("; moved from fitbit user {f}"))
                        .unwrap_or_default();
                    let _ = done.send(format!(
                        "participant {} is enrolled with google-health (user {}, time zone {}{moved})",
                        e.participant, e.health_user_id, e.timezone
                    ));
                }
            });
            (
                router,
                redirect.clone(),
                source.consent_url_bound(&participant, binding, study_metrics.as_deref()),
            )
        }
    };
    drop(done);

    let listen = match args.listen {
        Some(a) => a,
        None => listen_address(&redirect_uri)?,
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if args.listen.is_none() && daemon_serves(listen).await {
                let outcome =
                    through_daemon(args, &pool, &participant, &redirect_uri, shutdown).await;
                pool.close().await;
                return outcome;
            }
            anyhow::bail!(
                "cannot serve the consent callback on {listen}: another program uses that port. \
                 Stop it, or pass --listen with a free address that the redirect URI \
                 {redirect_uri} reaches; no participant was created"
            );
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "cannot serve the consent callback on {listen} (pass --listen to choose another \
                 address); no participant was created"
            )));
        }
    };
    prepare_participant(args, &pool, &participant).await?;
    let stop = CancellationToken::new();
    let server = tokio::spawn({
        let stop = stop.clone();
        async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        }
    });
    println!("Open this link in the participant's browser to consent:\n{consent_url}");
    tracing::info!(listen = %listen, redirect_uri, "waiting for the consent callback");

    let outcome = tokio::select! {
        e = enrolled.recv() => e.context("the callback server stopped"),
        _ = tokio::time::sleep(Duration::from_secs(args.consent_timeout_secs)) => {
            Err(anyhow::anyhow!("no consent within {} s; run the command again", args.consent_timeout_secs))
        }
        _ = shutdown.cancelled() => Err(anyhow::anyhow!("interrupted before the consent")),
    };
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    if let Ok(text) = &outcome {
        let mut conn = pool.acquire().await?;
        record(
            &mut conn,
            &participant,
            serde_json::json!({"change": "enrolled", "outcome": text}),
        )
        .await?;
    }
    pool.close().await;
    outcome
}

/// Creates the participant when missing (no provider yet: loaded only once the consent is
/// stored) and sets their backfill start when one is given.
async fn prepare_participant(
    args: &EnrollArgs,
    pool: &sqlx::PgPool,
    participant: &ParticipantId,
) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    if let Err(wearhouse_core::Error::NotFound { .. }) =
        participants::get(&mut conn, participant).await
    {
        participants::upsert(
            &mut conn,
            &NewParticipant {
                participant_id: participant.clone(),
                timezone: args.timezone,
                provider: None,
                enrolled_at: None,
                study_id: args.study.clone(),
            },
        )
        .await?;
        record(
            &mut conn,
            participant,
            serde_json::json!({"change": "created", "study": args.study}),
        )
        .await?;
        tracing::info!(participant = %participant, timezone = %args.timezone, "participant created");
    }
    if let Some(from) = args.backfill_from {
        let change = participants::set_backfill(&mut conn, participant, Some(from)).await?;
        record(
            &mut conn,
            participant,
            serde_json::json!({"change": "backfill_from", "backfill_from": from,
                               "watermarks_moved": change.watermarks_moved}),
        )
        .await?;
    }
    Ok(())
}

/// Whether the ingest daemon answers on `listen`'s port (its `/health`, on this machine).
async fn daemon_serves(listen: SocketAddr) -> bool {
    let url = format!("http://127.0.0.1:{}/health", listen.port());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build();
    match client {
        Ok(c) => c
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success()),
        Err(_) => false,
    }
}

/// The consent through the running daemon: a single-use link it serves at `/consent/{token}`
/// on the redirect URI's origin, then a wait until the daemon has claimed it.
async fn through_daemon(
    args: &EnrollArgs,
    pool: &sqlx::PgPool,
    participant: &ParticipantId,
    redirect_uri: &str,
    shutdown: &CancellationToken,
) -> anyhow::Result<String> {
    prepare_participant(args, pool, participant).await?;
    let provider = match args.provider {
        OAuthProvider::Fitbit => "fitbit",
        OAuthProvider::GoogleHealth => "google-health",
    };
    let mut conn = pool.acquire().await?;
    let (link, token) = consent_links::create(
        &mut conn,
        &consent_links::NewLink {
            participant_id: participant.as_str(),
            provider,
            created_by: None,
            expires_at: chrono::Utc::now()
                + chrono::Duration::seconds(args.consent_timeout_secs as i64),
            allow_account_change: args.allow_account_change,
        },
    )
    .await?;
    record(
        &mut conn,
        participant,
        serde_json::json!({"change": "consent_link_created", "link_id": link.link_id,
                           "provider": provider}),
    )
    .await?;
    let mut url = Url::parse(redirect_uri)?;
    url.set_path(&format!("/consent/{token}"));
    url.set_query(None);
    println!(
        "The ingest daemon serves the consent callback; open this link in the participant's \
         browser to consent:\n{url}"
    );
    tracing::info!(participant = %participant, link_id = link.link_id, "waiting for the daemon to complete the consent");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.consent_timeout_secs);
    loop {
        let now = consent_links::get(&mut conn, participant.as_str(), link.link_id)
            .await?
            .context("the consent link disappeared")?;
        if now.used_at.is_some() {
            let p = participants::get(&mut conn, participant).await?;
            let text = format!(
                "participant {participant} is enrolled with {provider} (user {}, time zone {}) \
                 through the ingest daemon",
                p.provider_user_id.as_deref().unwrap_or("-"),
                p.timezone
            );
            record(
                &mut conn,
                participant,
                serde_json::json!({"change": "enrolled", "outcome": text}),
            )
            .await?;
            return Ok(text);
        }
        if now.revoked_at.is_some() {
            anyhow::bail!("the consent link was revoked before the participant consented");
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                anyhow::bail!("no consent within {} s; run the command again", args.consent_timeout_secs)
            }
            _ = shutdown.cancelled() => anyhow::bail!("interrupted before the consent"),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// Records a change to the participant in the audit trail, by the operating-system user.
async fn record(
    conn: &mut sqlx::PgConnection,
    participant: &ParticipantId,
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    let study = participants::get(conn, participant).await?.study_id;
    audit::append_cli(
        &mut *conn,
        audit::action::PARTICIPANT_CHANGED,
        Some(&study),
        &[participant.to_string()],
        detail,
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callback_listens_locally_for_a_local_redirect_and_everywhere_otherwise() {
        assert_eq!(
            listen_address("http://localhost:8080/callback").unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(
            listen_address("https://enrol.example.org/google/callback").unwrap(),
            "0.0.0.0:443".parse().unwrap()
        );
    }
}
