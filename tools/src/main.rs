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
    /// A call in virtual time over link models: heard audio, per-second series, plots, PESQ-WB per turn.
    Sim(lowband_tools::sim_cli::SimArgs),
    /// A real-time UDP proxy applying link models between real clients and a real gateway.
    Netem(lowband_tools::netem::NetemArgs),
    /// The same call through `sim` and through `netem` with the real binaries, and how far the figures agree.
    Compare(lowband_tools::compare::CompareArgs),
    /// A talker and a listener (real binaries) over netem with an outage or a NAT rebinding: audio gaps, recovery, queueing delay.
    Handover(lowband_tools::handover::HandoverArgs),
    /// N synthetic clients over real QUIC against a gateway process: CPU, memory, loss, lateness, latency.
    Load(lowband_tools::load::LoadArgs),
    /// Adaptive jitter buffer vs the hindsight-best fixed buffer on every recorded trace, and stretcher quality.
    JitterReport(lowband_tools::jitter_report::JitterReportArgs),
    /// Echo cancellation of the client's voice processing: ERLE and near-end PESQ-WB over a simulated laptop echo path.
    AecReport,
    /// Noise suppression of the client's voice processing: PESQ-WB at 5 dB SNR, fan/hum and babble.
    NsReport,
    /// Bytes on the wire per direction for one talker and one silent listener.
    Wire {
        #[arg(long, default_value = "wire-out")]
        out: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    match Cli::parse().command {
        Command::Demo { out } => lowband_tools::demo::run(&out),
        Command::Sim(a) => lowband_tools::sim_cli::run(&a),
        Command::Netem(a) => lowband_tools::netem::run(&a),
        Command::Compare(a) => lowband_tools::compare::run(&a),
        Command::Handover(a) => lowband_tools::handover::run(&a),
        Command::Load(a) => lowband_tools::load::run(&a),
        Command::JitterReport(a) => lowband_tools::jitter_report::run(&a),
        Command::AecReport => lowband_tools::voice_report::aec_report(),
        Command::NsReport => lowband_tools::voice_report::ns_report(),
        Command::Wire { out } => lowband_tools::wire::run(&out),
    }
}
