//! The audit trail: one append-only row per access to participant data and per change to who
//! may access it, each hash-chained over the one before (see the `audit_log` migration).

use chrono::{DateTime, Utc};
use futures::TryStreamExt as _;
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};

use crate::error::Result;

/// Actions, as stored.
pub mod action {
    pub const READ_SERIES: &str = "read_series";
    pub const EXPORT: &str = "export";
    pub const READ_PARTICIPANTS: &str = "read_participants";
    pub const READ_PARTICIPANT: &str = "read_participant";
    pub const IMPUTATION_REQUESTED: &str = "imputation_requested";
    pub const READ_IMPUTATION: &str = "read_imputation";
    pub const CONTACT_SENT: &str = "contact_sent";
    pub const LOGIN: &str = "login";
    pub const LOGIN_FAILED: &str = "login_failed";
    pub const LOGOUT: &str = "logout";
    pub const USER_CHANGED: &str = "user_changed";
    pub const STUDY_CHANGED: &str = "study_changed";
    pub const TOKEN_CHANGED: &str = "token_changed";
    pub const PARTICIPANT_CHANGED: &str = "participant_changed";
    pub const READ_AUDIT: &str = "read_audit";
    /// Every OAuth grant sealed again under a new key.
    pub const GRANT_KEY_ROTATED: &str = "grant_key_rotated";
}

/// Outcomes, as stored.
pub mod outcome {
    pub const OK: &str = "ok";
    /// The caller was refused (role or study).
    pub const DENIED: &str = "denied";
    pub const FAILED: &str = "failed";
}

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user_id: Option<i64>,
    /// E-mail, `token <name> of <e-mail>`, `cli <user>`, or the e-mail tried at a failed sign-in.
    pub label: String,
}

impl Actor {
    /// The operating-system user running a command-line change.
    pub fn cli() -> Actor {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into());
        Actor {
            user_id: None,
            label: format!("cli {user}"),
        }
    }
}

/// One row to append.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub actor: &'a Actor,
    pub action: &'a str,
    pub study_id: Option<&'a str>,
    pub participant_ids: &'a [String],
    pub request_id: Option<&'a str>,
    pub client_addr: Option<&'a str>,
    pub outcome: &'a str,
    pub detail: serde_json::Value,
}

/// Appends a row, in the caller's transaction when it runs in one (so a change and its record
/// commit together), and returns its id.
pub async fn append(db: impl PgExecutor<'_>, e: &Entry<'_>) -> Result<i64> {
    Ok(sqlx::query_scalar!(
        r#"select audit_append($1, $2, $3, $4, $5, $6, $7, $8, $9) as "id!""#,
        e.actor.user_id,
        e.actor.label,
        e.action,
        e.study_id,
        e.participant_ids,
        e.request_id,
        e.client_addr,
        e.outcome,
        e.detail
    )
    .fetch_one(db)
    .await?)
}

/// Appends a row for a command-line change, by the operating-system user (no request, no
/// client address).
pub async fn append_cli(
    db: impl PgExecutor<'_>,
    action: &str,
    study_id: Option<&str>,
    participant_ids: &[String],
    detail: serde_json::Value,
) -> Result<i64> {
    append(
        db,
        &Entry {
            actor: &Actor::cli(),
            action,
            study_id,
            participant_ids,
            request_id: None,
            client_addr: None,
            outcome: outcome::OK,
            detail,
        },
    )
    .await
}

/// A stored row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub audit_id: i64,
    pub at: DateTime<Utc>,
    pub actor_user_id: Option<i64>,
    pub actor: String,
    pub action: String,
    pub study_id: Option<String>,
    pub participant_ids: Vec<String>,
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
    pub outcome: String,
    pub detail: serde_json::Value,
    /// SHA-256 chained over the row before, hex.
    pub hash: String,
}

/// Which rows to read.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Rows whose actor label contains this (e.g. an e-mail).
    pub actor: Option<String>,
    pub participant: Option<String>,
    pub action: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Rows with a smaller id than this (the next page of a newest-first listing).
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// Rows matching the filter, newest first.
pub async fn list(conn: &mut PgConnection, f: &Filter) -> Result<Vec<Row>> {
    Ok(sqlx::query_as!(
        Row,
        r#"select audit_id, at, actor_user_id, actor, action, study_id, participant_ids,
                  request_id, client_addr, outcome, detail, encode(hash, 'hex') as "hash!"
           from audit_log
           where ($1::text is null or strpos(lower(actor), lower($1)) > 0)
             and ($2::text is null or participant_ids @> array[$2])
             and ($3::text is null or action = $3)
             and ($4::timestamptz is null or at >= $4)
             and ($5::timestamptz is null or at < $5)
             and ($6::bigint is null or audit_id < $6)
           order by audit_id desc limit $7"#,
        f.actor,
        f.participant,
        f.action,
        f.from,
        f.to,
        f.before_id,
        f.limit
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Rows checked.
    pub rows: u64,
    /// The last row's id and hash (hex): record them elsewhere to detect later removal of
    /// rows from the end.
    pub head: Option<(i64, String)>,
    /// The first row that does not match, and why.
    pub first_broken: Option<(i64, String)>,
}

/// Recomputes every row's hash in id order and checks that each row names the previous row's
/// hash: an altered row fails its own hash, a removed row fails the next one's link.
pub async fn verify(conn: &mut PgConnection) -> Result<Verification> {
    let mut rows = sqlx::query!(
        r#"select audit_id,
                  hash = audit_digest(prev_hash, audit_id, at, actor_user_id, actor, action,
                                      study_id, participant_ids, request_id, client_addr,
                                      outcome, detail) as "intact!",
                  prev_hash = coalesce(lag(hash) over (order by audit_id), '\x'::bytea)
                    as "linked!",
                  encode(hash, 'hex') as "hash!"
           from audit_log order by audit_id"#
    )
    .fetch(&mut *conn);
    let mut out = Verification {
        rows: 0,
        head: None,
        first_broken: None,
    };
    while let Some(r) = rows.try_next().await? {
        out.rows += 1;
        if out.first_broken.is_none() {
            if !r.linked {
                out.first_broken = Some((
                    r.audit_id,
                    "does not follow the row before it: a row before it was removed or altered"
                        .into(),
                ));
            } else if !r.intact {
                out.first_broken = Some((
                    r.audit_id,
                    "its contents do not match its hash: the row was altered".into(),
                ));
            }
        }
        out.head = Some((r.audit_id, r.hash));
    }
    Ok(out)
}
