//! Alignment and scoring of heard audio against what was said.

/// RMS level in dBFS (−100 for digital silence).
pub fn rms_dbfs(x: &[i16]) -> f64 {
    if x.is_empty() {
        return -100.0;
    }
    let e = x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64;
    if e <= 0.0 {
        -100.0
    } else {
        10.0 * (e / (32768.0f64 * 32768.0)).log10()
    }
}

/// Delay (in samples, 0..=max_lag) at which `heard` best matches `said`,
/// by normalised cross-correlation of the envelopes, refined on samples.
pub fn find_delay(said: &[i16], heard: &[i16], max_lag: usize) -> usize {
    // Coarse search on 4 ms envelope blocks keeps this fast for long signals.
    const B: usize = 64;
    let env = |x: &[i16]| -> Vec<f64> { x.chunks(B).map(|c| c.iter().map(|&s| f64::from(s).abs()).sum::<f64>()).collect() };
    let (es, eh) = (env(said), env(heard));
    let best_block = (0..=max_lag / B)
        .max_by(|&a, &b| corr(&es, &eh, a).total_cmp(&corr(&es, &eh, b)))
        .unwrap_or(0);
    let lo = (best_block * B).saturating_sub(2 * B);
    let hi = (best_block * B + 2 * B).min(max_lag);
    let fine = |lag: usize| -> f64 {
        said.iter().zip(heard.iter().skip(lag)).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum()
    };
    (lo..=hi).max_by(|&a, &b| fine(a).total_cmp(&fine(b))).unwrap_or(0)
}

fn corr(a: &[f64], b: &[f64], lag: usize) -> f64 {
    let n = a.len().min(b.len().saturating_sub(lag));
    if n == 0 {
        return f64::MIN;
    }
    let (x, y) = (&a[..n], &b[lag..lag + n]);
    let (mx, my) = (x.iter().sum::<f64>() / n as f64, y.iter().sum::<f64>() / n as f64);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (p, q) in x.iter().zip(y) {
        sxy += (p - mx) * (q - my);
        sxx += (p - mx).powi(2);
        syy += (q - my).powi(2);
    }
    if sxx == 0.0 || syy == 0.0 {
        0.0
    } else {
        sxy / (sxx * syy).sqrt()
    }
}

/// What a listener's recording says about one talker's turn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Heard {
    /// Mouth-to-ear delay found by alignment, in ms.
    pub delay_ms: f64,
    pub pesq_wb: f64,
    pub level_dbfs: f64,
}

/// Scores `heard` against `said`, which started `said_at` samples into the
/// recording; searches up to `max_delay` samples of delay.
pub fn score_turn(said: &[i16], heard: &[i16], said_at: usize, max_delay: usize) -> Result<Heard, String> {
    let (delay, reference, seg) = align(said, heard, said_at, max_delay)?;
    // pesq 0.2 can overflow on badly damaged audio; that is a failed score, not a crash.
    let pesq = std::panic::catch_unwind(|| pesq::pesq_wb(reference, seg))
        .map_err(|_| "PESQ failed on this audio".to_string())?
        .map_err(|e| format!("PESQ: {e:?}"))?;
    Ok(Heard { delay_ms: delay as f64 / 16.0, pesq_wb: f64::from(pesq), level_dbfs: rms_dbfs(seg) })
}

/// Finds `said` in `heard` (started `said_at` samples in, delayed by up to
/// `max_delay`): the delay and the matching reference and heard slices.
fn align<'a>(said: &'a [i16], heard: &'a [i16], said_at: usize, max_delay: usize) -> Result<(usize, &'a [i16], &'a [i16]), String> {
    let window = heard.get(said_at..).ok_or("recording ends before the speech")?;
    let delay = find_delay(said, window, max_delay);
    let seg = window.get(delay..).ok_or("recording ends before the speech")?;
    let seg = &seg[..said.len().min(seg.len())];
    Ok((delay, &said[..seg.len()], seg))
}

/// ViSQOL v3 speech-mode MOS-LQO (the `visqol-rs` port), 16 kHz input.
pub fn visqol(reference: &[i16], degraded: &[i16]) -> Result<f64, String> {
    use visqol_rs::constants::{DEFAULT_WINDOW_SIZE, NUM_BANDS_SPEECH};
    use visqol_rs::variant::Variant;
    use visqol_rs::visqol_manager::VisqolManager;
    use visqol_rs::AudioSignal;
    let f = |x: &[i16]| -> Vec<f64> { x.iter().map(|&s| f64::from(s) / 32767.0).collect() };
    let mut manager = VisqolManager::<NUM_BANDS_SPEECH>::new(Variant::Wideband { use_unscaled_mos_mapping: false }, DEFAULT_WINDOW_SIZE);
    let mut r = AudioSignal::new(&f(reference), 16_000);
    let mut d = AudioSignal::new(&f(degraded), 16_000);
    manager.compute_results(&mut r, &mut d).map(|s| s.moslqo).map_err(|e| format!("ViSQOL: {e}"))
}

/// PESQ-WB (and, when asked, ViSQOL) of what was heard, aligned to what was said.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    pub delay_ms: f64,
    pub pesq_wb: f64,
    pub visqol: Option<f64>,
}

/// Aligns `heard` (where `said` started at `said_at` before any delay) and scores it.
pub fn score_aligned(said: &[i16], heard: &[i16], said_at: usize, max_delay: usize, with_visqol: bool) -> Result<Scores, String> {
    let (delay, reference, seg) = align(said, heard, said_at, max_delay)?;
    let pesq = pesq::pesq_wb(reference, seg).map_err(|e| format!("PESQ: {e:?}"))?;
    let visqol = if with_visqol { Some(visqol(reference, seg)?) } else { None };
    Ok(Scores { delay_ms: delay as f64 / 16.0, pesq_wb: f64::from(pesq), visqol })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, seed: u32) -> Vec<i16> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((s >> 16) as i16) / 4
            })
            .collect()
    }

    #[test]
    fn a_known_delay_is_found_to_the_sample() {
        let said = noise(16_000, 1);
        let mut heard = vec![0i16; 1_234];
        heard.extend_from_slice(&said);
        assert_eq!(find_delay(&said, &heard, 8_000), 1_234);
    }

    #[test]
    fn silence_is_minus_one_hundred_dbfs() {
        assert_eq!(rms_dbfs(&[0; 10]), -100.0);
        assert!((rms_dbfs(&[i16::MAX; 10]) - 0.0).abs() < 0.01);
    }
}
