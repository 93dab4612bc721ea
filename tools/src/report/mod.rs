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

/// The figures that compare a profile (or adaptation) across links.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub share_intelligible: Option<f64>,
    pub mouth_to_ear_ms: Option<f64>,
    pub link_one_way_ms: Option<f64>,
    pub up_kbps: f64,
    pub down_kbps: f64,
}

fn mean_of(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| sum / n as f64)
}

impl Summary {
    pub fn of(scores: &[TurnScore], series: &[Second]) -> Summary {
        let scored: Vec<f64> = scores.iter().map(|s| s.pesq_wb.unwrap_or(1.0)).collect();
        Summary {
            // A turn that could not be aligned at all (nothing heard) counts as unintelligible.
            share_intelligible: (!scored.is_empty()).then(|| scored.iter().filter(|&&p| p >= 2.5).count() as f64 / scored.len() as f64),
            mouth_to_ear_ms: mean_of(scores.iter().filter_map(|s| s.delay_ms)),
            link_one_way_ms: mean_of(series.iter().flat_map(|s| [s.up_delay_ms, s.down_delay_ms]).flatten()),
            up_kbps: mean_of(series.iter().map(|s| s.up_kbps)).unwrap_or(0.0),
            down_kbps: mean_of(series.iter().map(|s| s.down_kbps)).unwrap_or(0.0),
        }
    }

    pub fn line(&self, label: &str) -> String {
        let opt = |x: Option<f64>, k: f64| x.map_or("n/a".to_string(), |v| format!("{:.0}", v * k));
        format!(
            "{label}: intelligible (PESQ-WB ≥ 2.5) {} % of turns | mouth-to-ear {} ms | link one-way {} ms | {:.1} kbit/s up, {:.1} down per client",
            opt(self.share_intelligible, 100.0),
            opt(self.mouth_to_ear_ms, 1.0),
            opt(self.link_one_way_ms, 1.0),
            self.up_kbps,
            self.down_kbps
        )
    }
}

pub fn mean_pesq(scores: &[TurnScore]) -> Option<f64> {
    let v: Vec<f64> = scores.iter().filter_map(|s| s.pesq_wb).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

pub fn write_series_csv(path: &Path, series: &[Second]) -> anyhow::Result<()> {
    let opt = |x: Option<f64>| x.map(|v| format!("{v:.1}")).unwrap_or_default();
    let mut s = String::from("client,second,up_kbps,down_kbps,up_loss_pct,down_loss_pct,up_delay_ms,down_delay_ms,rtt_ms,srtt_ms,jitter_buffer_ms,concealed_pct,profile\n");
    for r in series {
        s.push_str(&format!(
            "{},{},{:.2},{:.2},{:.2},{:.2},{},{},{},{:.1},{},{:.2},{}\n",
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
            r.concealed_pct,
            r.profile
        ));
    }
    std::fs::write(path, s).with_context(|| format!("writing {}", path.display()))
}

/// Writes 16 kHz mono 16-bit samples as a WAV file.
pub fn write_wav(path: &Path, samples: &[i16]) -> anyhow::Result<()> {
    let spec = hound::WavSpec { channels: 1, sample_rate: RATE as u32, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(path, spec).with_context(|| format!("creating {}", path.display()))?;
    for &s in samples {
        w.write_sample(s)?;
    }
    w.finalize()?;
    Ok(())
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
