use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wearhouse_api::cli::run(wearhouse_api::cli::Cli::parse()).await
}
