//! Time-stretching of decoded speech, as NetEq's accelerate and preemptive
//! expand do it: remove or repeat exactly one pitch period, cross-faded, and
//! only where the signal is periodic (or quiet). Whole periods keep the pitch
//! and the waveform intact, so stretched speech sounds unstretched; transients
//! (onsets, plosives) are never touched. Works in place, never allocates.

use crate::codec::SAMPLES_PER_MS;

/// Shortest pitch period searched: 2.5 ms (400 Hz).
pub const MIN_PERIOD: usize = 5 * SAMPLES_PER_MS / 2;
/// Longest: 16 ms (62.5 Hz), enough for low male voices.
pub const MAX_PERIOD: usize = 16 * SAMPLES_PER_MS;
/// Normalised correlation of two adjacent periods above which speech counts as periodic.
const PERIODIC: f64 = 0.9;
/// Below this RMS (about −56 dBFS) the signal is background: any period length may go.
const QUIET_RMS: f64 = 50.0;
/// Two adjacent periods whose energies differ more than this are a transient.
const MAX_ENERGY_RATIO: f64 = 2.0;

/// What one operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stretch {
    /// Nothing suitable (aperiodic or a transient): the audio is unchanged.
    None,
    /// This many samples were removed (accelerate).
    Removed(usize),
    /// This many samples were inserted (preemptive expand).
    Inserted(usize),
}

/// The best period length in `x` (comparing x[0..L] with x[L..2L]) and its
/// normalised correlation, or `None` if `x` is too short or is a transient.
/// Periods are at most `longest` samples.
fn find_period(x: &[i16], longest: usize) -> Option<(usize, f64)> {
    let max = MAX_PERIOD.min(longest).min(x.len() / 2);
    if max < MIN_PERIOD {
        return None;
    }
    let energy: i64 = x[..2 * max].iter().map(|&v| i64::from(v) * i64::from(v)).sum();
    if ((energy as f64) / (2 * max) as f64).sqrt() < QUIET_RMS {
        // Background noise or silence: the longest span goes, nobody hears it.
        return Some((max, 1.0));
    }
    let mut corr = [f64::MIN; MAX_PERIOD + 1];
    for l in MIN_PERIOD..=max {
        let (a, b) = (&x[..l], &x[l..2 * l]);
        let (mut ab, mut aa, mut bb) = (0i64, 0i64, 0i64);
        for (&p, &q) in a.iter().zip(b) {
            let (p, q) = (i64::from(p), i64::from(q));
            ab += p * q;
            aa += p * p;
            bb += q * q;
        }
        let (ea, eb) = (aa as f64 + 1.0, bb as f64 + 1.0);
        if ea / eb <= MAX_ENERGY_RATIO && eb / ea <= MAX_ENERGY_RATIO {
            corr[l] = ab as f64 / (ea * eb).sqrt();
        }
    }
    let best = (MIN_PERIOD..=max).max_by(|&a, &b| corr[a].total_cmp(&corr[b]))?;
    if corr[best] == f64::MIN {
        return None;
    }
    // A multiple of the period correlates about as well but removes more at
    // once: prefer the fundamental when it is nearly as good.
    for k in (2..=4).rev() {
        let centre = best / k;
        let lo = centre.saturating_sub(2).max(MIN_PERIOD);
        let hi = (centre + 2).min(max);
        if lo > hi {
            continue;
        }
        let sub = (lo..=hi).max_by(|&a, &b| corr[a].total_cmp(&corr[b])).expect("non-empty");
        if corr[sub] >= corr[best] - 0.05 {
            return Some((sub, corr[sub]));
        }
    }
    Some((best, corr[best]))
}

/// Linear fade-in weight for sample `i` of an `n`-sample cross-fade, exactly
/// 0 before the start and 1 at the end, so both seams are continuous.
fn fade_in(i: usize, n: usize) -> f64 {
    (i + 1) as f64 / (n + 1) as f64
}

fn mix(out_gone: i16, coming: i16, w: f64) -> i16 {
    (f64::from(out_gone) * (1.0 - w) + f64::from(coming) * w).round().clamp(-32768.0, 32767.0) as i16
}

/// Accelerate: removes one pitch period from the front of `buf[..*len]`,
/// cross-fading period 1 into period 2. Needs `*len` ≥ 2 × the period.
pub fn accelerate(buf: &mut [i16], len: &mut usize) -> Stretch {
    accelerate_at_most(buf, len, MAX_PERIOD)
}

/// Accelerate removing at most `most` samples (a period no longer than that).
pub fn accelerate_at_most(buf: &mut [i16], len: &mut usize, most: usize) -> Stretch {
    let Some((l, c)) = find_period(&buf[..*len], most) else { return Stretch::None };
    if c < PERIODIC {
        return Stretch::None;
    }
    remove_period(buf, len, l);
    Stretch::Removed(l)
}

/// Removes up to `most` samples (at least [`MIN_PERIOD`]) from the front of
/// `buf[..*len]` only if that stretch is quiet (a pause between words):
/// moves playout without touching speech at all.
pub fn accelerate_quiet_at_most(buf: &mut [i16], len: &mut usize, most: usize) -> Stretch {
    let l = MAX_PERIOD.min(most).min(*len / 2);
    if l < MIN_PERIOD {
        return Stretch::None;
    }
    let energy: i64 = buf[..2 * l].iter().map(|&v| i64::from(v) * i64::from(v)).sum();
    if ((energy as f64) / (2 * l) as f64).sqrt() >= QUIET_RMS {
        return Stretch::None;
    }
    remove_period(buf, len, l);
    Stretch::Removed(l)
}

/// Preemptive expand: repeats one pitch period near the front of
/// `buf[..*len]`. `buf` needs room for `MAX_PERIOD` more samples.
pub fn expand(buf: &mut [i16], len: &mut usize) -> Stretch {
    let Some((l, c)) = find_period(&buf[..*len], MAX_PERIOD) else { return Stretch::None };
    if c < PERIODIC || *len + l > buf.len() {
        return Stretch::None;
    }
    insert_period(buf, len, l);
    Stretch::Inserted(l)
}

/// x[0..2l] becomes fade(x[0..l] → x[l..2l]).
fn remove_period(buf: &mut [i16], len: &mut usize, l: usize) {
    for i in 0..l {
        buf[i] = mix(buf[i], buf[l + i], fade_in(i, l));
    }
    buf.copy_within(2 * l..*len, l);
    *len -= l;
}

/// x[0..2l] becomes x[0..l] ++ fade(x[l..2l] → x[0..l]) ++ x[l..2l].
fn insert_period(buf: &mut [i16], len: &mut usize, l: usize) {
    buf.copy_within(l..*len, 2 * l);
    for i in 0..l {
        buf[l + i] = mix(buf[2 * l + i], buf[i], fade_in(i, l));
    }
    *len += l;
}

/// One operation of [`play_at_rate`]: at this output sample, this many
/// samples were removed (negative) or inserted (positive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edit {
    pub at: usize,
    pub samples: isize,
}

/// Plays `input` at `rate` (1.1 = 10 % faster, 0.9 = 10 % slower) by the same
/// operations the receive stream uses: 20 ms chunks out, one operation at most
/// per chunk, whenever the output is behind or ahead of the wanted length.
/// Returns the output and where it was edited.
pub fn play_at_rate(input: &[i16], rate: f64) -> (Vec<i16>, Vec<Edit>) {
    const CHUNK: usize = 20 * SAMPLES_PER_MS;
    // Look-ahead that lets the longest period be found twice over.
    const AHEAD: usize = 2 * MAX_PERIOD;
    let mut out = Vec::with_capacity((input.len() as f64 / rate) as usize + CHUNK);
    let mut edits = Vec::new();
    let mut buf = vec![0i16; AHEAD + CHUNK + MAX_PERIOD + CHUNK];
    let (mut len, mut fed) = (0usize, 0usize);
    loop {
        while len < AHEAD + CHUNK && fed < input.len() {
            let n = (AHEAD + CHUNK - len).min(input.len() - fed);
            buf[len..len + n].copy_from_slice(&input[fed..fed + n]);
            len += n;
            fed += n;
        }
        if len == 0 {
            break;
        }
        // Input consumed so far, against the output it should have produced.
        let consumed = fed - len;
        let wanted = (consumed as f64 / rate) as i64;
        let behind = out.len() as i64 - wanted;
        if fed < input.len() {
            let done = if rate > 1.0 && behind > 0 {
                accelerate(&mut buf, &mut len)
            } else if rate < 1.0 && behind < 0 {
                expand(&mut buf, &mut len)
            } else {
                Stretch::None
            };
            match done {
                Stretch::Removed(n) => edits.push(Edit { at: out.len(), samples: -(n as isize) }),
                Stretch::Inserted(n) => edits.push(Edit { at: out.len(), samples: n as isize }),
                Stretch::None => {}
            }
        }
        let n = CHUNK.min(len);
        out.extend_from_slice(&buf[..n]);
        buf.copy_within(n..len, 0);
        len -= n;
    }
    (out, edits)
}

/// Undoes `edits` where they were made: a removed period is put back by
/// repeating one, an inserted one is taken out again, so the result lines up
/// with the original sample for sample and only the cross-fades differ.
pub fn undo(stretched: &[i16], edits: &[Edit]) -> Vec<i16> {
    let mut out = stretched.to_vec();
    for e in edits.iter().rev() {
        let mut tail = out.split_off(e.at);
        let l = e.samples.unsigned_abs();
        let mut len = tail.len();
        if e.samples < 0 {
            if len < l {
                out.extend(tail);
                continue;
            }
            tail.resize(len + l, 0);
            insert_period(&mut tail, &mut len, l);
        } else {
            if len < 2 * l {
                out.extend(tail);
                continue;
            }
            remove_period(&mut tail, &mut len, l);
        }
        out.extend_from_slice(&tail[..len]);
    }
    out
}

/// Largest sample-to-sample step, the measure of a click.
pub fn max_step(x: &[i16]) -> i32 {
    x.windows(2).map(|w| (i32::from(w[1]) - i32::from(w[0])).abs()).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voiced(n: usize, period: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let ph = (i % period) as f64 / period as f64 * std::f64::consts::TAU;
                (6000.0 * ph.sin() + 3000.0 * (2.0 * ph).sin() + 1500.0 * (3.0 * ph).cos()) as i16
            })
            .collect()
    }

    #[test]
    fn accelerate_removes_exactly_one_period_of_a_periodic_signal_without_a_click() {
        let x = voiced(640, 100);
        let mut buf = x.clone();
        let mut len = buf.len();
        assert_eq!(accelerate(&mut buf, &mut len), Stretch::Removed(100));
        assert_eq!(len, 540);
        assert!(max_step(&buf[..len]) <= max_step(&x) + 2);
    }

    #[test]
    fn expand_repeats_one_period_without_a_click() {
        let x = voiced(480, 80);
        let mut buf = x.clone();
        buf.resize(480 + MAX_PERIOD, 0);
        let mut len = 480;
        assert_eq!(expand(&mut buf, &mut len), Stretch::Inserted(80));
        assert_eq!(len, 560);
        assert!(max_step(&buf[..len]) <= max_step(&x) + 2);
    }

    #[test]
    fn noise_bursts_and_onsets_are_left_alone() {
        let mut s = 1u32;
        let mut noise: Vec<i16> = (0..640)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 17) as i16 - 16384
            })
            .collect();
        let mut len = noise.len();
        assert_eq!(accelerate(&mut noise, &mut len), Stretch::None);
        // An onset: silence, then a loud periodic signal.
        let mut onset = vec![0i16; 200];
        onset.extend(voiced(440, 100));
        let mut len = onset.len();
        assert_eq!(accelerate(&mut onset, &mut len), Stretch::None);
    }

    #[test]
    fn quiet_acceleration_shortens_a_pause_but_never_touches_speech() {
        let speech = voiced(640, 100);
        let mut buf = speech.clone();
        let mut len = buf.len();
        assert_eq!(accelerate_quiet_at_most(&mut buf, &mut len, MAX_PERIOD), Stretch::None);
        assert_eq!(&buf[..len], &speech[..]);
        // A pause (faint hiss) before the next word: up to `most` samples of it go.
        let mut pause: Vec<i16> = (0..640).map(|i| [3, -2, 1, -4][i % 4]).collect();
        pause.extend(voiced(320, 100));
        let before = pause.clone();
        let mut len = pause.len();
        assert_eq!(accelerate_quiet_at_most(&mut pause, &mut len, 100), Stretch::Removed(100));
        assert_eq!(len, 860);
        assert_eq!(&pause[540..len], &before[640..], "the word after the pause is untouched");
        assert!(max_step(&pause[..len]) <= max_step(&before));
    }

    #[test]
    fn playing_at_ten_percent_faster_or_slower_changes_the_length_by_that_much() {
        let x = voiced(16_000, 90);
        let (fast, _) = play_at_rate(&x, 1.1);
        let (slow, _) = play_at_rate(&x, 0.9);
        let r = |y: &[i16]| x.len() as f64 / y.len() as f64;
        assert!((r(&fast) - 1.1).abs() < 0.02, "{}", r(&fast));
        assert!((r(&slow) - 0.9).abs() < 0.02, "{}", r(&slow));
    }
}
