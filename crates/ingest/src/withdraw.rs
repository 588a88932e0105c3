//! Withdrawal on the ingest side: the grant of a withdrawn participant is revoked at the
//! provider and its tokens deleted. The API only marks a participant withdrawn (its database
//! role may not read the tokens, and it holds no provider client), so the daemon sweeps
//! withdrawn participants that still have a grant, on start and then every minute or so;
//! `wearhouse-ingest participant withdraw` withdraws and revokes at once.
//!
//! A provider that cannot be reached keeps the tokens: they are the only way to revoke the
//! grant, and the next sweep tries again. Each revocation is counted
//! (`wearhouse_ingest_grant_revocations_total{provider,outcome}`) and recorded in the audit
//! trail.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::{Args, Subcommand};
use sqlx::{Connection as _, PgPool};
use tokio_util::sync::CancellationToken;
use wearhouse_core::ParticipantId;
use wearhouse_core::config::DatabaseArgs;
use wearhouse_core::store::audit::{self, Actor, Entry};
use wearhouse_core::store::lifecycle::{self, Withdrawal, action};
use wearhouse_core::store::locks;

use crate::metrics::IngestMetrics;
use crate::oauth::{OAuthError, TokenManager};
use crate::sources::registry::{self, ProviderArgs, SourceContext};

/// `wearhouse-ingest participant …`
#[derive(Debug, Subcommand)]
pub enum ParticipantCommand {
    /// Withdraw a participant: collection stops at once, the data collected so far stays,
    /// and the grant is revoked at the provider and its tokens deleted. Running it again for
    /// a withdrawn participant retries a revocation that failed.
    Withdraw(Box<WithdrawArgs>),
    /// Set the first local day the ingest fetches for a participant (history from before
    /// enrolment), or `--clear` it. An earlier start than before makes the next run fetch the
    /// earlier days.
    SetBackfill(crate::backfill::SetBackfillArgs),
}

/// Settings of `wearhouse-ingest participant withdraw`.
#[derive(Debug, Clone, Args)]
pub struct WithdrawArgs {
    /// The participant to withdraw.
    #[arg(long)]
    pub participant: String,

    /// Why (as the participant or the study gave it); kept with the withdrawal.
    #[arg(long)]
    pub reason: String,

    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub providers: ProviderArgs,
}

/// The token managers of the configured OAuth providers, by provider name.
#[derive(Clone, Default)]
pub struct Revokers {
    by_provider: BTreeMap<&'static str, TokenManager>,
}

impl Revokers {
    /// Every configured OAuth provider of this build.
    pub fn configured(args: &ProviderArgs, ctx: &SourceContext) -> anyhow::Result<Self> {
        let mut managers = Vec::new();
        if let Some(fitbit) = registry::fitbit(args, ctx)? {
            managers.push(fitbit.api().tokens().clone());
        }
        if let Some(google) = registry::google_health(args, ctx)? {
            managers.push(google.api().tokens().clone());
        }
        Ok(Self::from_managers(managers))
    }

    /// Exactly these managers.
    pub fn from_managers(managers: impl IntoIterator<Item = TokenManager>) -> Self {
        Revokers {
            by_provider: managers
                .into_iter()
                .map(|m| (m.client().config().provider, m))
                .collect(),
        }
    }
}

/// What happened to one participant's grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revoked {
    /// Providers whose grant was revoked and deleted.
    pub revoked: Vec<String>,
    /// Providers whose grant is still there, and why.
    pub failed: Vec<(String, String)>,
    /// A load of the participant was in progress (sweeps do not wait for it).
    pub busy: bool,
}

/// Whether to wait for a load of the participant in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    Yes,
    No,
}

/// Revokes and deletes every grant the participant holds, under the participant's ingest
/// lock so that no load is using the tokens meanwhile.
pub async fn revoke_grants(
    pool: &PgPool,
    revokers: &Revokers,
    metrics: &IngestMetrics,
    actor: &Actor,
    id: &ParticipantId,
    wait: Wait,
) -> anyhow::Result<Revoked> {
    let mut lock = pool.acquire().await?;
    match wait {
        Wait::Yes => locks::lock_ingest(&mut lock, id.as_str()).await?,
        Wait::No => {
            if !locks::try_lock_ingest(&mut lock, id.as_str()).await? {
                return Ok(Revoked {
                    busy: true,
                    ..Revoked::default()
                });
            }
        }
    }
    let result = revoke_locked(pool, revokers, metrics, actor, id).await;
    if !matches!(locks::unlock_ingest(&mut lock, id.as_str()).await, Ok(true)) {
        let _ = lock.close().await;
    }
    result
}

async fn revoke_locked(
    pool: &PgPool,
    revokers: &Revokers,
    metrics: &IngestMetrics,
    actor: &Actor,
    id: &ParticipantId,
) -> anyhow::Result<Revoked> {
    let mut out = Revoked::default();
    for provider in lifecycle::grants_of(pool, id).await? {
        let Some(manager) = revokers.by_provider.get(provider.as_str()) else {
            let why = format!("{provider} is not configured here (no client id)");
            tracing::warn!(participant = %id, %provider, "cannot revoke the grant: provider not configured");
            metrics.grant_revocation(&provider, "failed");
            out.failed.push((provider, why));
            continue;
        };
        match manager.revoke(id).await {
            // NotEnrolled: the row went meanwhile, nothing is left to revoke.
            Ok(()) | Err(OAuthError::NotEnrolled { .. }) => {}
            Err(e) => {
                tracing::warn!(participant = %id, %provider, error = %e, "revoking the grant failed; retried at the next sweep");
                metrics.grant_revocation(&provider, "failed");
                out.failed.push((provider, e.to_string()));
                continue;
            }
        }
        let mut tx = pool.begin().await?;
        lifecycle::delete_grant(&mut *tx, id, &provider).await?;
        audit::append(
            &mut *tx,
            &Entry {
                actor,
                action: action::GRANT_REVOKED,
                study_id: None,
                participant_ids: &[id.to_string()],
                request_id: None,
                client_addr: None,
                outcome: audit::outcome::OK,
                detail: serde_json::json!({"provider": provider}),
            },
        )
        .await?;
        tx.commit().await?;
        tracing::info!(participant = %id, %provider, "grant revoked at the provider and deleted");
        metrics.grant_revocation(&provider, "revoked");
        out.revoked.push(provider);
    }
    Ok(out)
}

/// What `participant withdraw` did.
#[derive(Debug, Clone)]
pub struct WithdrawReport {
    pub withdrawal: Withdrawal,
    /// False when the participant was already withdrawn.
    pub newly: bool,
    pub grants: Revoked,
}

/// Withdraws the participant (audited as the operating-system user) and revokes their grants,
/// waiting for a load in progress to finish first.
pub async fn withdraw(
    pool: &PgPool,
    revokers: &Revokers,
    metrics: &IngestMetrics,
    id: &ParticipantId,
    reason: &str,
) -> anyhow::Result<WithdrawReport> {
    let actor = Actor::cli();
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    let (withdrawal, newly) = lifecycle::withdraw(&mut tx, id, reason, &actor.label).await?;
    audit::append_cli(
        &mut *tx,
        action::WITHDRAWN,
        Some(&withdrawal.study_id),
        &[id.to_string()],
        serde_json::json!({"reason": reason, "already_withdrawn": !newly}),
    )
    .await?;
    tx.commit().await?;
    drop(conn);
    let grants = revoke_grants(pool, revokers, metrics, &actor, id, Wait::Yes).await?;
    Ok(WithdrawReport {
        withdrawal,
        newly,
        grants,
    })
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub revoked: usize,
    pub failed: usize,
    /// Participants being loaded, left for the next sweep.
    pub busy: usize,
}

/// The actor the daemon's revocations are recorded under.
pub fn daemon_actor() -> Actor {
    Actor {
        user_id: None,
        label: "wearhouse-ingest daemon".into(),
    }
}

/// Revokes the grants of every withdrawn participant that still holds one.
pub async fn sweep(
    pool: &PgPool,
    revokers: &Revokers,
    metrics: &IngestMetrics,
) -> anyhow::Result<SweepReport> {
    let actor = daemon_actor();
    let mut participants: Vec<String> = lifecycle::withdrawn_grants(pool)
        .await?
        .into_iter()
        .map(|g| g.participant_id)
        .collect();
    participants.dedup();
    let mut report = SweepReport::default();
    for raw in participants {
        let Ok(id) = ParticipantId::parse(&raw) else {
            tracing::warn!(participant = %raw, "withdrawn participant with an invalid id; skipped");
            continue;
        };
        let r = revoke_grants(pool, revokers, metrics, &actor, &id, Wait::No).await?;
        report.revoked += r.revoked.len();
        report.failed += r.failed.len();
        report.busy += usize::from(r.busy);
    }
    let pending = lifecycle::withdrawn_grants(pool).await?.len();
    metrics.set_revocations_pending(pending);
    if report != SweepReport::default() {
        tracing::info!(
            revoked = report.revoked,
            failed = report.failed,
            busy = report.busy,
            pending,
            "withdrawn participants' grants swept"
        );
    }
    Ok(report)
}

/// Sweeps on start and then every `every` until `shutdown` fires; a failed sweep is logged
/// and the next one tries again.
pub async fn sweep_forever(
    pool: PgPool,
    revokers: Revokers,
    metrics: IngestMetrics,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Err(e) = sweep(&pool, &revokers, &metrics).await {
            tracing::warn!(
                error = format!("{e:#}"),
                "revocation sweep failed; retried later"
            );
        }
    }
}

/// Runs `participant withdraw` and prints what happened; fails when a grant could not be
/// revoked (the daemon keeps trying).
pub async fn run(command: ParticipantCommand) -> anyhow::Result<String> {
    let args = match command {
        ParticipantCommand::Withdraw(args) => args,
        ParticipantCommand::SetBackfill(args) => return crate::backfill::run(&args).await,
    };
    let id = ParticipantId::parse(&args.participant)
        .map_err(|e| anyhow::anyhow!("invalid --participant {:?}: {e}", args.participant))?;
    anyhow::ensure!(!args.reason.trim().is_empty(), "--reason must not be empty");
    let pool =
        args.database.connect().await.map_err(|e| {
            anyhow::anyhow!("cannot connect to the database ({e}); check DATABASE_URL")
        })?;
    let metrics = IngestMetrics::unregistered();
    let ctx = SourceContext::prepare(pool.clone(), metrics.source.clone(), &args.providers).await?;
    let revokers = Revokers::configured(&args.providers, &ctx)?;
    let report = match withdraw(&pool, &revokers, &metrics, &id, args.reason.trim()).await {
        Ok(r) => r,
        Err(e) => match e.downcast_ref::<wearhouse_core::Error>() {
            Some(wearhouse_core::Error::NotFound { .. }) => {
                anyhow::bail!("there is no participant {}", id.as_str())
            }
            _ => return Err(e),
        },
    };
    pool.close().await;
    let mut out = if report.newly {
        format!(
            "participant {} withdrawn; collection stopped\n",
            id.as_str()
        )
    } else {
        format!(
            "participant {} was already withdrawn (since {})\n",
            id.as_str(),
            report
                .withdrawal
                .withdrawn_at
                .map_or_else(|| "an unrecorded time".to_owned(), |t| t.to_rfc3339())
        )
    };
    for provider in &report.grants.revoked {
        out.push_str(&format!("grant at {provider} revoked and deleted\n"));
    }
    if !report.grants.failed.is_empty() {
        let failures: Vec<String> = report
            .grants
            .failed
            .iter()
            .map(|(p, why)| format!("{p}: {why}"))
            .collect();
        anyhow::bail!(
            "{out}revoking failed ({}); the tokens are kept and the ingest daemon retries every \
             minute, or run this command again",
            failures.join("; ")
        );
    }
    if report.grants.revoked.is_empty() {
        out.push_str("no grant to revoke\n");
    }
    Ok(out)
}
