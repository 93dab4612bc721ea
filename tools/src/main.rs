use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "lowband-tools", version, about = "lowband's tools for testers and operators")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A demo call on loopback: a gateway and three headless clients taking turns.
    Demo {
        /// Directory for recordings, reports and logs.
        #[arg(long, default_value = "demo-out")]
        out: PathBuf,
    },
    /// Bytes on the wire per direction for one talker and one silent listener.
    Wire {
        #[arg(long, default_value = "wire-out")]
        out: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Demo { out } => lowband_tools::demo::run(&out),
        Command::Wire { out } => lowband_tools::wire::run(&out),
    }
}
