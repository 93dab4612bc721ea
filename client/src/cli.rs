//! Command line of `lowband`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::audio::device::{list_devices, DeviceAudio, DeviceChoice};
use crate::audio::process::{Processed, Stages, TalkMode, TalkState};
use crate::audio::wav::{read_16k_mono, WavAudio};
use crate::audio::AudioIo;
use crate::call::{run_call_recording, CallCommand, CallControls, CallOptions, CallReport};
use crate::invite::JoinTarget;

#[derive(Debug, Parser)]
#[command(name = "lowband", version, about = "Join a lowband audio call")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Join a room: `lowband join 'lowband://hub:4433/echo-hiv?token=…&fp=…'`
    /// or `lowband join hub.example.org:4433 echo-hiv --name "Clinic 7"`.
    Join(JoinArgs),
    /// List the sound devices `--mic` and `--speaker` can name.
    Devices,
}

#[derive(Debug, clap::Args)]
pub struct JoinArgs {
    /// An invitation (`lowband://host:port/room?token=…&fp=…`) or a gateway address, host:port.
    pub gateway: String,
    /// The room (not needed with an invitation).
    pub room: Option<String>,
    /// Your name as others see it (default: the name in your token).
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub token: Option<String>,
    /// The gateway's certificate fingerprint (from the hub operator). Without it
    /// the first connection is trusted and remembered, and a change is refused.
    #[arg(long)]
    pub fingerprint: Option<String>,
    /// Microphone: part of its name (see `lowband devices`); default: the system's.
    #[arg(long)]
    pub mic: Option<String>,
    /// Speakers: part of their name; default: the system's.
    #[arg(long)]
    pub speaker: Option<String>,
    /// Start in push-to-talk (hold space) instead of voice activity.
    #[arg(long)]
    pub push_to_talk: bool,
    /// Start muted.
    #[arg(long)]
    pub muted: bool,
    /// Raise your hand as soon as you are in.
    #[arg(long)]
    pub raise_hand: bool,
    /// Turn off echo cancellation, noise suppression and gain control (e.g. with a headset).
    #[arg(long)]
    pub no_processing: bool,
    /// Headless: run the voice processing on the input file too (off by default).
    #[arg(long)]
    pub process_input: bool,
    /// The terminal UI: on by default when standard output is a terminal.
    #[arg(long, overrides_with = "no_tui")]
    pub tui: bool,
    #[arg(long)]
    pub no_tui: bool,
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
    /// With the terminal UI, write logs here instead of discarding them.
    #[arg(long)]
    pub log: Option<PathBuf>,
}

impl JoinArgs {
    fn use_tui(&self) -> bool {
        self.tui || (!self.no_tui && std::io::stdout().is_terminal())
    }
}

/// Logs go to stderr, except under the terminal UI (to `--log` or nowhere).
pub fn init_logging(cli: &Cli) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let b = tracing_subscriber::fmt().with_env_filter(filter);
    match &cli.command {
        Command::Join(a) if a.use_tui() => match &a.log {
            Some(p) => {
                let f = std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?;
                b.with_writer(std::sync::Mutex::new(f)).with_ansi(false).init();
            }
            None => b.with_writer(std::io::sink).init(),
        },
        _ => b.with_writer(std::io::stderr).init(),
    }
    Ok(())
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let args = match cli.command {
        Command::Devices => {
            for line in list_devices()? {
                println!("{line}");
            }
            return Ok(());
        }
        Command::Join(a) => a,
    };
    let target = JoinTarget::resolve(&args.gateway, args.room.as_deref(), args.name.as_deref(), args.token.as_deref(), args.fingerprint.as_deref())?;
    let fingerprint = target.fingerprint.as_deref().map(lowband_quic::parse_fingerprint).transpose()?;
    let headless = args.input.is_some() || args.output.is_some();
    let mut duration = args.duration.map(Duration::from_secs_f64);
    let talk = Arc::new(TalkState::default());
    talk.set_mode(if args.push_to_talk { TalkMode::PushToTalk } else { TalkMode::Voice });
    let stages = if args.no_processing { Stages { aec: false, ns: false, agc: false } } else { Stages::ALL };
    let mut processed = false;
    let mut audio: Box<dyn AudioIo + Send> = if headless {
        let input = match &args.input {
            Some(p) => read_16k_mono(p)?,
            None => Vec::new(),
        };
        let wav = WavAudio::new(input, Duration::from_secs_f64(args.speak_at), args.output.as_deref())?;
        if duration.is_none() && args.input.is_some() {
            duration = Some(wav.speech_end() + Duration::from_secs(2));
        }
        if args.process_input {
            processed = true;
            Box::new(Processed::new(wav, stages, talk.clone())?)
        } else {
            Box::new(wav)
        }
    } else {
        let choice = DeviceChoice { mic: args.mic.clone(), speaker: args.speaker.clone() };
        let dev = DeviceAudio::open(choice).context("opening the sound card (use --input/--output for headless mode)")?;
        processed = true;
        Box::new(Processed::new(dev, stages, talk.clone())?)
    };
    let opts = CallOptions {
        gateway: target.gateway,
        room: target.room,
        name: target.name,
        token: target.token,
        fingerprint,
        config_dir: crate::trust::config_dir(),
        duration,
    };
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let mut start: Vec<CallCommand> = Vec::new();
    if args.muted {
        start.push(CallCommand::SetMuted(true));
    }
    if args.raise_hand {
        start.push(CallCommand::RaiseHand(true));
    }
    let report: CallReport = if args.use_tui() {
        crate::tui::run(&opts, audio.as_mut(), processed.then_some(talk), stop, start).await?
    } else {
        let controls = if start.is_empty() {
            None
        } else {
            let (c, tx, mut rx) = CallControls::pair();
            for cmd in start {
                let _ = tx.send(cmd);
            }
            // Keep the sender alive for the call; updates are logged by the driver anyway.
            tokio::spawn(async move {
                let _tx = tx;
                while rx.recv().await.is_some() {}
            });
            Some(c)
        };
        run_call_recording(&opts, audio.as_mut(), stop, controls, args.record_link.as_deref()).await?
    };
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
