use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    wearhouse_ingest::cli::run(wearhouse_ingest::cli::Cli::parse()).await
}
