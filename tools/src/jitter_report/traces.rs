//! One talker's real Opus packets (looped speech, DTX on) sent through a
//! recorded trace in virtual time, into the real adaptive [`ReceiveStream`]
//! (decoder and stretcher included), pulled in steps as its receiver does
//! (the client 10 ms, the mixer 20 ms). The same packets' send and arrival
//! times give the best fixed-delay buffer in hindsight: the smallest delay
//! over the fastest packet with at most 2 % of packets late. It is judged on
//! the same pulls: a packet whose first sample plays inside a pull must have
//! arrived by that pull. The idealised one (played at any instant) is shown
//! beside it. Where the pulls fall against the sender's clock is arbitrary
//! (a device's phase), so both are run at several phases and averaged.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lowband_core::codec::CHUNK;
use lowband_core::jitter::{JitterConfig, JitterStats};
use lowband_core::link::mahimahi::MahimahiTrace;
use lowband_core::link::model::{Capacity, Link, LinkConfig};
use lowband_core::profile::Profile;
use lowband_core::stream::{ReceiveStream, SendStream};
use lowband_core::time::Time;

/// Bytes QUIC/UDP/IP add to each datagram on the wire (see FACTS.md).
const WIRE_OVERHEAD: usize = 56;
/// Late loss the fixed buffer may have (the goal for both).
pub const LATE_BUDGET: f64 = 0.02;

/// Packets of one talker: send time (µs from the start) and datagram.
pub struct Talk {
    pub packets: Vec<(u64, Vec<u8>)>,
    pub duration_ms: u64,
}

/// Encodes `speech` (looped) for `duration_ms` at `frame_ms` packets, DTX on.
pub fn encode(speech: &[i16], frame_ms: u32, duration_ms: u64) -> anyhow::Result<Talk> {
    let profile = Profile { frame_ms, ..Profile::default() };
    let mut send = SendStream::new(profile, None, true)?;
    let mut packets = Vec::new();
    let chunks = duration_ms / 20;
    for c in 0..chunks as usize {
        let start = (c * CHUNK) % (speech.len() - speech.len() % CHUNK);
        if let Some(d) = send.push_chunk(&speech[start..start + CHUNK])? {
            // A packet leaves when its last chunk has been captured.
            packets.push(((c as u64 + 1) * 20_000, d));
        }
    }
    Ok(Talk { packets, duration_ms })
}

#[derive(Debug, Clone, Copy)]
pub struct FixedBest {
    pub delay_ms: f64,
    pub late: f64,
    pub mean_delay_ms: f64,
}

/// One pull phase: the adaptive buffer and the best fixed one on the same pulls.
#[derive(Debug, Clone, Copy)]
pub struct PhaseRun {
    pub phase_us: u64,
    pub adaptive: JitterStats,
    pub adaptive_late: f64,
    /// Played through the same pulls (the goal's yardstick).
    pub fixed: FixedBest,
}

impl PhaseRun {
    /// Arrival to the first sample heard, as the fixed buffer's delay is measured.
    pub fn adaptive_mean_ms(&self) -> f64 {
        self.adaptive.mean_playout_delay_us as f64 / 1000.0
    }
}

#[derive(Debug, Clone)]
pub struct TraceRow {
    pub packets: usize,
    pub pull_us: u64,
    pub phases: Vec<PhaseRun>,
    /// Played at any instant, as no pulled receiver can (no phase).
    pub fixed_ideal: FixedBest,
}

impl TraceRow {
    /// The mean over phases of `f`.
    pub fn mean(&self, f: impl Fn(&PhaseRun) -> f64) -> f64 {
        self.phases.iter().map(f).sum::<f64>() / self.phases.len().max(1) as f64
    }

    /// The smallest and largest over phases of `f`.
    pub fn range(&self, f: impl Fn(&PhaseRun) -> f64) -> (f64, f64) {
        self.phases.iter().map(f).fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(x), hi.max(x)))
    }

    pub fn adaptive_mean_ms(&self) -> f64 {
        self.mean(PhaseRun::adaptive_mean_ms)
    }

    /// At most 2 % late at every phase.
    fn adaptive_in_budget(&self) -> bool {
        self.phases.iter().all(|p| p.adaptive_late <= LATE_BUDGET)
    }

    /// The goal: at most 2 % late, at a lower mean delay (over phases) than
    /// the best fixed buffer pulled alike.
    pub fn meets_goal(&self) -> bool {
        self.adaptive_in_budget() && self.adaptive_mean_ms() < self.mean(|p| p.fixed.mean_delay_ms)
    }

    /// The same against the idealised fixed buffer.
    pub fn beats_ideal(&self) -> bool {
        self.adaptive_in_budget() && self.adaptive_mean_ms() < self.fixed_ideal.mean_delay_ms
    }
}

/// `n` pull phases spread evenly over one pull, starting 7 ms in (the phase
/// earlier reports used), in whole ms as the replay steps.
pub fn phases(pull_us: u64, n: usize) -> Vec<u64> {
    let n = n.max(1) as u64;
    (0..n).map(|k| ((7_000 + (k * pull_us + n / 2) / n) % pull_us) / 1000 * 1000).collect()
}

/// Replays `talk` over `trace` (capacity only; no added delay or loss),
/// pulled every `config.pull`, once per phase in `phases_us`.
pub fn replay(talk: &Talk, trace: &MahimahiTrace, config: JitterConfig, phases_us: &[u64]) -> anyhow::Result<TraceRow> {
    let pull_us = config.pull.as_micros() as u64;
    let mut runs = Vec::new();
    let mut first = None;
    for (i, &phase_us) in phases_us.iter().enumerate() {
        let (run, excess) = replay_phase(talk, trace, config, phase_us, i == 0)?;
        runs.push(run);
        first.get_or_insert(excess);
    }
    let excess = first.unwrap_or_default();
    Ok(TraceRow { packets: talk.packets.len(), pull_us, phases: runs, fixed_ideal: best_fixed(&excess, talk.packets.len()) })
}

/// One phase; also the one-way delays of the packets that arrived (the same at every phase).
fn replay_phase(talk: &Talk, trace: &MahimahiTrace, config: JitterConfig, phase_us: u64, timeline: bool) -> anyhow::Result<(PhaseRun, Vec<i64>)> {
    let pull_us = config.pull.as_micros() as u64;
    anyhow::ensure!(pull_us % 1000 == 0 && (1000..=20_000).contains(&pull_us), "pulls are whole ms up to 20 ms");
    let link_cfg = LinkConfig { capacity: Capacity::Trace(Arc::new(trace.clone())), delay: Duration::ZERO, ..Default::default() };
    let mut link: Link<usize> = Link::new(link_cfg, 1);
    let mut recv = ReceiveStream::with_config(7, config)?;
    let mut arrivals: Vec<Option<u64>> = vec![None; talk.packets.len()];
    let mut next_send = 0usize;
    let mut chunk = [0i16; CHUNK];
    let chunk = &mut chunk[..pull_us as usize / 1000 * lowband_core::codec::SAMPLES_PER_MS];
    // Let the last packets drain through the link.
    let end_ms = talk.duration_ms + 10_000;
    let mut timeline = match std::env::var_os("JR_TIMELINE").filter(|_| timeline) {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p)?)),
        None => None,
    };
    for ms in 0..end_ms {
        let now = Time::from_millis(ms);
        while next_send < talk.packets.len() && talk.packets[next_send].0 <= now.as_micros() {
            let size = talk.packets[next_send].1.len() + WIRE_OVERHEAD;
            link.push(now, next_send, size);
            next_send += 1;
        }
        while let Some(i) = link.poll_deliver(now) {
            arrivals[i] = Some(now.as_micros());
            recv.insert_datagram(now, &talk.packets[i].1);
        }
        if (ms * 1000) % pull_us == phase_us {
            let played = recv.stats().jitter.played_packets;
            let kind = recv.pull_chunk(now, chunk);
            if let Some(t) = timeline.as_mut() {
                use std::io::Write;
                let jb = recv.jitter_buffer();
                let s = jb.stats();
                let lead = jb.playout_lead().map_or(-1.0, |l| l.as_secs_f64() * 1e3);
                writeln!(t, "{},{:.1},{:.1},{},{:?},{},{}", ms, s.target_delay_us as f64 / 1e3, lead, s.played_packets - played, kind, s.mean_delay_us, s.silence_moves)?;
            }
        }
    }
    let sent = talk.packets.len();
    let adaptive = recv.stats().jitter;
    let never = arrivals.iter().filter(|a| a.is_none()).count();
    let adaptive_late = (adaptive.late_loss() as usize + never) as f64 / sent as f64;
    let excess: Vec<i64> = talk
        .packets
        .iter()
        .zip(&arrivals)
        .filter_map(|((s, _), a)| a.map(|a| a as i64 - *s as i64))
        .collect();
    if std::env::var_os("JR_DEBUG").is_some() {
        let base = excess.iter().copied().min().unwrap_or(0);
        let mut e: Vec<i64> = excess.iter().map(|x| (x - base) / 1000).collect();
        e.sort_unstable();
        let q = |p: f64| e[((e.len() as f64 * p) as usize).min(e.len() - 1)];
        eprintln!("excess ms q50 {} q90 {} q95 {} q97 {} q98 {} q99 {} max {}; late {} skipped {} never {}", q(0.5), q(0.9), q(0.95), q(0.97), q(0.98), q(0.99), e[e.len() - 1], adaptive.late, adaptive.skipped_packets, never);
    }
    let sends: Vec<u64> = talk.packets.iter().map(|(s, _)| *s).collect();
    let fixed = best_fixed_pulled(&sends, &arrivals, pull_us as i64, phase_us as i64);
    Ok((PhaseRun { phase_us, adaptive, adaptive_late, fixed }, excess))
}

/// The smallest fixed delay `d` (over the fastest packet) with at most 2 % of
/// packets late when playout is pulled every `pull_us` at `phase_us`: packet
/// i is heard at send + fastest + d, so it must be there by the last pull at
/// or before that instant. The mean delay is from arrival to that instant.
pub fn best_fixed_pulled(send_us: &[u64], arrival_us: &[Option<u64>], pull_us: i64, phase_us: i64) -> FixedBest {
    let sent = send_us.len();
    let pairs: Vec<(i64, i64)> = send_us.iter().zip(arrival_us).filter_map(|(&s, a)| a.map(|a| (s as i64, a as i64))).collect();
    let base = pairs.iter().map(|(s, a)| a - s).min().unwrap_or(0);
    let deadline = |s: i64, d: i64| phase_us + (s + base + d - phase_us).div_euclid(pull_us) * pull_us;
    let late = |d: i64| sent - pairs.iter().filter(|&&(s, a)| a <= deadline(s, d)).count();
    let allowed = (sent as f64 * LATE_BUDGET).floor() as usize;
    // Late packets only get fewer as d grows: bisect in 1 ms steps.
    let max_ms = pairs.iter().map(|(s, a)| a - s - base).max().unwrap_or(0) / 1000 + pull_us / 1000 + 1;
    let (mut lo, mut hi) = (0i64, max_ms);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if late(mid * 1000) <= allowed {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let d = lo * 1000;
    let on_time: Vec<i64> = pairs.iter().filter(|&&(s, a)| a <= deadline(s, d)).map(|&(s, a)| s + base + d - a).collect();
    let mean = on_time.iter().sum::<i64>() as f64 / on_time.len().max(1) as f64;
    FixedBest { delay_ms: d as f64 / 1000.0, late: late(d) as f64 / sent.max(1) as f64, mean_delay_ms: mean / 1000.0 }
}

/// The smallest fixed delay (over the fastest packet) with at most 2 % of
/// `sent` late, and the mean time on-time packets wait in that buffer.
pub fn best_fixed(one_way_us: &[i64], sent: usize) -> FixedBest {
    let base = one_way_us.iter().copied().min().unwrap_or(0);
    let mut e: Vec<i64> = one_way_us.iter().map(|d| d - base).collect();
    e.sort_unstable();
    let never = sent - e.len();
    // Packets allowed late, counting those that never arrive.
    let allowed = ((sent as f64 * LATE_BUDGET).floor() as usize).saturating_sub(never);
    let keep = e.len().saturating_sub(allowed).max(1).min(e.len());
    let d = e.get(keep - 1).copied().unwrap_or(0);
    let on_time: Vec<i64> = e.iter().copied().filter(|&x| x <= d).collect();
    let late = (sent - on_time.len()) as f64 / sent.max(1) as f64;
    let mean = on_time.iter().map(|&x| (d - x) as f64).sum::<f64>() / on_time.len().max(1) as f64;
    FixedBest { delay_ms: d as f64 / 1000.0, late, mean_delay_ms: mean / 1000.0 }
}

/// Every trace file under `dir` with its direction label.
pub fn find_traces(dir: &Path) -> anyhow::Result<Vec<(String, String, MahimahiTrace)>> {
    let mut out = Vec::new();
    for sub in ["mahimahi", "norway-hsdpa"] {
        let mut entries: Vec<_> = std::fs::read_dir(dir.join(sub))?.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let direction = match p.extension().and_then(|e| e.to_str()) {
                Some("up") => "up",
                Some("down") => "down",
                // The Norway logs are downlink throughput.
                Some("mahimahi") => "down",
                _ => continue,
            };
            let trace = MahimahiTrace::parse(&std::fs::read_to_string(&p)?).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            let label = name.split('.').take(if sub == "norway-hsdpa" { 2 } else { 1 }).collect::<Vec<_>>().join(".");
            out.push((format!("{sub}/{label}"), direction.to_string(), trace));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pulled_fixed_buffer_needs_its_packets_by_the_pull_before_they_play() {
        // 100 packets every 20 ms, 97 arrive 10 ms after sending, 3 at 14 ms;
        // pulls at 7 ms past each 20 ms. Idealised, 4 ms of delay would do;
        // pulled, the first pull after they arrive is 17 ms after the fastest.
        let send: Vec<u64> = (1..=100).map(|i| i * 20_000).collect();
        let arrival: Vec<Option<u64>> = send.iter().enumerate().map(|(i, s)| Some(s + if i % 33 == 5 { 14_000 } else { 10_000 })).collect();
        let ideal: Vec<i64> = send.iter().zip(&arrival).map(|(&s, a)| a.unwrap() as i64 - s as i64).collect();
        assert_eq!(best_fixed(&ideal, 100).delay_ms, 4.0);
        let b = best_fixed_pulled(&send, &arrival, 20_000, 7_000);
        assert_eq!(b.delay_ms, 17.0);
        assert_eq!(b.late, 0.0);
        assert!((b.mean_delay_ms - (17.0 - 0.12)).abs() < 0.01, "{b:?}");
        // Pulled every 10 ms (same phase), the first pull after the arrivals is 7 ms after the fastest.
        let b = best_fixed_pulled(&send, &arrival, 10_000, 7_000);
        assert_eq!(b.delay_ms, 7.0);
        assert!((b.mean_delay_ms - (7.0 - 0.12)).abs() < 0.01, "{b:?}");
    }

    #[test]
    fn pull_phases_spread_over_one_pull_starting_at_7_ms() {
        assert_eq!(phases(20_000, 4), vec![7_000, 12_000, 17_000, 2_000]);
        assert_eq!(phases(10_000, 5), vec![7_000, 9_000, 1_000, 3_000, 5_000]);
        assert_eq!(phases(20_000, 1), vec![7_000]);
    }

    #[test]
    fn the_best_fixed_delay_leaves_at_most_two_percent_late() {
        // 100 packets: 97 on the floor, 3 delayed by 50 ms.
        let mut d = vec![10_000i64; 97];
        d.extend([60_000, 60_000, 60_000]);
        let b = best_fixed(&d, 100);
        assert_eq!(b.delay_ms, 50.0);
        assert!(b.late <= 0.02);
        let d: Vec<i64> = (0..100).map(|i| i * 1000).collect();
        let b = best_fixed(&d, 100);
        assert_eq!(b.delay_ms, 97.0);
        assert!((b.late - 0.02).abs() < 1e-9);
    }
}
