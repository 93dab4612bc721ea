//! The `sim` subcommand: builds a round-robin call from WAV files and a link
//! description, runs it in virtual time and writes the report.

use std::path::PathBuf;

use anyhow::Context;
use lowband_core::profile::Profile;
use lowband_codec_tests::data::{read_speech, shared_file};
use serde::Serialize;

use crate::linkargs::LinkArgs;
use crate::report::{self, TurnScore};
use crate::sim::{self, LinkTotals, SimSpec};

/// `sim --fast`: no deep PLC, LACE or NoLACE (they start at 5, 6 and 7).
pub const FAST_DECODER_COMPLEXITY: u8 = 4;

pub const DEFAULT_SPEECH: [&str; 3] =
    ["speech/synthetic-case-presentation-16k.wav", "speech/synthetic-hub-reply-16k.wav", "speech/arctic_a0007.wav"];

#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Number of clients in the room.
    #[arg(long, default_value_t = 3)]
    pub clients: usize,
    /// Call length in seconds.
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,
    /// Speech for client k is the (k mod n)-th file (default: the shared speech samples).
    #[arg(long)]
    pub speech: Vec<PathBuf>,
    /// Length of each talker turn; clients take turns round-robin from 1 s.
    #[arg(long, default_value_t = 6.0)]
    pub turn_seconds: f64,
    #[arg(long, default_value_t = 1.0)]
    pub gap_seconds: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Directory for heard WAVs, series.csv, report.json and plots/.
    #[arg(long, default_value = "sim-out")]
    pub out: PathBuf,
    /// Skip PESQ scoring (it costs ~0.1 s per turn and listener).
    #[arg(long)]
    pub no_score: bool,
    /// Skip the PNG plots.
    #[arg(long)]
    pub no_plots: bool,
    /// `adaptive` (rate adaptation over the link ladder, both directions) or a
    /// fixed link profile for every stream: `2g`, `edge`, `3g`, `good`.
    #[arg(long, default_value = "adaptive")]
    pub profile: String,
    /// For long runs: decode at complexity 4 instead of the profile's 7, i.e.
    /// classic PLC and no NoLACE enhancement (about 4× cheaper decoding, 10×
    /// cheaper concealment). Link figures are unchanged; heard audio and its
    /// PESQ are not what a real client would hear, so leave it off for scores.
    #[arg(long)]
    pub fast: bool,
    #[command(flatten)]
    pub link: LinkArgs,
}

#[derive(Serialize)]
struct Report<'a> {
    link: &'a str,
    clients: usize,
    seconds: f64,
    seed: u64,
    decoder_complexity: Option<u8>,
    wall_seconds: f64,
    cpu_seconds: f64,
    speed_x_real_time: f64,
    /// Per-packet overhead added to datagram sizes for on-wire figures.
    up_overhead_bytes: usize,
    down_overhead_bytes: usize,
    links: &'a [LinkTotals],
    profile: &'a str,
    mean_pesq_wb: Option<f64>,
    /// Share of scored turns (talker × listener) with PESQ-WB ≥ 2.5: intelligible.
    share_pesq_wb_ge_2_5: Option<f64>,
    /// Mouth-to-ear delay found by aligning each scored turn, mean over turns.
    mean_mouth_to_ear_ms: Option<f64>,
    /// One-way delay of audio packets on the link (queueing included), mean over packets' seconds.
    mean_link_one_way_ms: Option<f64>,
    /// On-wire kbit/s per client, each direction, mean over the call.
    mean_up_kbps: f64,
    mean_down_kbps: f64,
    turns: &'a [TurnScore],
    series: &'a [sim::Second],
}

pub fn load_speech(paths: &[PathBuf]) -> anyhow::Result<Vec<Vec<i16>>> {
    let paths: Vec<PathBuf> = if paths.is_empty() {
        DEFAULT_SPEECH.iter().map(|f| shared_file(f).map_err(anyhow::Error::msg)).collect::<anyhow::Result<_>>()?
    } else {
        paths.to_vec()
    };
    paths.iter().map(|p| read_speech(p).map_err(anyhow::Error::msg)).collect()
}

pub fn run(a: &SimArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.clients >= 1, "need at least one client");
    let link = a.link.build()?;
    let speech = load_speech(&a.speech)?;
    let names: Vec<String> = (0..a.clients).map(|k| format!("client{:02}", k + 1)).collect();
    let turns = sim::round_robin(&speech, a.clients, a.turn_seconds, a.gap_seconds, a.seconds);
    let spec = SimSpec {
        names: names.clone(),
        links: vec![link.clone(); a.clients],
        turns: turns.clone(),
        seconds: a.seconds,
        seed: a.seed,
        progress: a.seconds >= 30.0,
        profile: match a.profile.as_str() {
            "adaptive" => None,
            n => Some(Profile::named(n).with_context(|| format!("no profile {n:?}: adaptive, 2g, edge, 3g or good"))?),
        },
        decoder_complexity: a.fast.then_some(FAST_DECODER_COMPLEXITY),
        report_phase: std::time::Duration::ZERO,
    };
    println!("simulating {} clients × {:.0} s over: {}", a.clients, a.seconds, link.description);
    let outcome = sim::run(&spec, &a.out)?;
    let speed = a.seconds / outcome.wall_seconds.max(1e-9);
    println!(
        "simulated {:.0} s of call in {:.2} s of wall time: {:.1}× real time ({:.1} CPU s on {} threads; {:.0}× per CPU second)",
        a.seconds,
        outcome.wall_seconds,
        speed,
        outcome.cpu_seconds,
        crate::sim::THREADS,
        a.seconds / outcome.cpu_seconds.max(1e-9)
    );
    for t in &outcome.totals {
        let ms = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.0} ms"));
        println!(
            "  {}: audio lost up {} of {} ({:.2} %), down {} of {} ({:.2} %); all packets up {:.2} %, down {:.2} %; RTT {}, jitter buffer {}",
            t.client,
            t.up_lost,
            t.up_packets,
            t.up_loss_pct,
            t.down_lost,
            t.down_packets,
            t.down_loss_pct,
            t.up_link_loss_pct,
            t.down_link_loss_pct,
            ms(t.mean_rtt_ms),
            ms(t.mean_jitter_buffer_ms)
        );
    }
    let scores = if a.no_score { Vec::new() } else { report::score_turns(&names, &turns, &outcome.heard, a.seconds >= 30.0)? };
    if !a.no_score {
        report::print_scores(&names, &scores);
        if let Some(m) = report::mean_pesq(&scores) {
            println!("mean PESQ-WB over {} scored turns: {m:.2}", scores.iter().filter(|s| s.pesq_wb.is_some()).count());
        }
    }
    report::write_series_csv(&a.out.join("series.csv"), &outcome.series)?;
    let summary = report::Summary::of(&scores, &outcome.series);
    println!("{}", summary.line(&a.profile));
    let r = Report {
        link: &link.description,
        clients: a.clients,
        seconds: a.seconds,
        seed: a.seed,
        decoder_complexity: spec.decoder_complexity,
        wall_seconds: outcome.wall_seconds,
        cpu_seconds: outcome.cpu_seconds,
        speed_x_real_time: speed,
        up_overhead_bytes: sim::UP_OVERHEAD,
        down_overhead_bytes: sim::DOWN_OVERHEAD,
        links: &outcome.totals,
        profile: &a.profile,
        mean_pesq_wb: report::mean_pesq(&scores),
        share_pesq_wb_ge_2_5: summary.share_intelligible,
        mean_mouth_to_ear_ms: summary.mouth_to_ear_ms,
        mean_link_one_way_ms: summary.link_one_way_ms,
        mean_up_kbps: summary.up_kbps,
        mean_down_kbps: summary.down_kbps,
        turns: &scores,
        series: &outcome.series,
    };
    report::write_json(&a.out.join("report.json"), &r)?;
    if !a.no_plots {
        let dir = a.out.join("plots");
        std::fs::create_dir_all(&dir).context("creating plots/")?;
        for n in &names {
            let rows: Vec<&sim::Second> = outcome.series.iter().filter(|s| &s.client == n).collect();
            report::plot::plot_client(&dir.join(format!("{n}.png")), &format!("{n}: {}", link.description), &rows)?;
        }
        println!("plots: {}", dir.display());
    }
    println!("report: {} and {}", a.out.join("report.json").display(), a.out.join("series.csv").display());
    Ok(())
}
