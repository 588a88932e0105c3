//! `wearhouse-api participant …`: erasing a participant (with the id typed again as
//! confirmation) and writing a participant's archive to a file. Both are recorded in the audit
//! trail with the operating-system user as the actor.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use futures::StreamExt as _;
use tokio::io::AsyncWriteExt as _;
use wearhouse_core::config::DatabaseArgs;
use wearhouse_core::store::audit::{self, Actor};
use wearhouse_core::store::lifecycle::{self, action, export};
use wearhouse_core::store::{self, participants};
use wearhouse_core::{ErrorKind, ParticipantId};

/// `wearhouse-api participant …`
#[derive(Debug, Subcommand)]
pub enum ParticipantCommand {
    /// Erase a participant everywhere: samples, rollups, imputed values, adherence, ingest
    /// state, grants, contact requests and the participant record. Irreversible; the audit
    /// trail keeps that it happened (id, who, when, rows per table). Withdraw the participant
    /// first (`wearhouse-ingest participant withdraw`) so that the grant is revoked.
    Erase {
        /// The participant to erase.
        #[arg(long)]
        participant: String,
        /// The participant id typed again, to confirm.
        #[arg(long)]
        confirm: String,
    },
    /// Write a participant's whole record to a zip archive: raw samples per metric, imputed
    /// values, adherence days, the participant record and a manifest with SHA-256 per file.
    Export {
        /// The participant to export.
        #[arg(long)]
        participant: String,
        /// The archive to write (e.g. P001.zip); an existing file is replaced.
        #[arg(long)]
        out: PathBuf,
    },
}

fn parse(raw: &str) -> anyhow::Result<ParticipantId> {
    ParticipantId::parse(raw).with_context(|| format!("invalid --participant {raw:?}"))
}

/// Runs a `participant` command.
pub async fn run(database: &DatabaseArgs, command: ParticipantCommand) -> anyhow::Result<()> {
    match command {
        ParticipantCommand::Erase {
            participant,
            confirm,
        } => {
            let id = parse(&participant)?;
            anyhow::ensure!(
                confirm == id.as_str(),
                "the confirmation does not match: pass --confirm {} to erase participant {}",
                id.as_str(),
                id.as_str()
            );
            let pool = database.connect().await.context(
                "cannot connect to the database; check DATABASE_URL and that it is running",
            )?;
            let mut conn = pool.acquire().await?;
            let backend = store::detect_backend(&mut conn).await?;
            let erased =
                match lifecycle::erase(&pool, &backend, &id, &Actor::cli(), None, None).await {
                    Ok(e) => e,
                    Err(e) if e.kind() == ErrorKind::NotFound => {
                        anyhow::bail!("there is no participant {}", id.as_str())
                    }
                    Err(e) if e.kind() == ErrorKind::InvalidInput => {
                        audit::append_cli(
                            &mut *conn,
                            action::ERASE_REFUSED,
                            None,
                            &[id.to_string()],
                            serde_json::json!({"reason": e.to_string()}),
                        )
                        .await?;
                        anyhow::bail!("{}", refusal(&e))
                    }
                    Err(e) => return Err(e).context("erasing failed"),
                };
            println!(
                "participant {} erased; rows deleted:",
                erased.participant_id
            );
            for (table, n) in erased.rows.iter().filter(|(_, n)| **n > 0) {
                println!("  {table:<20} {n}");
            }
            pool.close().await;
            Ok(())
        }
        ParticipantCommand::Export { participant, out } => {
            let id = parse(&participant)?;
            let pool = database.connect().await.context(
                "cannot connect to the database; check DATABASE_URL and that it is running",
            )?;
            let mut conn = pool.acquire().await?;
            let p = match participants::get(&mut conn, &id).await {
                Ok(p) => p,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    anyhow::bail!("there is no participant {}", id.as_str())
                }
                Err(e) => return Err(e.into()),
            };
            audit::append_cli(
                &mut *conn,
                action::EXPORTED,
                Some(&p.study_id),
                &[id.to_string()],
                serde_json::json!({"format": "zip", "file": out.display().to_string()}),
            )
            .await?;
            drop(conn);
            // Written next to the target and renamed at the end, so a failed export never
            // leaves a file that looks complete.
            let partial = out.with_extension("zip.partial");
            let mut file = tokio::fs::File::create(&partial)
                .await
                .with_context(|| format!("cannot create {}", partial.display()))?;
            let mut stream = Box::pin(export::archive(pool.clone(), id.clone()));
            let mut bytes = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tokio::fs::remove_file(&partial).await;
                        return Err(e).context("the export failed");
                    }
                };
                bytes += chunk.len() as u64;
                file.write_all(&chunk)
                    .await
                    .with_context(|| format!("cannot write {}", partial.display()))?;
            }
            file.sync_all().await?;
            tokio::fs::rename(&partial, &out)
                .await
                .with_context(|| format!("cannot rename to {}", out.display()))?;
            println!(
                "participant {} exported to {} ({bytes} bytes)",
                id.as_str(),
                out.display()
            );
            pool.close().await;
            Ok(())
        }
    }
}

/// The database's refusal, without the parameter prefix the HTTP answer carries.
fn refusal(e: &wearhouse_core::Error) -> String {
    match e {
        wearhouse_core::Error::Invalid { message, .. } => message.clone(),
        other => other.to_string(),
    }
}
