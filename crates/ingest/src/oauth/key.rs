//! The key participants' grants are sealed under (`WEARHOUSE_TOKEN_KEY_FILE`), loaded once per
//! command, and the start-up step that seals grants stored before encryption.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use sqlx::PgPool;
use wearhouse_core::config::DatabaseArgs;
use wearhouse_core::crypto::TokenKey;
use wearhouse_core::store::{audit, grants};

/// Where the grant key comes from.
#[derive(Debug, Clone, Args)]
pub struct TokenKeyArgs {
    /// File holding the key participants' OAuth grants are encrypted under: 32 random bytes
    /// written as 64 hex digits or as base64 (e.g. `openssl rand -hex 32 > token-key`).
    /// Required when Fitbit or Google Health is configured. Back it up with the database:
    /// without it every participant has to consent again.
    #[arg(long, env = "WEARHOUSE_TOKEN_KEY_FILE")]
    pub token_key_file: Option<PathBuf>,
}

impl TokenKeyArgs {
    /// The key, or `None` when no file is configured.
    pub fn load(&self) -> anyhow::Result<Option<TokenKey>> {
        let Some(path) = &self.token_key_file else {
            return Ok(None);
        };
        TokenKey::load(path)
            .map(Some)
            .context("invalid WEARHOUSE_TOKEN_KEY_FILE (--token-key-file)")
    }
}

/// Seals the grants stored in plain text before encryption, so none survives a start; without
/// a key that is an error if any is left.
pub async fn seal_plain_grants(pool: &PgPool, key: Option<&TokenKey>) -> anyhow::Result<u64> {
    let mut tx = pool.begin().await?;
    let sealed = match key {
        Some(key) => grants::seal_plain(&mut tx, key).await?,
        None => {
            let plain = grants::count_plain(&mut tx).await?;
            anyhow::ensure!(
                plain == 0,
                "{plain} OAuth grant(s) are stored in plain text; set WEARHOUSE_TOKEN_KEY_FILE \
                 (--token-key-file) so they are encrypted"
            );
            0
        }
    };
    tx.commit().await?;
    if sealed > 0 {
        tracing::info!(sealed, "grants stored in plain text are now encrypted");
    }
    Ok(sealed)
}

/// Settings of `wearhouse-ingest rotate-token-key`.
#[derive(Debug, Clone, Args)]
pub struct RotateKeyArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// The key file the grants are sealed under now (hex or base64, as for
    /// WEARHOUSE_TOKEN_KEY_FILE).
    #[arg(long)]
    pub old_key_file: PathBuf,

    /// The key file to seal them under; point WEARHOUSE_TOKEN_KEY_FILE at it once the command
    /// succeeded.
    #[arg(long)]
    pub new_key_file: PathBuf,
}

/// Seals every grant again under the new key, in one transaction (all or nothing), audited;
/// returns the report line.
pub async fn rotate(args: &RotateKeyArgs) -> anyhow::Result<String> {
    let old = TokenKey::load(&args.old_key_file).context("invalid --old-key-file")?;
    let new = TokenKey::load(&args.new_key_file).context("invalid --new-key-file")?;
    anyhow::ensure!(
        old.id() != new.id(),
        "--old-key-file and --new-key-file hold the same key ({})",
        old.id()
    );
    let pool = args.database.connect().await?;
    let mut tx = pool.begin().await?;
    let count = grants::rotate(&mut tx, &old, &new)
        .await
        .context("nothing was changed")?;
    audit::append_cli(
        &mut *tx,
        audit::action::GRANT_KEY_ROTATED,
        None,
        &[],
        serde_json::json!({"from_key": old.id(), "to_key": new.id(), "grants": count}),
    )
    .await?;
    tx.commit().await?;
    pool.close().await;
    Ok(format!(
        "{count} grant(s) re-encrypted from key {} to key {}; set WEARHOUSE_TOKEN_KEY_FILE to {} \
         and restart the ingest",
        old.id(),
        new.id(),
        args.new_key_file.display()
    ))
}
