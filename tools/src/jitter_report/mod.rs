//! `lowband-tools jitter-report`: the adaptive receive buffer replayed over
//! every recorded trace, beside the best fixed-delay buffer chosen in
//! hindsight, and the quality of the time stretcher it plays out through.

pub mod stretch_quality;
pub mod traces;

use std::path::PathBuf;
use std::time::Duration;

use lowband_core::client::downlink_jitter;
use lowband_core::jitter::JitterConfig;

use lowband_codec_tests::data::{read_speech, shared_file};

#[derive(clap::Args, Debug)]
pub struct JitterReportArgs {
    /// Only the stretcher's quality, no trace replay.
    #[arg(long)]
    pub stretch_only: bool,
    /// Traces directory (default: $LOWBAND_DATA/traces).
    #[arg(long)]
    pub traces: Option<PathBuf>,
    /// Seconds of each trace to replay (at most; traces loop).
    #[arg(long, default_value_t = 900)]
    pub seconds: u64,
    /// Packet sizes to replay, ms.
    #[arg(long, value_delimiter = ',', default_value = "20,40,60")]
    pub packet_ms: Vec<u32>,
    /// Quantile of relative delay the adaptive target covers.
    #[arg(long, default_value_t = 0.95)]
    pub quantile: f64,
    /// Accelerate when this far above the target, ms.
    #[arg(long, default_value_t = 60)]
    pub accelerate_above_ms: u64,
    /// Playout follows a fallen target down in pauses even when no packet was late.
    #[arg(long)]
    pub follow_falling_target: bool,
    /// Only traces whose name contains this.
    #[arg(long)]
    pub only: Option<String>,
    /// Only this direction ("up" or "down").
    #[arg(long)]
    pub direction: Option<String>,
    /// Pull step of downlink playout, ms (default: the client's).
    #[arg(long, default_value_t = lowband_core::client::PLAYOUT_STEP_MS as u64)]
    pub down_pull_ms: u64,
    /// Pull step of uplink playout, ms (default: the mixer's 20 ms tick).
    #[arg(long, default_value_t = lowband_core::codec::CHUNK_MS as u64)]
    pub up_pull_ms: u64,
    /// Pull phases per run, spread over one pull; figures are their mean.
    #[arg(long, default_value_t = 4)]
    pub phases: usize,
}

pub fn run(args: &JitterReportArgs) -> anyhow::Result<()> {
    println!("## Time-stretch quality (round trip, PESQ-WB vs original)");
    println!("| speech | direction | achieved rate | edits | PESQ-WB (edits undone in place) | PESQ-WB (blind opposite stretch) | max step in | max step out |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for f in ["speech/arctic_a0007.wav", "speech/synthetic-case-presentation-16k.wav", "speech/synthetic-hub-reply-16k.wav"] {
        let speech = read_speech(&shared_file(f).map_err(anyhow::Error::msg)?).map_err(anyhow::Error::msg)?;
        for r in stretch_quality::measure(f, &speech).map_err(anyhow::Error::msg)? {
            println!("| {} | {} | {:.3} | {} | {:.2} | {:.2} | {} | {} |", r.file, r.direction, r.achieved_rate, r.edits, r.pesq_wb, r.pesq_wb_blind, r.max_step_in, r.max_step_out);
        }
    }
    if args.stretch_only {
        return Ok(());
    }
    let dir = match &args.traces {
        Some(d) => d.clone(),
        None => shared_file("traces").map_err(anyhow::Error::msg)?,
    };
    let mut speech = read_speech(&shared_file("speech/synthetic-case-presentation-16k.wav").map_err(anyhow::Error::msg)?).map_err(anyhow::Error::msg)?;
    speech.extend(read_speech(&shared_file("speech/synthetic-hub-reply-16k.wav").map_err(anyhow::Error::msg)?).map_err(anyhow::Error::msg)?);
    println!();
    println!("## Adaptive buffer vs the best fixed buffer in hindsight (≤ 2 % late), per trace");
    println!("Delays are over the packets played, from a packet's arrival to the instant its first sample is heard:");
    println!("for the adaptive buffer the pull that emits it plus the audio queued ahead of it in the output,");
    println!("for the fixed buffer the fastest packet's arrival plus its delay. \"to pull\" leaves out the queued audio (NetEq's jitterBufferDelay).");
    println!("Playout is pulled as its receiver pulls it: downlink by the client every {} ms, uplink by the mixer every {} ms.", args.down_pull_ms, args.up_pull_ms);
    if args.follow_falling_target {
        println!("Playout follows a fallen target down in pauses even when no packet was late (not the default).");
    }
    println!("The best fixed buffer is played through the same pulls (a packet must be there by the pull its first sample plays in);");
    println!("the idealised one plays each packet at any instant, which no pulled receiver can. Each run is repeated at {} pull phases", args.phases);
    println!("spread over one pull (where a device's pulls fall is arbitrary) and the figures are their mean, for the adaptive and the");
    println!("pulled fixed buffer alike (\"range\": the adaptive mean delay's lowest and highest phase). \"waited-for\": packets that missed");
    println!("their slot and were waited for (concealing meanwhile) — late for a fixed buffer, a delay increase for the adaptive one.");
    println!();
    println!("| trace | direction | packet ms | pull ms | seconds | packets | adaptive late loss % | adaptive waited-for % | adaptive mean delay ms | range over phases ms | adaptive p95 ms | adaptive mean to pull ms | best fixed delay ms | its late loss % | its mean delay ms | goal met | idealised fixed delay ms | its mean delay ms | below it | concealed % | interruptions (s) | stretched +/− ms |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let traces = traces::find_traces(&dir)?;
    let (mut met, mut ideal, mut total) = (0, 0, 0);
    for &ms in &args.packet_ms {
        for (name, direction, trace) in &traces {
            if args.only.as_ref().is_some_and(|o| !name.contains(o.as_str())) || args.direction.as_ref().is_some_and(|d| d != direction) {
                continue;
            }
            let seconds = args.seconds.min(trace.period_ms() / 1000).max(1);
            let talk = traces::encode(&speech, ms, seconds * 1000)?;
            let pull_ms = if direction == "up" { args.up_pull_ms } else { args.down_pull_ms };
            // Each direction's receiver as it runs: the client's buffer, the mixer's.
            let base = if direction == "up" { JitterConfig::adaptive() } else { downlink_jitter(JitterConfig::adaptive().initial_target) };
            let config = JitterConfig {
                quantile: args.quantile,
                accelerate_above: Duration::from_millis(args.accelerate_above_ms),
                follow_falling_target: args.follow_falling_target,
                pull: Duration::from_millis(pull_ms),
                min_target: base.min_target.min(Duration::from_millis(pull_ms)),
                ..base
            };
            let r = traces::replay(&talk, trace, config, &traces::phases(pull_ms * 1000, args.phases))?;
            total += 1;
            met += usize::from(r.meets_goal());
            ideal += usize::from(r.beats_ideal());
            let packets = r.packets as f64;
            let (lo, hi) = r.range(|p| p.adaptive_mean_ms());
            println!(
                "| {name} | {direction} | {ms} | {pull_ms} | {seconds} | {} | {:.2} | {:.2} | {:.1} | {:.1}–{:.1} | {:.0} | {:.1} | {:.1} | {:.2} | {:.1} | {} | {:.0} | {:.1} | {} | {:.2} | {:.1} ({:.1}) | {:.1}/{:.1} |",
                r.packets,
                r.mean(|p| p.adaptive_late) * 100.0,
                r.mean(|p| p.adaptive.waited_for as f64) / packets * 100.0,
                r.adaptive_mean_ms(),
                lo,
                hi,
                r.mean(|p| p.adaptive.p95_playout_delay_us as f64) / 1000.0,
                r.mean(|p| p.adaptive.mean_delay_us as f64) / 1000.0,
                r.mean(|p| p.fixed.delay_ms),
                r.mean(|p| p.fixed.late) * 100.0,
                r.mean(|p| p.fixed.mean_delay_ms),
                if r.meets_goal() { "yes" } else { "NO" },
                r.fixed_ideal.delay_ms,
                r.fixed_ideal.mean_delay_ms,
                if r.beats_ideal() { "yes" } else { "no" },
                r.mean(|p| p.adaptive.concealed_samples as f64) / (seconds as f64 * 16_000.0) * 100.0,
                r.mean(|p| p.adaptive.interruptions as f64),
                r.mean(|p| p.adaptive.interruption_us as f64) / 1e6,
                r.mean(|p| p.adaptive.inserted_samples as f64) / 16.0,
                r.mean(|p| p.adaptive.removed_samples as f64) / 16.0,
            );
        }
    }
    println!();
    println!("Goal met on {met} of {total} trace runs (below the idealised fixed buffer on {ideal}).");
    Ok(())
}
