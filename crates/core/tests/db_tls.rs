//! TLS to the database: a `DATABASE_URL` with `sslmode=verify-full&sslrootcert=…` connects
//! only to a server whose certificate that CA signed for that host, and `sslmode=require`
//! refuses a server without TLS instead of falling back to plain text.
//!
//! The test starts its own PostgreSQL cluster with `ssl = on` and a CA and server certificate
//! made with the openssl command line, so the shared throwaway cluster stays as it is.

use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sqlx::{Connection, PgConnection};
use wearhouse_core::testing::pg_bin_dir;

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn check(what: &str, out: std::io::Result<Output>) {
    let out = out.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    check(
        &format!("openssl {}", args.join(" ")),
        Command::new("openssl").current_dir(dir).args(args).output(),
    );
}

/// A CA (`NAME-ca.pem`, `NAME-ca.key`) in `dir`.
fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} test CA"),
            "-keyout",
            &format!("{name}-ca.key"),
            "-out",
            &format!("{name}-ca.pem"),
        ],
    );
}

/// A server certificate for 127.0.0.1 and localhost signed by the CA `ca`: `server.pem`,
/// `server.key`.
fn server_certificate(dir: &Path, ca: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName = IP:127.0.0.1, DNS:localhost\nextendedKeyUsage = serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-days",
            "2",
            "-CA",
            &format!("{ca}-ca.pem"),
            "-CAkey",
            &format!("{ca}-ca.key"),
            "-CAcreateserial",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
}

/// Runs a PostgreSQL server program, as `postgres` when we are root.
fn pg(program: &str, args: &[&str]) -> std::io::Result<Output> {
    let path = pg_bin_dir().map_or_else(|| PathBuf::from(program), |d| d.join(program));
    if running_as_root() {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(path)
            .args(args)
            .output()
    } else {
        Command::new(path).args(args).output()
    }
}

/// A cluster with TLS on a free port; stopped when dropped.
struct TlsCluster {
    dir: PathBuf,
    port: u16,
}

impl TlsCluster {
    fn start(dir: &Path) -> TlsCluster {
        if running_as_root() {
            // The server runs as postgres: it must reach the folder and own its key.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            check(
                "chown",
                Command::new("chown")
                    .args(["postgres:postgres", "server.key", "server.pem", "."])
                    .current_dir(dir)
                    .output(),
            );
        }
        std::fs::set_permissions(
            dir.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let data = dir.join("data");
        check(
            "initdb",
            pg(
                "initdb",
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-locale",
                ],
            ),
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = TlsCluster {
            dir: dir.to_owned(),
            port,
        };
        cluster.pg_ctl_start(true);
        cluster
    }

    fn pg_ctl_start(&self, ssl: bool) {
        let folder = self.dir.to_str().unwrap();
        let port = self.port;
        let ssl = if ssl { "on" } else { "off" };
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={folder} \
             -c ssl={ssl} -c ssl_cert_file={folder}/server.pem \
             -c ssl_key_file={folder}/server.key -c fsync=off"
        );
        let log = self.dir.join("server.log");
        let data = self.dir.join("data");
        let started = pg(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        if !started.as_ref().is_ok_and(|o| o.status.success()) {
            panic!(
                "the test cluster did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
    }

    /// The same server, restarted with TLS off.
    fn restart_without_tls(&self) {
        self.stop();
        self.pg_ctl_start(false);
    }

    fn stop(&self) {
        let data = self.dir.join("data");
        let _ = pg(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"],
        );
    }

    fn url(&self, query: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?{query}",
            self.port
        )
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn verify_full_connects_over_tls_only_to_a_server_the_given_ca_vouches_for() {
    let dir = tempfile::Builder::new()
        .prefix("wearhouse-db-tls")
        .tempdir_in(std::env::temp_dir())
        .unwrap();
    let path = dir.path();
    ca(path, "right");
    ca(path, "wrong");
    server_certificate(path, "right");
    let cluster = TlsCluster::start(path);
    let root = |name: &str| path.join(format!("{name}-ca.pem")).display().to_string();

    // The right CA: connected, and the session is encrypted.
    let url = cluster.url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        root("right")
    ));
    let mut conn = PgConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("verify-full with the right CA: {e}"));
    let encrypted: bool =
        sqlx::query_scalar("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(encrypted, "the connection is not encrypted");

    // Another CA: refused, whatever the server says.
    let url = cluster.url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        root("wrong")
    ));
    let err = PgConnection::connect(&url)
        .await
        .expect_err("a server certificate of another CA was accepted");
    // rustls' verdict reaches us through the socket's I/O error.
    assert!(
        format!("{err:?}").contains("UnknownIssuer"),
        "not refused for its issuer: {err:?}"
    );

    // The same server without TLS: `require` fails instead of talking in plain text.
    conn.close().await.unwrap();
    cluster.restart_without_tls();
    let refused = PgConnection::connect(&cluster.url("sslmode=require")).await;
    let err = refused.expect_err("sslmode=require connected to a server without TLS");
    assert!(
        matches!(err, sqlx::Error::Tls(_)) && err.to_string().contains("does not support TLS"),
        "the error does not say TLS is missing: {err:?}"
    );
    // Without a demand for TLS the same server is reachable: the refusal above was TLS's.
    PgConnection::connect(&cluster.url("sslmode=disable"))
        .await
        .expect("plain connection")
        .close()
        .await
        .unwrap();
}
