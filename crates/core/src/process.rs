//! The life of a service process, the same in every binary: [`init_telemetry`] sets up
//! structured logs once, and one [`Shutdown`] (a cancellation token and a task tracker) is
//! cancelled by SIGTERM or SIGINT. Servers stop accepting and drain, workers finish the item
//! in hand, and the binary waits for the tracked tasks (for a grace period at most) before it
//! closes the pool.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::TaskTracker;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::{LogFormat, TelemetryArgs};

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogOutput {
    /// Standard output: services, whose standard output is their log.
    Stdout,
    /// Standard error: commands whose standard output carries their result.
    Stderr,
}

/// Installs the global tracing subscriber: the `--log` filter (EnvFilter syntax; an invalid one
/// falls back to `info`) and `--log-format` lines to `output`. Calling it twice is harmless
/// (the second call keeps the first subscriber), so tests and binaries can both call it.
pub fn init_telemetry(args: &TelemetryArgs, output: LogOutput) {
    let filter = EnvFilter::try_new(&args.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let writer = move || -> Box<dyn std::io::Write> {
        match output {
            LogOutput::Stdout => Box::new(std::io::stdout()),
            LogOutput::Stderr => Box::new(std::io::stderr()),
        }
    };
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match args.log_format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_writer(writer),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(fmt::layer().with_target(true).with_writer(writer))
            .try_init(),
    };
}

/// Resolves when SIGTERM or SIGINT arrives.
pub async fn signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
                "SIGTERM"
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<&str>();
    let signal = tokio::select! {
        s = interrupt => s,
        s = terminate => s,
    };
    tracing::info!(signal, "shutdown requested");
}

/// One process's shutdown: the token every part watches, and the tasks to wait for once it is
/// cancelled. Clones share both.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Shutdown {
    /// A shutdown that only [`Shutdown::cancel`] (or the token) triggers.
    pub fn new() -> Self {
        Self::default()
    }

    /// A shutdown triggered by `token`, with its own task tracker; for the `run(token)` entry
    /// points that tests call with a token of their own.
    pub fn with_token(token: CancellationToken) -> Self {
        Shutdown {
            token,
            tracker: TaskTracker::new(),
        }
    }

    /// A shutdown that the first SIGTERM or SIGINT triggers. Must be called inside the runtime.
    pub fn on_signals() -> Self {
        let shutdown = Self::new();
        let token = shutdown.token.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = signal() => token.cancel(),
                () = token.cancelled() => {}
            }
        });
        shutdown
    }

    /// The token: cancelled once shutdown starts.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Starts the shutdown.
    pub fn cancel(&self) {
        self.token.cancel();
    }

    /// Whether shutdown has started.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once shutdown has started.
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }

    /// Runs `task` on the runtime as one of the tasks [`Shutdown::drain`] waits for.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Waits for every spawned task to finish (no new ones are accepted after).
    pub async fn wait(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Waits up to `grace` for every spawned task to finish (no new ones are accepted after);
    /// false when some were still running at the end of it.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drain_waits_for_tasks_that_finish_their_item_after_the_cancel() {
        let shutdown = Shutdown::new();
        let token = shutdown.token().clone();
        let done = shutdown.spawn(async move {
            token.cancelled().await;
            // The item in hand is finished after the cancel.
            tokio::task::yield_now().await;
            42
        });
        shutdown.cancel();
        assert!(shutdown.drain(Duration::from_secs(5)).await);
        assert_eq!(done.await.unwrap(), 42);
    }

    #[tokio::test]
    async fn drain_gives_up_after_the_grace_period() {
        let shutdown = Shutdown::new();
        shutdown.spawn(std::future::pending::<()>());
        shutdown.cancel();
        assert!(!shutdown.drain(Duration::from_millis(10)).await);
    }
}
