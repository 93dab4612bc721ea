//! Receiver feedback: what one side saw of the audio stream it receives,
//! summarised once a second as a [`ReceiverReport`] for the sender to act on
//! (rate adaptation), and the link state people see (good/weak/bad).
//!
//! Reports travel on the control stream, not as datagrams: the message is
//! already part of protocol v1 in both directions, it is ~12 bytes a second,
//! it usually rides in a packet QUIC sends anyway (ACKs, audio), and a
//! reliable report cannot vanish silently — a sender that stops hearing
//! reports knows the link is dead (the adapter's silence limit), rather than
//! guessing from missing datagrams.

use std::time::Duration;

use crate::jitter::{JitterStats, Unwrapper};
use crate::time::Time;
use crate::wire::audio::{AudioHeader, TICK_US};
use crate::wire::ReceiverReport;

/// How often each receiver reports.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Accumulates one report interval of arrivals on one stream.
#[derive(Debug, Clone, Default)]
pub struct ReportBuilder {
    seq: Unwrapper,
    ts: Unwrapper,
    /// Highest sequence number covered by earlier reports.
    reported_up_to: Option<i64>,
    highest: Option<i64>,
    received: u32,
    /// RFC 3550 interarrival jitter, µs.
    jitter_us: f64,
    last_transit: Option<i64>,
    /// Least-squares fit of transit (µs) over arrival (µs) in this interval.
    fit: Fit,
    max_burst: u16,
    loss_runs: u16,
    interval_start: Option<Time>,
    base: JitterStats,
}

#[derive(Debug, Clone, Copy, Default)]
struct Fit {
    n: f64,
    x0: f64,
    sx: f64,
    sy: f64,
    sxx: f64,
    sxy: f64,
}

impl Fit {
    fn add(&mut self, x: f64, y: f64) {
        if self.n == 0.0 {
            self.x0 = x;
        }
        let x = x - self.x0;
        self.n += 1.0;
        self.sx += x;
        self.sy += y;
        self.sxx += x * x;
        self.sxy += x * y;
    }

    /// Slope in µs per µs, if the points span enough time to mean anything.
    fn slope(&self) -> Option<f64> {
        let d = self.n * self.sxx - self.sx * self.sx;
        let span_ok = self.n >= 3.0 && self.sxx / self.n - (self.sx / self.n).powi(2) > 100_000f64.powi(2) / 12.0;
        (span_ok && d > 0.0).then(|| (self.n * self.sxy - self.sx * self.sy) / d)
    }
}

fn clamp_u16(v: i64) -> u16 {
    v.clamp(0, i64::from(u16::MAX)) as u16
}

impl ReportBuilder {
    /// One audio packet arrived (before the jitter buffer judges it).
    pub fn on_packet(&mut self, now: Time, h: &AudioHeader) {
        self.interval_start.get_or_insert(now);
        let seq = self.seq.extend(h.seq);
        let ts = self.ts.extend(h.ts);
        match self.highest {
            Some(hi) if seq > hi => {
                if seq > hi + 1 {
                    self.max_burst = self.max_burst.max(clamp_u16(seq - hi - 1));
                    self.loss_runs = self.loss_runs.saturating_add(1);
                }
                self.highest = Some(seq);
            }
            None => self.highest = Some(seq),
            _ => {}
        }
        if self.reported_up_to.is_none() {
            self.reported_up_to = Some(seq - 1);
        }
        self.received += 1;
        let transit = now.as_micros() as i64 - ts * TICK_US as i64;
        if let Some(last) = self.last_transit {
            let d = (transit - last).abs() as f64;
            self.jitter_us += (d - self.jitter_us) / 16.0;
        }
        self.last_transit = Some(transit);
        self.fit.add(now.as_micros() as f64, transit as f64);
    }

    /// The report for the interval so far, once it is [`REPORT_INTERVAL`] long;
    /// `stats` are the receiving jitter buffer's lifetime counters (late, recovered).
    pub fn take(&mut self, now: Time, stats: &JitterStats) -> Option<ReceiverReport> {
        let start = *self.interval_start.get_or_insert(now);
        let len = now.saturating_since(start);
        if len < REPORT_INTERVAL {
            return None;
        }
        let expected = match (self.highest, self.reported_up_to) {
            (Some(hi), Some(lo)) => (hi - lo).max(0),
            _ => 0,
        };
        let late = stats.late.saturating_sub(self.base.late);
        let recovered = stats.recovered.saturating_sub(self.base.recovered);
        let report = ReceiverReport {
            interval_ms: clamp_u16(len.as_millis() as i64),
            expected: clamp_u16(expected),
            lost: clamp_u16(expected - i64::from(self.received)),
            late: clamp_u16(late as i64),
            recovered: clamp_u16(recovered as i64),
            max_burst: self.max_burst,
            loss_runs: self.loss_runs,
            jitter_ms: clamp_u16((self.jitter_us / 1000.0).round() as i64),
            delay_trend: self.fit.slope().map_or(0, |s| (s * 1000.0).round().clamp(-32768.0, 32767.0) as i16),
        };
        self.reported_up_to = self.highest.or(self.reported_up_to);
        self.received = 0;
        self.max_burst = 0;
        self.loss_runs = 0;
        self.fit = Fit::default();
        self.interval_start = Some(now);
        self.base = *stats;
        Some(report)
    }
}

/// Residual loss a report shows: lost (not rebuilt from redundancy) plus late, over expected.
pub fn residual_loss(r: &ReceiverReport) -> f64 {
    if r.expected == 0 {
        return 0.0;
    }
    f64::from(r.lost.saturating_sub(r.recovered) + r.late) / f64::from(r.expected)
}

/// What people are told about their link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum LinkQuality {
    #[default]
    Good,
    /// Audible damage is likely: some loss, long delay or jitter.
    Weak,
    /// Audio does not get through well, or not at all.
    Bad,
}

impl LinkQuality {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkQuality::Good => "good",
            LinkQuality::Weak => "weak",
            LinkQuality::Bad => "bad",
        }
    }

    /// From the worse direction's residual loss, the path RTT and the receive jitter.
    pub fn classify(loss: f64, rtt: Option<Duration>, jitter_ms: u16) -> LinkQuality {
        let rtt_ms = rtt.map_or(0, |r| r.as_millis());
        if loss >= 0.15 || rtt_ms >= 1500 {
            LinkQuality::Bad
        } else if loss >= 0.03 || rtt_ms >= 800 || jitter_ms >= 80 {
            LinkQuality::Weak
        } else {
            LinkQuality::Good
        }
    }
}

/// The path as QUIC sees it, handed in by the shell (from `Connection::stats()`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathStats {
    pub rtt: Duration,
    /// Congestion window, bytes.
    pub cwnd: u64,
    /// Lifetime counters of QUIC packets sent and declared lost.
    pub sent_packets: u64,
    pub lost_packets: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::AudioHeader;

    fn header(seq: u16, ts: u16) -> AudioHeader {
        AudioHeader { seq, ts, marker: false, stream: None, level: None }
    }

    /// Packets every 40 ms (16 ticks); `delay_us(i)` is packet i's one-way delay.
    fn feed(b: &mut ReportBuilder, seqs: impl Iterator<Item = u16>, delay_us: impl Fn(u16) -> u64) {
        for s in seqs {
            let sent = u64::from(s) * 40_000;
            b.on_packet(Time::from_micros(sent + delay_us(s)), &header(s, s * 16));
        }
    }

    #[test]
    fn a_report_counts_the_gaps_in_the_sequence_as_loss() {
        let mut b = ReportBuilder::default();
        feed(&mut b, (0..25).filter(|s| !(10..13).contains(s) && *s != 20), |_| 100_000);
        let r = b.take(Time::from_micros(1_100_000), &JitterStats::default()).unwrap();
        assert_eq!((r.expected, r.lost, r.max_burst, r.loss_runs), (25, 4, 3, 2));
        assert_eq!(r.delay_trend, 0);
        // The next interval starts where this one ended.
        feed(&mut b, 25..50, |_| 100_000);
        let r = b.take(Time::from_micros(2_200_000), &JitterStats::default()).unwrap();
        assert_eq!((r.expected, r.lost), (25, 0));
    }

    #[test]
    fn a_building_queue_shows_as_a_positive_delay_trend() {
        let mut b = ReportBuilder::default();
        // Delay grows 100 ms per second of packets.
        feed(&mut b, 0..25, |s| 100_000 + u64::from(s) * 4_000);
        let r = b.take(Time::from_micros(1_300_000), &JitterStats::default()).unwrap();
        assert!((90..=110).contains(&r.delay_trend), "trend {}", r.delay_trend);
        assert!(r.jitter_ms <= 5);
    }

    #[test]
    fn late_and_recovered_packets_come_from_the_jitter_buffer_counters() {
        let mut b = ReportBuilder::default();
        feed(&mut b, 0..25, |_| 0);
        let stats = JitterStats { late: 2, recovered: 3, ..Default::default() };
        let r = b.take(Time::from_micros(1_000_000), &stats).unwrap();
        assert_eq!((r.late, r.recovered), (2, 3));
        feed(&mut b, 25..50, |_| 0);
        let r = b.take(Time::from_micros(2_000_000), &stats).unwrap();
        assert_eq!((r.late, r.recovered), (0, 0));
    }

    #[test]
    fn link_quality_follows_loss_and_rtt() {
        assert_eq!(LinkQuality::classify(0.0, Some(Duration::from_millis(300)), 10), LinkQuality::Good);
        assert_eq!(LinkQuality::classify(0.05, None, 10), LinkQuality::Weak);
        assert_eq!(LinkQuality::classify(0.0, Some(Duration::from_millis(2000)), 10), LinkQuality::Bad);
    }
}
