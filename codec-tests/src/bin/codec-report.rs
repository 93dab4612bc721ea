//! `codec-report`: every link profile × loss pattern — on-wire kbit/s,
//! PESQ-WB, ViSQOL — as a table on stdout, JSON and a PNG.

use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::Parser;
use lowband_codec_tests::channel::LossPattern;
use lowband_codec_tests::{plot, report};
use lowband_core::profile::Profile;

#[derive(Parser)]
#[command(about = "Opus link profiles under loss: on-wire kbit/s, PESQ-WB and ViSQOL")]
struct Args {
    /// Profiles to run (default: the whole ladder).
    #[arg(long, value_delimiter = ',')]
    profiles: Vec<String>,
    /// Loss seeds for the real recording (arctic_a0007).
    #[arg(long, default_value_t = 6)]
    seeds: u64,
    /// Real recording only (skips the two long synthetic talks).
    #[arg(long)]
    quick: bool,
    /// Skip ViSQOL (about 0.1 s of CPU per second of audio).
    #[arg(long)]
    no_visqol: bool,
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Where codec-report.json and codec-report.png go.
    #[arg(long, default_value = "target/codec-report")]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let profiles: Vec<Profile> = if args.profiles.is_empty() {
        Profile::ladder()
    } else {
        args.profiles.iter().map(|n| Profile::named(n).ok_or_else(|| anyhow!("no profile named {n}"))).collect::<anyhow::Result<_>>()?
    };
    let items = report::speech_items(args.seeds, args.quick).map_err(|e| anyhow!(e))?;
    let rows = report::measure_all(&profiles, &LossPattern::all(), &items, !args.no_visqol, args.jobs).map_err(|e| anyhow!(e))?;
    println!("{}", report::table(&rows));
    for (goal, met) in report::goals(&rows) {
        println!("- [{}] {goal}", if met { "met" } else { "MISSED" });
    }
    std::fs::create_dir_all(&args.out).with_context(|| args.out.display().to_string())?;
    let json = args.out.join("codec-report.json");
    report::write_json(&json, &rows).map_err(|e| anyhow!(e))?;
    let png = args.out.join("codec-report.png");
    plot::plot(&png, &rows).map_err(|e| anyhow!(e))?;
    println!("\nwrote {} and {}", json.display(), png.display());
    Ok(())
}
