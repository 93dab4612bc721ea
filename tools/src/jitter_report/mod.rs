//! `lowband-tools jitter-report`: the adaptive receive buffer replayed over
//! every recorded trace, beside the best fixed-delay buffer chosen in
//! hindsight, and the quality of the time stretcher it plays out through.

pub mod stretch_quality;
pub mod traces;

use std::path::PathBuf;
use std::time::Duration;

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
    /// Only traces whose name contains this.
    #[arg(long)]
    pub only: Option<String>,
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
    println!("for the adaptive buffer the 20 ms pull that emits it plus the audio queued ahead of it in the output,");
    println!("for the fixed buffer the fastest packet's arrival plus its delay. \"to pull\" leaves out the queued audio (NetEq's jitterBufferDelay).");
    println!("The best fixed buffer is played through the same 20 ms pulls (a packet must be there by the pull of the chunk it starts in);");
    println!("the idealised one plays each packet at any instant, which no receiver pulled in 20 ms chunks can. \"waited-for\": packets that");
    println!("missed their slot and were waited for (concealing meanwhile) — late for a fixed buffer, a delay increase for the adaptive one.");
    println!();
    println!("| trace | direction | packet ms | seconds | packets | adaptive late loss % | adaptive waited-for % | adaptive mean delay ms | adaptive p95 ms | adaptive mean to pull ms | best fixed delay ms | its late loss % | its mean delay ms | goal met | idealised fixed delay ms | its mean delay ms | below it | concealed % | interruptions (s) | stretched +/− ms |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let traces = traces::find_traces(&dir)?;
    let (mut met, mut ideal, mut total) = (0, 0, 0);
    for &ms in &args.packet_ms {
        for (name, direction, trace) in &traces {
            if args.only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
                continue;
            }
            let seconds = args.seconds.min(trace.period_ms() / 1000).max(1);
            let talk = traces::encode(&speech, ms, seconds * 1000)?;
            let config = JitterConfig {
                quantile: args.quantile,
                accelerate_above: Duration::from_millis(args.accelerate_above_ms),
                ..JitterConfig::adaptive()
            };
            let r = traces::replay(&talk, trace, config)?;
            let a = &r.adaptive;
            total += 1;
            met += usize::from(r.meets_goal());
            ideal += usize::from(r.beats_ideal());
            println!(
                "| {name} | {direction} | {ms} | {seconds} | {} | {:.2} | {:.2} | {:.1} | {:.0} | {:.1} | {:.0} | {:.2} | {:.1} | {} | {:.0} | {:.1} | {} | {:.2} | {} ({:.1}) | {:.1}/{:.1} |",
                r.packets,
                r.adaptive_late * 100.0,
                a.waited_for as f64 / r.packets as f64 * 100.0,
                r.adaptive_mean_ms(),
                a.p95_playout_delay_us as f64 / 1000.0,
                a.mean_delay_us as f64 / 1000.0,
                r.fixed.delay_ms,
                r.fixed.late * 100.0,
                r.fixed.mean_delay_ms,
                if r.meets_goal() { "yes" } else { "NO" },
                r.fixed_ideal.delay_ms,
                r.fixed_ideal.mean_delay_ms,
                if r.beats_ideal() { "yes" } else { "no" },
                a.concealed_samples as f64 / (seconds as f64 * 16_000.0) * 100.0,
                a.interruptions,
                a.interruption_us as f64 / 1e6,
                a.inserted_samples as f64 / 16.0,
                a.removed_samples as f64 / 16.0,
            );
        }
    }
    println!();
    println!("Goal met on {met} of {total} trace runs (below the idealised fixed buffer on {ideal}).");
    Ok(())
}
