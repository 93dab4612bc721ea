//! `lowband-tools jitter-report`: the adaptive receive buffer replayed over
//! every recorded trace, beside the best fixed-delay buffer chosen in
//! hindsight, and the quality of the time stretcher it plays out through.

pub mod stretch_quality;

use std::path::PathBuf;

use lowband_codec_tests::data::{read_speech, shared_file};

#[derive(clap::Args, Debug)]
pub struct JitterReportArgs {
    /// Only the stretcher's quality, no trace replay.
    #[arg(long)]
    pub stretch_only: bool,
    /// Traces directory (default: $LOWBAND_DATA/traces).
    #[arg(long)]
    pub traces: Option<PathBuf>,
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
    Ok(())
}
