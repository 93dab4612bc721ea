//! Command line of `lowband-gateway`.

use std::path::PathBuf;

use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use lowband_core::invite::Invitation;
use lowband_core::token::Claims;
use lowband_core::wire::control::is_valid_name;
use lowband_core::wire::Role;

use crate::attendance;

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
    /// Print a signed join token: `token --room echo-hiv --name "Clinic 7" --role participant --valid 7d`.
    Token(TokenArgs),
    /// Attendance: `attendance list`, or `attendance export SESSION` for CSV.
    #[command(subcommand)]
    Attendance(AttendanceCommand),
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    #[arg(long)]
    pub room: String,
    /// The name the holder is shown and credited under.
    #[arg(long)]
    pub name: String,
    #[arg(long, value_enum, default_value = "participant")]
    pub role: RoleArg,
    /// How long it stays valid: e.g. 90m, 12h, 7d.
    #[arg(long, default_value = "7d", value_parser = parse_validity)]
    pub valid: Duration,
    /// Also print an invitation for `lowband join` with this public address
    /// (host:port as clients reach it), the token and the certificate fingerprint.
    #[arg(long, value_name = "HOST:PORT")]
    pub invite: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RoleArg {
    Host,
    Presenter,
    Participant,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Host => Role::Host,
            RoleArg::Presenter => Role::Presenter,
            RoleArg::Participant => Role::Participant,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum AttendanceCommand {
    /// List sessions: id, room, start, people.
    List,
    /// Write a session's attendance as CSV (first join, last leave, minutes present per person).
    Export {
        /// Session id from `attendance list` (the journal's file name without .jsonl).
        session: String,
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

/// `30s`, `90m`, `12h`, `7d` (a bare number is seconds).
pub fn parse_validity(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("{s:?}: expected a number and a unit, e.g. 7d or 12h"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("{s:?}: unit must be s, m, h, d or w")),
    };
    n.checked_mul(mult).map(Duration::from_secs).ok_or_else(|| format!("{s:?} is too long"))
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
        Command::Token(t) => {
            anyhow::ensure!(is_valid_name(&t.room) && is_valid_name(&t.name), "room and name must be 1-64 printable characters");
            let expires = crate::archive::unix_ms_now() / 1000 + t.valid.as_secs();
            let claims = Claims { room: t.room, name: t.name, role: t.role.into(), expires };
            let token = crate::keys::issue(&config.state_dir, &claims)?;
            println!("{token}");
            if let Some(addr) = t.invite {
                let fingerprint = crate::cert::load_or_create(&config.state_dir)?.fingerprint;
                let inv = Invitation { gateway: addr, room: claims.room.clone(), token: Some(token), fingerprint: Some(fingerprint), name: None };
                // Parse it back so a bad --invite address fails here, not at the clinic.
                Invitation::parse(&inv.to_string()).context("--invite HOST:PORT")?;
                println!("{inv}");
            }
            eprintln!("valid until {} for room {:?}", attendance::utc(expires * 1000), claims.room);
        }
        Command::Attendance(AttendanceCommand::List) => {
            let dir = config.attendance_dir();
            for id in attendance::sessions(&dir)? {
                let records = attendance::read_journal(&dir.join(format!("{id}.jsonl")))?;
                let room = records.iter().find_map(|r| r.room.clone()).unwrap_or_default();
                let start = records.first().map(|r| r.t.clone()).unwrap_or_default();
                let ended = records.iter().any(|r| r.event == "session_end");
                let people = attendance::summarize(&records).len();
                println!("{id}\troom {room:?}\tstarted {start}\t{people} people{}", if ended { "" } else { "\t(open or interrupted)" });
            }
        }
        Command::Attendance(AttendanceCommand::Export { session, output }) => {
            let path = config.attendance_dir().join(format!("{session}.jsonl"));
            let records = attendance::read_journal(&path).with_context(|| format!("reading {}", path.display()))?;
            let csv = attendance::to_csv(&attendance::summarize(&records));
            match output {
                Some(p) => std::fs::write(&p, csv).with_context(|| format!("writing {}", p.display()))?,
                None => print!("{csv}"),
            }
        }
        Command::Serve => {
            let server = Server::start(&config).await.context("starting the gateway")?;
            println!("lowband-gateway listening on {}", server.local_addr());
            println!("fingerprint: {}", server.fingerprint());
            if let Some(m) = server.metrics_addr() {
                println!("metrics: http://{m}/metrics");
            }
            wait_for_stop().await?;
            tracing::info!("shutting down");
            server.shutdown().await;
        }
    }
    Ok(())
}

/// Ctrl-C, or SIGTERM from systemd.
async fn wait_for_stop() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("installing the SIGTERM handler")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_takes_the_units_an_operator_types() {
        assert_eq!(parse_validity("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_validity("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_validity("45"), Ok(Duration::from_secs(45)));
        assert!(parse_validity("7 days").is_err() && parse_validity("d").is_err());
    }
}
