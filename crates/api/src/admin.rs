//! The administration commands of `wearhouse-api`: studies, users and their roles and
//! studies, API tokens, and checking the audit trail. Each change is recorded in the audit
//! trail in the transaction that makes it, with the operating-system user as the actor.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::Utc;
use clap::Subcommand;
use sqlx::{Connection as _, PgConnection};
use wearhouse_core::Metric;
use wearhouse_core::config::DatabaseArgs;
use wearhouse_core::store::audit;
use wearhouse_core::store::users::{self, NewUser, Role};
use wearhouse_core::store::{collection, credentials, studies};

use crate::auth::password;

/// `wearhouse-api study …`
#[derive(Debug, Subcommand)]
pub enum StudyCommand {
    /// Create a study.
    Add {
        /// Its id: letters, digits, '_', '.' or '-'.
        #[arg(long)]
        id: String,
        /// Its name, as people read it.
        #[arg(long)]
        name: String,
    },
    /// List the studies with their participant counts.
    List,
    /// Set the metrics a study collects: the ingest fetches only these for its participants
    /// and their consent asks only the scopes these need.
    SetMetrics {
        /// The study's id.
        #[arg(long)]
        study: String,
        /// Metric names, comma separated (e.g. heart_rate,steps; `GET /metrics-catalog` lists
        /// them).
        #[arg(
            long,
            value_delimiter = ',',
            required_unless_present = "all",
            conflicts_with = "all"
        )]
        metrics: Vec<Metric>,
        /// Every metric its participants' providers offer (the default for a new study).
        #[arg(long)]
        all: bool,
    },
}

/// `wearhouse-api user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. Without --password-file a password is generated and printed once.
    Add {
        #[arg(long)]
        email: String,
        /// admin, coordinator, researcher or analyst.
        #[arg(long)]
        role: Role,
        /// A study the user works on (repeat for several; an admin sees all studies anyway).
        #[arg(long = "study")]
        studies: Vec<String>,
        /// A file holding the password (its first line).
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// No password: the user signs in only through single sign-on.
        #[arg(long, conflicts_with = "password_file")]
        sso_only: bool,
    },
    /// Create the first admin unless that user exists; the password comes from the file.
    /// For a stack's first start: running it again changes nothing.
    EnsureAdmin {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password_file: PathBuf,
    },
    /// List users, their roles and studies.
    List,
    /// Disable a user: their sessions end at once and their tokens stop working.
    Disable {
        #[arg(long)]
        email: String,
    },
    /// Enable a disabled user again.
    Enable {
        #[arg(long)]
        email: String,
    },
    /// Grant studies, and optionally change the role.
    Grant {
        #[arg(long)]
        email: String,
        #[arg(long = "study")]
        studies: Vec<String>,
        #[arg(long)]
        role: Option<Role>,
    },
    /// Take studies from a user.
    Revoke {
        #[arg(long)]
        email: String,
        #[arg(long = "study", required = true)]
        studies: Vec<String>,
    },
    /// Set a new password from a file (or generate one and print it once).
    SetPassword {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
}

/// `wearhouse-api token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user; it is printed once, as the last line of output.
    Create {
        #[arg(long)]
        email: String,
        /// A name to tell it apart, e.g. "notebook".
        #[arg(long)]
        name: String,
        /// Days until it expires (default: never).
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// List tokens (never their secrets), of one user or all.
    List {
        #[arg(long)]
        email: Option<String>,
    },
    /// Revoke a user's token by name.
    Revoke {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
    },
}

/// `wearhouse-api audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain and report the first altered or removed row (exit status 1).
    Verify,
}

async fn connect(database: &DatabaseArgs) -> anyhow::Result<PgConnection> {
    let options = database
        .connect_options()
        .context("invalid database settings; check DATABASE_URL or --database-url")?;
    PgConnection::connect_with(&options)
        .await
        .context("cannot connect to the database; check DATABASE_URL and that it is running")
}

async fn record(
    conn: &mut PgConnection,
    action: &str,
    study: Option<&str>,
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    audit::append_cli(&mut *conn, action, study, &[], detail).await?;
    Ok(())
}

fn read_password(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the password file {}", path.display()))?;
    let password = text.lines().next().unwrap_or("").to_owned();
    password::check_strength(&password)
        .with_context(|| format!("in the password file {}", path.display()))?;
    Ok(password)
}

/// A password from the file, or a generated one (and whether it was generated).
fn password_from(file: Option<&Path>) -> anyhow::Result<(String, bool)> {
    match file {
        Some(path) => Ok((read_password(path)?, false)),
        None => Ok((password::generate(), true)),
    }
}

async fn hash(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || password::hash(&password)).await?
}

/// Runs a `study` command.
pub async fn study(database: &DatabaseArgs, command: StudyCommand) -> anyhow::Result<()> {
    let mut conn = connect(database).await?;
    match command {
        StudyCommand::Add { id, name } => {
            let mut tx = conn.begin().await?;
            let study = studies::add(&mut tx, &id, &name).await?;
            record(
                &mut tx,
                audit::action::STUDY_CHANGED,
                Some(&study.study_id),
                serde_json::json!({"change": "added", "name": study.name}),
            )
            .await?;
            tx.commit().await?;
            println!("study {} added: {}", study.study_id, study.name);
        }
        StudyCommand::List => {
            println!("{:<24} {:>12}  name", "study", "participants");
            for s in studies::list(&mut conn).await? {
                println!("{:<24} {:>12}  {}", s.study_id, s.participants, s.name);
            }
        }
        StudyCommand::SetMetrics {
            study,
            mut metrics,
            all,
        } => {
            metrics.sort_by_key(|m| m.name());
            metrics.dedup();
            let metrics = (!all).then_some(metrics);
            let names: Option<Vec<&str>> = metrics
                .as_ref()
                .map(|m| m.iter().map(|m| m.name()).collect());
            let mut tx = conn.begin().await?;
            if !studies::missing(&mut tx, std::slice::from_ref(&study))
                .await?
                .is_empty()
            {
                anyhow::bail!(
                    "there is no study {study:?}; `wearhouse-api study list` shows the studies"
                );
            }
            let previous = collection::study_metrics(&mut *tx, &study).await?;
            collection::set_study_metrics(&mut *tx, &study, metrics.as_deref()).await?;
            record(
                &mut tx,
                audit::action::STUDY_CHANGED,
                Some(&study),
                serde_json::json!({"change": "metrics", "metrics": names, "previous": previous}),
            )
            .await?;
            tx.commit().await?;
            match names {
                Some(n) => println!("study {study} collects {}", n.join(", ")),
                None => println!("study {study} collects every metric its providers offer"),
            }
        }
    }
    Ok(())
}

/// Runs a `user` command.
pub async fn user(database: &DatabaseArgs, command: UserCommand) -> anyhow::Result<()> {
    let mut conn = connect(database).await?;
    match command {
        UserCommand::Add {
            email,
            role,
            studies,
            password_file,
            sso_only,
        } => {
            let (password, generated) = if sso_only {
                (None, false)
            } else {
                let (p, g) = password_from(password_file.as_deref())?;
                (Some(p), g)
            };
            let hashed = match &password {
                Some(p) => Some(hash(p.clone()).await?),
                None => None,
            };
            let mut tx = conn.begin().await?;
            let user = users::add(
                &mut tx,
                &NewUser {
                    email: &email,
                    role,
                    studies: &studies,
                    password_hash: hashed.as_deref(),
                },
            )
            .await?;
            record(
                &mut tx,
                audit::action::USER_CHANGED,
                None,
                serde_json::json!({"change": "added", "user": user.email, "role": role, "studies": user.studies}),
            )
            .await?;
            tx.commit().await?;
            println!(
                "user {} added as {} (studies: {})",
                user.email,
                user.role,
                list_or_none(&user.studies)
            );
            if generated && let Some(p) = password {
                println!("generated password (shown only now):");
                println!("{p}");
            }
        }
        UserCommand::EnsureAdmin {
            email,
            password_file,
        } => {
            let password = read_password(&password_file)?;
            if let Some(user) = users::by_email(&mut conn, &email).await? {
                println!("user {} exists ({}); unchanged", user.email, user.role);
                return Ok(());
            }
            let hashed = hash(password).await?;
            let mut tx = conn.begin().await?;
            let user = users::add(
                &mut tx,
                &NewUser {
                    email: &email,
                    role: Role::Admin,
                    studies: &[],
                    password_hash: Some(&hashed),
                },
            )
            .await?;
            record(
                &mut tx,
                audit::action::USER_CHANGED,
                None,
                serde_json::json!({"change": "added", "user": user.email, "role": Role::Admin}),
            )
            .await?;
            tx.commit().await?;
            println!(
                "admin {} created; the password is in {}",
                user.email,
                password_file.display()
            );
        }
        UserCommand::List => {
            println!(
                "{:<36} {:<12} {:<9} {:<22} studies",
                "email", "role", "state", "last sign-in"
            );
            for u in users::list(&mut conn).await? {
                let state = if u.disabled_at.is_some() {
                    "disabled"
                } else {
                    "active"
                };
                let last = u.last_login_at.map_or("never".to_owned(), |t| {
                    t.format("%Y-%m-%d %H:%M UTC").to_string()
                });
                println!(
                    "{:<36} {:<12} {:<9} {:<22} {}",
                    u.email,
                    u.role.name(),
                    state,
                    last,
                    list_or_none(&u.studies)
                );
            }
        }
        UserCommand::Disable { email } => set_disabled(&mut conn, &email, true).await?,
        UserCommand::Enable { email } => set_disabled(&mut conn, &email, false).await?,
        UserCommand::Grant {
            email,
            studies,
            role,
        } => {
            if studies.is_empty() && role.is_none() {
                anyhow::bail!("give --study S (repeatable) and/or --role R");
            }
            let mut tx = conn.begin().await?;
            let user = users::require(&mut tx, &email).await?;
            users::grant(&mut tx, user.user_id, &studies).await?;
            if let Some(role) = role {
                users::set_role(&mut tx, user.user_id, role).await?;
            }
            record(
                &mut tx,
                audit::action::USER_CHANGED,
                None,
                serde_json::json!({"change": "granted", "user": user.email, "studies": studies, "role": role}),
            )
            .await?;
            let user = users::get(&mut tx, user.user_id).await?;
            tx.commit().await?;
            print_user(&user);
        }
        UserCommand::Revoke { email, studies } => {
            let mut tx = conn.begin().await?;
            let user = users::require(&mut tx, &email).await?;
            users::revoke(&mut tx, user.user_id, &studies).await?;
            record(
                &mut tx,
                audit::action::USER_CHANGED,
                None,
                serde_json::json!({"change": "revoked", "user": user.email, "studies": studies}),
            )
            .await?;
            let user = users::get(&mut tx, user.user_id).await?;
            tx.commit().await?;
            print_user(&user);
        }
        UserCommand::SetPassword {
            email,
            password_file,
        } => {
            let (password, generated) = password_from(password_file.as_deref())?;
            let hashed = hash(password.clone()).await?;
            let mut tx = conn.begin().await?;
            let user = users::require(&mut tx, &email).await?;
            users::set_password_hash(&mut tx, user.user_id, &hashed).await?;
            record(
                &mut tx,
                audit::action::USER_CHANGED,
                None,
                serde_json::json!({"change": "password set", "user": user.email}),
            )
            .await?;
            tx.commit().await?;
            println!("password of {} set", user.email);
            if generated {
                println!("generated password (shown only now):");
                println!("{password}");
            }
        }
    }
    Ok(())
}

/// Disables or enables a user.
async fn set_disabled(conn: &mut PgConnection, email: &str, disabled: bool) -> anyhow::Result<()> {
    let mut tx = conn.begin().await?;
    let user = users::require(&mut tx, email).await?;
    users::set_disabled(&mut tx, user.user_id, disabled).await?;
    let change = if disabled { "disabled" } else { "enabled" };
    record(
        &mut tx,
        audit::action::USER_CHANGED,
        None,
        serde_json::json!({"change": change, "user": user.email}),
    )
    .await?;
    tx.commit().await?;
    println!("user {} {change}", user.email);
    Ok(())
}

fn print_user(user: &users::User) {
    println!(
        "user {}: {} (studies: {})",
        user.email,
        user.role,
        list_or_none(&user.studies)
    );
}

fn list_or_none(studies: &[String]) -> String {
    if studies.is_empty() {
        "none".into()
    } else {
        studies.join(", ")
    }
}

/// Runs a `token` command.
pub async fn token(database: &DatabaseArgs, command: TokenCommand) -> anyhow::Result<()> {
    let mut conn = connect(database).await?;
    match command {
        TokenCommand::Create {
            email,
            name,
            expires_in_days,
        } => {
            let expires_at = expires_in_days.map(|d| Utc::now() + chrono::Duration::days(d.into()));
            let mut tx = conn.begin().await?;
            let user = users::require(&mut tx, &email).await?;
            if user.disabled_at.is_some() {
                anyhow::bail!("user {} is disabled; enable them first", user.email);
            }
            let (token, secret) =
                credentials::create_token(&mut tx, user.user_id, &name, expires_at).await?;
            record(
                &mut tx,
                audit::action::TOKEN_CHANGED,
                None,
                serde_json::json!({"change": "created", "user": user.email, "name": token.name, "expires_at": token.expires_at}),
            )
            .await?;
            tx.commit().await?;
            let until = token.expires_at.map_or("never expires".to_owned(), |t| {
                format!("expires {}", t.to_rfc3339())
            });
            println!(
                "token {:?} for {} ({}, {until}); it is shown only now:",
                token.name, user.email, user.role
            );
            println!("{secret}");
        }
        TokenCommand::List { email } => {
            let user = match email {
                Some(e) => Some(users::require(&mut conn, &e).await?.user_id),
                None => None,
            };
            println!(
                "{:<32} {:<20} {:<10} {:<22} last used",
                "email", "name", "state", "expires"
            );
            let now = Utc::now();
            for t in credentials::tokens(&mut conn, user).await? {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else if t.expires_at.is_some_and(|e| e <= now) {
                    "expired"
                } else {
                    "live"
                };
                let fmt = |d: Option<chrono::DateTime<Utc>>, none: &str| {
                    d.map_or(none.to_owned(), |t| {
                        t.format("%Y-%m-%d %H:%M UTC").to_string()
                    })
                };
                println!(
                    "{:<32} {:<20} {:<10} {:<22} {}",
                    t.email,
                    t.name,
                    state,
                    fmt(t.expires_at, "never"),
                    fmt(t.last_used_at, "never")
                );
            }
        }
        TokenCommand::Revoke { email, name } => {
            let mut tx = conn.begin().await?;
            let user = users::require(&mut tx, &email).await?;
            credentials::revoke_token(&mut tx, user.user_id, &name).await?;
            record(
                &mut tx,
                audit::action::TOKEN_CHANGED,
                None,
                serde_json::json!({"change": "revoked", "user": user.email, "name": name}),
            )
            .await?;
            tx.commit().await?;
            println!("token {name:?} of {} revoked", user.email);
        }
    }
    Ok(())
}

/// Runs an `audit` command; `Ok(false)` when the chain is broken.
pub async fn audit(database: &DatabaseArgs, command: AuditCommand) -> anyhow::Result<bool> {
    let mut conn = connect(database).await?;
    match command {
        AuditCommand::Verify => {
            let v = audit::verify(&mut conn).await?;
            match (&v.first_broken, &v.head) {
                (Some((id, why)), _) => {
                    println!(
                        "audit trail BROKEN at row {id}: {why} ({} rows checked)",
                        v.rows
                    );
                    Ok(false)
                }
                (None, Some((id, hash))) => {
                    println!(
                        "audit trail intact: {} rows; last row {id}, hash {hash}",
                        v.rows
                    );
                    println!(
                        "(keep the last row's id and hash elsewhere: a later check that no longer reaches them shows rows removed from the end)"
                    );
                    Ok(true)
                }
                (None, None) => {
                    println!("audit trail empty");
                    Ok(true)
                }
            }
        }
    }
}
