//! Reports of a call: per-second series (CSV and JSON), PESQ-WB per talker
//! turn in every other listener's recording, and PNG plots.

pub mod plot;

use std::path::{Path, PathBuf};

use anyhow::Context;
use lowband_codec_tests::data::read_speech;
use lowband_codec_tests::score::score_turn;
use serde::Serialize;

use crate::sim::{Second, Turn, RATE};

#[derive(Debug, Clone, Serialize)]
pub struct TurnScore {
    pub talker: String,
    pub listener: String,
    pub start_s: f64,
    pub pesq_wb: Option<f64>,
    pub delay_ms: Option<f64>,
    pub error: Option<String>,
}

/// Scores every turn in every other listener's recording (up to 3 s of delay).
pub fn score_turns(names: &[String], turns: &[Turn], heard: &[PathBuf], show_progress: bool) -> anyhow::Result<Vec<TurnScore>> {
    let mut out = Vec::new();
    let bar = crate::progress::bar(show_progress, (turns.len() * names.len().saturating_sub(1)) as u64, "turns scored");

    for (listener, path) in names.iter().zip(heard) {
        let rec = read_speech(path).map_err(anyhow::Error::msg)?;
        for t in turns {
            if names[t.client] == *listener {
                continue;
            }
            // The pesq crate can panic (an overflow in its utterance split) on
            // badly damaged audio: that turn gets an error, the report goes on.
            let hook = std::panic::take_hook();
            std::panic::set_hook(Box::new(|_| {}));
            let r = std::panic::catch_unwind(|| score_turn(&t.speech, &rec, t.start_sample(), 3 * RATE));
            std::panic::set_hook(hook);
            let r = r.unwrap_or_else(|_| Err("PESQ failed on this turn (pesq crate panicked)".to_string()));
            bar.inc(1);
            out.push(TurnScore {
                talker: names[t.client].clone(),
                listener: listener.clone(),
                start_s: t.start,
                pesq_wb: r.as_ref().ok().map(|h| h.pesq_wb),
                delay_ms: r.as_ref().ok().map(|h| h.delay_ms),
                error: r.err(),
            });
        }
    }
    bar.finish_and_clear();
    Ok(out)
}

pub fn mean_pesq(scores: &[TurnScore]) -> Option<f64> {
    let v: Vec<f64> = scores.iter().filter_map(|s| s.pesq_wb).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

pub fn write_series_csv(path: &Path, series: &[Second]) -> anyhow::Result<()> {
    let opt = |x: Option<f64>| x.map(|v| format!("{v:.1}")).unwrap_or_default();
    let mut s = String::from("client,second,up_kbps,down_kbps,up_loss_pct,down_loss_pct,up_delay_ms,down_delay_ms,rtt_ms,srtt_ms,jitter_buffer_ms,concealed_pct\n");
    for r in series {
        s.push_str(&format!(
            "{},{},{:.2},{:.2},{:.2},{:.2},{},{},{},{:.1},{},{:.2}\n",
            r.client,
            r.second,
            r.up_kbps,
            r.down_kbps,
            r.up_loss_pct,
            r.down_loss_pct,
            opt(r.up_delay_ms),
            opt(r.down_delay_ms),
            opt(r.rtt_ms),
            r.srtt_ms,
            opt(r.jitter_buffer_ms),
            r.concealed_pct
        ));
    }
    std::fs::write(path, s).with_context(|| format!("writing {}", path.display()))
}

pub fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(value)?).with_context(|| format!("writing {}", path.display()))
}

/// The talker-by-listener table of mean PESQ-WB, printed.
pub fn print_scores(names: &[String], scores: &[TurnScore]) {
    println!("PESQ-WB per talker turn, mean over turns (listener rows, talker columns):");
    print!("{:<12}", "listener");
    for n in names {
        print!("{n:>12}");
    }
    println!();
    for l in names {
        print!("{l:<12}");
        for t in names {
            let v: Vec<f64> = scores.iter().filter(|s| &s.listener == l && &s.talker == t).filter_map(|s| s.pesq_wb).collect();
            let cell = if l == t { "-".to_string() } else if v.is_empty() { "n/a".into() } else { format!("{:.2}", v.iter().sum::<f64>() / v.len() as f64) };
            print!("{cell:>12}");
        }
        println!();
    }
}
