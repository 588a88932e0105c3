//! The real `wearhouse-ingest` binary as a child process of a test.

use std::process::Stdio;

/// A port that was free a moment ago, for a child process to listen on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `cmd` and asserts it succeeded.
pub fn run_ok(mut cmd: std::process::Command) {
    let out = cmd.output().expect("run wearhouse-ingest");
    assert!(
        out.status.success(),
        "wearhouse-ingest failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The log lines a child process writes to its stdout, read as they come. A task drains the
/// pipe to the end, so the child never blocks on a full pipe while the test is busy elsewhere.
pub struct Logs(tokio::sync::mpsc::UnboundedReceiver<String>);

impl Logs {
    /// Reads the stdout of `child` (spawned with `Stdio::piped()`).
    pub fn of(child: &mut tokio::process::Child) -> Logs {
        use tokio::io::AsyncBufReadExt as _;
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send(line);
            }
        });
        Logs(rx)
    }

    /// Waits for the first line that contains `event` (at most a minute) and returns it.
    pub async fn until(&mut self, event: &str) -> String {
        let wait = async {
            while let Some(line) = self.0.recv().await {
                if line.contains(event) {
                    return line;
                }
            }
            panic!("the process ended without logging {event:?}");
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), wait)
            .await
            .unwrap_or_else(|_| panic!("no {event:?} logged within a minute"))
    }
}

/// Sends SIGTERM to `child` and waits for it to exit.
pub async fn terminate(child: &mut tokio::process::Child) -> std::process::ExitStatus {
    let pid = child.id().expect("the child is running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait().await.unwrap()
}

/// Starts `wearhouse-ingest daemon` on `port` with `extra` arguments. Its log lines say when it
/// listens, when its schedule is set (the last success restored before) and when a run ends.
pub fn daemon(database_url: &str, port: u16, extra: &[&str]) -> (tokio::process::Child, Logs) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wearhouse-ingest"))
        .args(["daemon", "--database-url", database_url])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env("WEARHOUSE_LOG", "info")
        .env("WEARHOUSE_LOG_FORMAT", "pretty")
        .env("WEARHOUSE_TOKEN_KEY_FILE", super::token_key_file())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the daemon");
    let logs = Logs::of(&mut child);
    (child, logs)
}
