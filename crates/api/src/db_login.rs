//! `wearhouse-api db grafana-login`: the login Grafana's datasource connects with, a member of
//! the read-only `wearhouse_grafana` role the migrations create, so Grafana never holds the
//! database owner's password.
//!
//! The password is sent as a SCRAM-SHA-256 verifier computed here (as `psql`'s `\password`
//! does), so it reaches neither the server's statement log nor `pg_stat_activity`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::Subcommand;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use sqlx::Connection as _;
use wearhouse_core::config::DatabaseArgs;

/// The iteration count PostgreSQL uses by default (`scram_iterations`).
const SCRAM_ITERATIONS: u32 = 4096;

/// `wearhouse-api db …`
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create or update the login Grafana's datasource uses: a member of the read-only
    /// `wearhouse_grafana` role, with the password in the file (its first line, printable
    /// ASCII). Running it again sets the password again.
    GrafanaLogin {
        /// Name of the login role.
        #[arg(
            long,
            env = "WEARHOUSE_GRAFANA_DB_USER",
            default_value = "wearhouse_grafana_login"
        )]
        user: String,
        /// File whose first line is the password.
        #[arg(long)]
        password_file: PathBuf,
    },
}

/// Runs a `db` command.
pub async fn run(database: &DatabaseArgs, command: DbCommand) -> anyhow::Result<()> {
    match command {
        DbCommand::GrafanaLogin {
            user,
            password_file,
        } => {
            let password = read_password(&password_file)?;
            grafana_login(database, &user, &password).await?;
            println!("login {user} (member of wearhouse_grafana) is ready");
            Ok(())
        }
    }
}

fn read_password(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the password file {}", path.display()))?;
    let password = text.lines().next().unwrap_or("").to_owned();
    // PostgreSQL normalises non-ASCII passwords (SASLprep) before hashing; printable ASCII
    // is left as it is, so the verifier computed here is the one the server expects.
    anyhow::ensure!(
        password.len() >= 12 && password.bytes().all(|b| (0x21..0x7f).contains(&b)),
        "the password in {} must be at least 12 printable ASCII characters without spaces",
        path.display()
    );
    Ok(password)
}

/// Creates `user` (LOGIN, member of `wearhouse_grafana`) or updates its password.
pub async fn grafana_login(
    database: &DatabaseArgs,
    user: &str,
    password: &str,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        !user.is_empty() && user != "wearhouse_grafana",
        "--user must name a login of its own, not the wearhouse_grafana role"
    );
    let options = database
        .connect_options()
        .context("invalid database settings; check DATABASE_URL or --database-url")?;
    let mut conn = sqlx::PgConnection::connect_with(&options)
        .await
        .context("cannot connect to the database; check DATABASE_URL and that it is running")?;
    let verifier = scram_verifier(password, SCRAM_ITERATIONS);
    let exists: bool =
        sqlx::query_scalar("select exists (select from pg_roles where rolname = $1)")
            .bind(user)
            .fetch_one(&mut conn)
            .await?;
    // Role names and passwords cannot be bind parameters in DDL; format('%I', '%L') quotes them.
    let statement: String = sqlx::query_scalar(if exists {
        "select format('alter role %I with login password %L', $1::text, $2::text)"
    } else {
        "select format('create role %I with login password %L', $1::text, $2::text)"
    })
    .bind(user)
    .bind(&verifier)
    .fetch_one(&mut conn)
    .await?;
    sqlx::raw_sql(&statement)
        .execute(&mut conn)
        .await
        .with_context(|| format!("cannot create or update the login {user}"))?;
    let grant: String =
        sqlx::query_scalar("select format('grant wearhouse_grafana to %I', $1::text)")
            .bind(user)
            .fetch_one(&mut conn)
            .await?;
    sqlx::raw_sql(&grant)
        .execute(&mut conn)
        .await
        .with_context(|| format!("cannot make {user} a member of wearhouse_grafana"))?;
    conn.close().await?;
    Ok(())
}

/// PostgreSQL's stored form of a SCRAM-SHA-256 password:
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (RFC 5802, RFC 7677).
pub fn scram_verifier(password: &str, iterations: u32) -> String {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    scram_verifier_with_salt(password, &salt, iterations)
}

fn scram_verifier_with_salt(password: &str, salt: &[u8], iterations: u32) -> String {
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut salted);
    let hmac = |key: &[u8], msg: &[u8]| {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(msg);
        mac.finalize().into_bytes()
    };
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac(&salted, b"Server Key");
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key),
        STANDARD.encode(server_key)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verifier_is_the_one_postgresql_computes() {
        // RFC 7677's example password and salt; the keys computed independently (Python's
        // hashlib.pbkdf2_hmac and hmac), as PostgreSQL derives them.
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let v = scram_verifier_with_salt("pencil", &salt, 4096);
        assert_eq!(
            v,
            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
        );
    }

    #[test]
    fn each_verifier_gets_its_own_salt() {
        assert_ne!(
            scram_verifier("a-password-1", 4096),
            scram_verifier("a-password-1", 4096)
        );
    }
}
