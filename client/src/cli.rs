//! Command line of `lowband`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::audio::device::DeviceAudio;
use crate::audio::wav::{read_16k_mono, WavAudio};
use crate::audio::AudioIo;
use crate::call::{run_call_recording, CallOptions};

#[derive(Debug, Parser)]
#[command(name = "lowband", version, about = "Join a lowband audio call")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Join a room: `lowband join hub.example.org:4433 echo-hiv --name "Clinic 7"`.
    Join(JoinArgs),
}

#[derive(Debug, clap::Args)]
pub struct JoinArgs {
    /// Gateway address, host:port.
    pub gateway: String,
    pub room: String,
    /// Your name as others see it.
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub token: Option<String>,
    /// The gateway's certificate fingerprint (from the hub operator). Without it
    /// the first connection is trusted and remembered, and a change is refused.
    #[arg(long)]
    pub fingerprint: Option<String>,
    /// Speak this WAV file instead of the microphone (headless mode).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Record what you hear to this WAV file instead of the speakers (headless mode).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Headless: seconds into the call at which the input starts.
    #[arg(long, default_value_t = 0.0)]
    pub speak_at: f64,
    /// Leave after this many seconds (headless default: when the input ends, plus 2 s).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Write the call report as JSON to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Log what the link did to every audio packet (send/arrival time, size,
    /// loss) to this file; `lowband-tools sim|netem --recorded FILE` replays it.
    #[arg(long)]
    pub record_link: Option<PathBuf>,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let Command::Join(args) = cli.command;
    let fingerprint = args.fingerprint.as_deref().map(lowband_quic::parse_fingerprint).transpose()?;
    let headless = args.input.is_some() || args.output.is_some();
    let mut duration = args.duration.map(Duration::from_secs_f64);
    let mut audio: Box<dyn AudioIo + Send> = if headless {
        let input = match &args.input {
            Some(p) => read_16k_mono(p)?,
            None => Vec::new(),
        };
        let wav = WavAudio::new(input, Duration::from_secs_f64(args.speak_at), args.output.as_deref())?;
        if duration.is_none() && args.input.is_some() {
            duration = Some(wav.speech_end() + Duration::from_secs(2));
        }
        Box::new(wav)
    } else {
        Box::new(DeviceAudio::open_default().context("opening the sound card (use --input/--output for headless mode)")?)
    };
    let opts = CallOptions {
        gateway: args.gateway,
        room: args.room,
        name: args.name,
        token: args.token,
        fingerprint,
        config_dir: crate::trust::config_dir(),
        duration,
    };
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let report = run_call_recording(&opts, audio.as_mut(), stop, None, args.record_link.as_deref()).await?;
    let secs = report.seconds.max(1e-3);
    println!(
        "{}: {:.1} s in call, on the wire {:.1} kbit/s up, {:.1} kbit/s down; heard audio in {} of {} chunks",
        opts.name,
        report.seconds,
        report.wire_bytes_sent as f64 * 8.0 / secs / 1000.0,
        report.wire_bytes_received as f64 * 8.0 / secs / 1000.0,
        report.chunks_audible,
        (report.seconds * 50.0) as u64,
    );
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_string_pretty(&report)?).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
