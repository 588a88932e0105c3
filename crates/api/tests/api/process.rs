//! The real `wearhouse-api serve` as a child process of a test, for faults that only a process
//! shows: SIGKILL in the middle of a request, SIGTERM while answers are still streaming.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncBufReadExt as _;
use tokio::process::{Child, Command};

use crate::support::admin_headers;

/// A running `wearhouse-api serve` on a port of its choosing.
pub struct ApiProcess {
    pub child: Child,
    pub base: String,
    pub client: reqwest::Client,
}

impl ApiProcess {
    /// Starts `wearhouse-api serve` against `database_url` with `extra` arguments and waits
    /// until it listens (its "serving the API" log line, which names the address).
    pub async fn serve(database_url: &str, extra: &[&str]) -> ApiProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wearhouse-api"))
            .args(["serve", "--database-url", database_url])
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("WEARHOUSE_LOG", "info")
            .env("WEARHOUSE_LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start wearhouse-api serve");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let listening = async {
            while let Some(line) = lines.next_line().await.unwrap() {
                let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if event["message"] == "serving the API" {
                    return event["address"].as_str().map(str::to_owned);
                }
            }
            None
        };
        let address = tokio::time::timeout(Duration::from_secs(60), listening)
            .await
            .ok()
            .flatten()
            .expect("the API never said where it listens");
        // Reads on to the end, so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        ApiProcess {
            child,
            base: format!("http://{address}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .default_headers(admin_headers())
                .build()
                .unwrap(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> String {
        self.child.id().expect("the API is running").to_string()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Sends `signal` (`KILL`, `TERM`) to the process.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.pid()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }
}
