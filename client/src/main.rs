use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = lowband_client::cli::Cli::parse();
    lowband_client::cli::init_logging(&cli)?;
    lowband_client::cli::run(cli).await
}
