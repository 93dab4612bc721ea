//! Time-stretch quality: speech played 10 % faster and 10 % slower through
//! `lowband_core::stretch`, then brought back to its length by the opposite
//! stretch (a round trip), scored by PESQ-WB against the original.
//!
//! Why a round trip: a stretched signal is longer or shorter than the
//! original, so PESQ cannot compare it directly; the inverse stretch restores
//! the time axis with the same kind of operation, and since both passes cost
//! quality, the score is a lower bound for one pass.

use lowband_core::stretch::{max_step, play_at_rate, undo};

#[derive(Debug, Clone)]
pub struct StretchRow {
    pub file: String,
    /// "faster" (×1.1 then ×1/1.1) or "slower" (×0.9 then ×1/0.9).
    pub direction: &'static str,
    /// Length ratio achieved by the first pass (input / output).
    pub achieved_rate: f64,
    pub pesq_wb: f64,
    /// The same, brought back by a blind opposite stretch instead (edits in other places, so the time axes wander).
    pub pesq_wb_blind: f64,
    pub edits: usize,
    pub max_step_in: i32,
    pub max_step_out: i32,
}

pub fn measure(file: &str, speech: &[i16]) -> Result<Vec<StretchRow>, String> {
    let mut rows = Vec::new();
    for (direction, rate) in [("faster", 1.1), ("slower", 0.9)] {
        let (once, edits) = play_at_rate(speech, rate);
        let back = undo(&once, &edits);
        let n = back.len().min(speech.len());
        let pesq = pesq::pesq_wb(&speech[..n], &back[..n]).map_err(|e| format!("PESQ: {e:?}"))?;
        let (blind, _) = play_at_rate(&once, 1.0 / rate);
        let n = blind.len().min(speech.len());
        let pesq_blind = pesq::pesq_wb(&speech[..n], &blind[..n]).map_err(|e| format!("PESQ: {e:?}"))?;
        rows.push(StretchRow {
            file: file.to_string(),
            direction,
            achieved_rate: speech.len() as f64 / once.len() as f64,
            pesq_wb: f64::from(pesq),
            pesq_wb_blind: f64::from(pesq_blind),
            edits: edits.len(),
            max_step_in: max_step(speech),
            max_step_out: max_step(&once),
        });
    }
    Ok(rows)
}
