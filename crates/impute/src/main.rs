//! `wearhouse-impute`: see [`wearhouse_impute::cli`].

use clap::Parser;

fn main() -> anyhow::Result<()> {
    wearhouse_impute::cli::run(wearhouse_impute::cli::Cli::parse())
}
