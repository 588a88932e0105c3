//! The `wearhouse-impute` command line. Subcommands are an enum so the job runner and the
//! worker join as siblings of `fit`.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use wearhouse_core::Metric;
use wearhouse_core::process::{self, LogOutput};

use crate::arima::{ArimaFit, ArimaOrder, FitOptions, OrderGrid};
use crate::fill::{FillConfig, fill_arima};
use crate::series::read_csv;

/// Gap filling for wearable series: exact-likelihood ARIMA with Kalman smoothing for heart
/// rate, and simple fills for the other metrics.
#[derive(Debug, Parser)]
#[command(name = "wearhouse-impute", version, about)]
pub struct Cli {
    /// The database role `run` and `worker` work as (`SET ROLE` at connect): by default the
    /// least-privileged `wearhouse_impute` the migrations create, which reads series and writes
    /// imputation jobs and output only. Empty: the connecting user's own rights.
    #[arg(
        long,
        global = true,
        env = "WEARHOUSE_IMPUTE_DB_ROLE",
        default_value = "wearhouse_impute"
    )]
    pub db_role: String,

    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fit ARIMA to a CSV series and print the model and the filled series as JSON.
    Fit(FitArgs),
    /// Queue an imputation job and run it in this process; prints its summary as JSON.
    Run(Box<crate::run::RunArgs>),
    /// Take imputation jobs from the database until SIGTERM; serves /health and /metrics.
    Worker(Box<crate::worker::WorkerArgs>),
}

/// Arguments of `fit`.
#[derive(Debug, Clone, Args)]
pub struct FitArgs {
    /// CSV with `timestamp,value` rows, one per interval (an empty value is missing);
    /// `-` reads standard input.
    #[arg(long, env = "WEARHOUSE_IMPUTE_INPUT")]
    pub input: PathBuf,
    /// Fixed order `p,d,q`; without it the order with the lowest AIC over the grid is used.
    #[arg(long, env = "WEARHOUSE_IMPUTE_ORDER")]
    pub order: Option<ArimaOrder>,
    /// Metric whose physiological bounds clip the imputed values.
    #[arg(long, env = "WEARHOUSE_IMPUTE_METRIC", default_value = "heart_rate")]
    pub metric: Metric,
    /// Longest run of missing points that is filled; longer runs (non-wear) stay empty.
    #[arg(long, env = "WEARHOUSE_IMPUTE_MAX_GAP", default_value_t = FillConfig::default().max_gap)]
    pub max_gap: usize,
    /// Largest AR order tried when selecting by AIC.
    #[arg(long, env = "WEARHOUSE_IMPUTE_MAX_P", default_value_t = OrderGrid::default().max_p)]
    pub max_p: usize,
    /// Largest differencing order tried when selecting by AIC.
    #[arg(long, env = "WEARHOUSE_IMPUTE_MAX_D", default_value_t = OrderGrid::default().max_d)]
    pub max_d: usize,
    /// Largest MA order tried when selecting by AIC.
    #[arg(long, env = "WEARHOUSE_IMPUTE_MAX_Q", default_value_t = OrderGrid::default().max_q)]
    pub max_q: usize,
}

/// One named parameter in the report.
#[derive(Debug, Serialize)]
pub struct NamedParam {
    pub name: String,
    pub value: f64,
}

/// The fitted model in the report.
#[derive(Debug, Serialize)]
pub struct ModelReport {
    pub order: ArimaOrder,
    pub parameters: Vec<NamedParam>,
    pub loglike: f64,
    pub aic: f64,
    pub nobs: usize,
}

impl From<&ArimaFit> for ModelReport {
    fn from(fit: &ArimaFit) -> Self {
        let parameters = fit
            .order
            .param_names()
            .into_iter()
            .zip(fit.params.to_vec(fit.order))
            .map(|(name, value)| NamedParam { name, value })
            .collect();
        Self {
            order: fit.order,
            parameters,
            loglike: fit.loglike,
            aic: fit.aic,
            nobs: fit.nobs,
        }
    }
}

/// One point of the filled series.
#[derive(Debug, Serialize)]
pub struct Point {
    pub timestamp: String,
    pub value: Option<f64>,
    pub imputed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub std_error: Option<f64>,
}

/// What `fit` prints.
#[derive(Debug, Serialize)]
pub struct FitReport {
    pub model: ModelReport,
    pub metric: Metric,
    pub max_gap: usize,
    pub imputed: usize,
    pub left_missing: usize,
    pub series: Vec<Point>,
}

/// Runs `fit`: reads the CSV, fits, fills.
pub fn fit_command(args: &FitArgs) -> anyhow::Result<FitReport> {
    let series = if args.input.as_os_str() == "-" {
        read_csv(std::io::stdin().lock())
    } else {
        let file =
            File::open(&args.input).with_context(|| format!("opening {}", args.input.display()))?;
        read_csv(BufReader::new(file))
    }
    .with_context(|| format!("reading {}", args.input.display()))?;
    let config = FillConfig {
        max_gap: args.max_gap,
        order: args.order,
        grid: OrderGrid {
            max_p: args.max_p,
            max_d: args.max_d,
            max_q: args.max_q,
        },
        fit: FitOptions::default(),
    };
    let info = args.metric.info();
    let filled = fill_arima(&series.values, (info.min_value, info.max_value), &config)
        .context("fitting ARIMA")?;
    let model = filled
        .model
        .as_ref()
        .context("the ARIMA fill returned no model")?;
    let points: Vec<Point> = series
        .timestamps
        .into_iter()
        .enumerate()
        .map(|(t, timestamp)| Point {
            timestamp,
            value: filled.values[t],
            imputed: filled.imputed[t],
            std_error: filled.std_error[t],
        })
        .collect();
    Ok(FitReport {
        model: model.into(),
        metric: args.metric,
        max_gap: args.max_gap,
        imputed: filled.imputed_count(),
        left_missing: points.iter().filter(|p| p.value.is_none()).count(),
        series: points,
    })
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Fit(args) => {
            let report = fit_command(&args)?;
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
            Ok(())
        }
        Command::Run(mut args) => {
            args.database = args.database.with_role(&cli.db_role);
            // Standard output carries the JSON result.
            process::init_telemetry(&args.telemetry, LogOutput::Stderr);
            let outcome = runtime()?.block_on(crate::run::run_command(&args))?;
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &outcome)?;
            writeln!(out)?;
            Ok(())
        }
        Command::Worker(mut args) => {
            args.database = args.database.with_role(&cli.db_role);
            process::init_telemetry(&args.telemetry, LogOutput::Stdout);
            runtime()?.block_on(crate::worker::main(&args))
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
