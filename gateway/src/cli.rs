//! Command line of `lowband-gateway`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::server::Server;

#[derive(Debug, Parser)]
#[command(name = "lowband-gateway", version, about = "lowband's audio mixer for hub-and-spoke tele-mentoring")]
pub struct Cli {
    /// TOML config file (unknown keys are refused).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// UDP address to listen on [default: 0.0.0.0:4433].
    #[arg(long, global = true)]
    pub listen: Option<std::net::SocketAddr>,
    /// Where the certificate and other state are kept [default: $LOWBAND_STATE_DIR or ~/.local/state/lowband-gateway].
    #[arg(long, global = true)]
    pub state_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the mixer (the default).
    Serve,
    /// Print the certificate fingerprint clients should pin, creating the certificate if needed.
    Fingerprint,
}

impl Cli {
    pub fn load_config(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_toml_file(path)?,
            None => Config::default(),
        };
        if let Some(l) = self.listen {
            config.listen = l;
        }
        if let Some(d) = &self.state_dir {
            config.state_dir = d.clone();
        }
        Ok(config)
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.load_config()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Fingerprint => {
            let id = crate::cert::load_or_create(&config.state_dir)?;
            println!("{}", id.fingerprint);
        }
        Command::Serve => {
            let server = Server::start(&config).await.context("starting the gateway")?;
            println!("lowband-gateway listening on {}", server.local_addr());
            println!("fingerprint: {}", server.fingerprint());
            tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
            tracing::info!("shutting down");
            server.shutdown().await;
        }
    }
    Ok(())
}
