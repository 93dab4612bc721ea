//! Rate adaptation: choose a rung of a profile ladder (0 = richest, last =
//! leanest) from what the receiver reports and what QUIC measures.
//!
//! Down fast, up slow, no flapping:
//! - one bad report (residual loss, late loss, a growing queue, or RTT past
//!   the limit) steps down at once — two rungs when it is severe;
//! - stepping up needs a run of clean reports, and that run doubles each
//!   time a step up had to be undone soon after (up to a cap);
//! - a circuit breaker: at the leanest rung, a link that still loses most
//!   packets, or that stops reporting, goes receive-only; after a pause the
//!   adapter probes the leanest rung again, pausing longer after each failure.

use std::time::Duration;

use crate::profile::Profile;
use crate::time::Time;
use crate::wire::ReceiverReport;

/// The link profiles (`good`, `3g`, `edge`, `2g`) as the adapter walks them: richest first.
pub fn ladder() -> Vec<Profile> {
    let mut l = Profile::ladder();
    l.reverse();
    l
}

/// What QUIC says about the path when a report arrives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathSignal {
    pub rtt: Option<Duration>,
    /// The congestion window cannot hold one RTT of the current rung's packets:
    /// audio would queue in the sender (only without a media floor).
    pub window_starved: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AdaptConfig {
    /// Residual (after redundancy) loss above which to step down.
    pub down_loss: f64,
    /// Above this, step down two rungs.
    pub severe_loss: f64,
    /// Residual loss at or below which a report counts as clean.
    pub clean_loss: f64,
    /// Queue growth (ms of one-way delay per second) that means congestion.
    pub down_delay_trend: i16,
    /// RTT beyond which audio cannot be conversational on this rung.
    pub max_rtt: Duration,
    /// Clean time needed before the first step up.
    pub up_hold: Duration,
    pub max_up_hold: Duration,
    /// A step down this soon after a step up undoes it and doubles `up_hold`.
    pub flap_window: Duration,
    /// At the leanest rung: loss at which the breaker trips (after `breaker_reports` in a row).
    pub breaker_loss: f64,
    pub breaker_reports: u32,
    /// No report for this long: drop to the leanest rung.
    pub silence_limit: Duration,
    /// Still no report this long after that: receive-only. Long enough that a
    /// handover outage (up to ~10 s) does not stop the audio, which then
    /// flows again the moment the link returns.
    pub silence_trip: Duration,
    /// First pause in receive-only before probing again.
    pub probe_after: Duration,
    pub max_probe_after: Duration,
}

impl Default for AdaptConfig {
    fn default() -> Self {
        AdaptConfig {
            down_loss: 0.08,
            severe_loss: 0.25,
            clean_loss: 0.02,
            down_delay_trend: 40,
            max_rtt: Duration::from_millis(1500),
            up_hold: Duration::from_secs(10),
            max_up_hold: Duration::from_secs(120),
            flap_window: Duration::from_secs(20),
            breaker_loss: 0.5,
            breaker_reports: 3,
            silence_limit: Duration::from_secs(5),
            silence_trip: Duration::from_secs(15),
            probe_after: Duration::from_secs(10),
            max_probe_after: Duration::from_secs(120),
        }
    }
}

/// What the sender should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send on this rung of the ladder.
    Rung(usize),
    /// Stop sending audio: even the leanest rung does not get through.
    ReceiveOnly,
}

#[derive(Debug, Clone)]
pub struct RateAdapter {
    cfg: AdaptConfig,
    rungs: usize,
    decision: Decision,
    clean_since: Option<Time>,
    last_up: Option<Time>,
    up_hold: Duration,
    bad_at_bottom: u32,
    last_report: Option<Time>,
    receive_only_until: Option<Time>,
    probe_after: Duration,
    changes: u64,
    /// The breaker tripped because reports stopped (an outage), not because of loss.
    silent_trip: bool,
    /// Reports pooled until they cover enough packets to judge loss.
    pool: ReceiverReport,
}

/// Loss is judged over at least this many packets: at 60 ms packets and DTX
/// one report may cover a dozen, where a single loss reads as 8 %.
const MIN_POOL: u16 = 30;

impl RateAdapter {
    /// Starts on `start` of a ladder of `rungs` (≥ 1) profiles.
    pub fn new(cfg: AdaptConfig, rungs: usize, start: usize) -> Self {
        let rungs = rungs.max(1);
        RateAdapter {
            up_hold: cfg.up_hold,
            probe_after: cfg.probe_after,
            cfg,
            rungs,
            decision: Decision::Rung(start.min(rungs - 1)),
            clean_since: None,
            last_up: None,
            bad_at_bottom: 0,
            last_report: None,
            receive_only_until: None,
            changes: 0,
            silent_trip: false,
            pool: ReceiverReport::default(),
        }
    }

    pub fn decision(&self) -> Decision {
        self.decision
    }

    /// How many times the decision has changed (for reports and flap tests).
    pub fn changes(&self) -> u64 {
        self.changes
    }

    fn leanest(&self) -> usize {
        self.rungs - 1
    }

    fn set(&mut self, now: Time, d: Decision) -> Option<Decision> {
        if d == self.decision {
            return None;
        }
        if let (Decision::Rung(old), Decision::Rung(new)) = (self.decision, d) {
            if new < old {
                self.last_up = Some(now);
            } else if self.last_up.is_some_and(|t| now.saturating_since(t) < self.cfg.flap_window) {
                // The step up did not hold: wait longer before the next one.
                self.up_hold = (self.up_hold * 2).min(self.cfg.max_up_hold);
            }
        }
        self.decision = d;
        self.changes += 1;
        self.clean_since = None;
        Some(d)
    }

    /// Takes one receiver report about the stream this side sends; returns a new decision if it changed.
    pub fn on_report(&mut self, now: Time, r: &ReceiverReport, path: PathSignal) -> Option<Decision> {
        self.last_report = Some(now);
        let p = &mut self.pool;
        p.expected = p.expected.saturating_add(r.expected);
        p.lost = p.lost.saturating_add(r.lost);
        p.recovered = p.recovered.saturating_add(r.recovered);
        p.late = p.late.saturating_add(r.late);
        // Severe loss acts at once; otherwise loss is judged once enough packets are pooled.
        let severe_now = r.expected >= 5 && crate::feedback::residual_loss(r) > self.cfg.severe_loss;
        let residual = (p.expected >= MIN_POOL || severe_now).then(|| crate::feedback::residual_loss(&std::mem::take(p)));
        let raw = f64::from(r.lost) / f64::from(r.expected.max(1));
        let queue_growing = r.delay_trend >= self.cfg.down_delay_trend;
        let rtt_bad = path.rtt.is_some_and(|x| x > self.cfg.max_rtt);
        let bad = residual.is_some_and(|x| x > self.cfg.down_loss) || queue_growing || rtt_bad || path.window_starved;
        let clean = residual.is_none_or(|x| x <= self.cfg.clean_loss) && r.delay_trend <= self.cfg.down_delay_trend / 4 && !rtt_bad;
        let residual = residual.unwrap_or(0.0);

        match self.decision {
            // Reports are back after an outage: the link passes again, try at once.
            Decision::ReceiveOnly if self.silent_trip => {
                self.silent_trip = false;
                self.receive_only_until = None;
                self.set(now, Decision::Rung(self.leanest()))
            }
            Decision::ReceiveOnly => self.tick(now),
            Decision::Rung(rung) => {
                if rung == self.leanest() {
                    if r.expected >= 5 || r.lost > 0 {
                        self.bad_at_bottom = if raw >= self.cfg.breaker_loss { self.bad_at_bottom + 1 } else { 0 };
                    }
                    if self.bad_at_bottom >= self.cfg.breaker_reports {
                        return self.trip(now);
                    }
                }
                if bad {
                    let step = if residual > self.cfg.severe_loss { 2 } else { 1 };
                    return self.set(now, Decision::Rung((rung + step).min(self.leanest())));
                }
                if !clean {
                    self.clean_since = None;
                    return None;
                }
                let since = *self.clean_since.get_or_insert(now);
                if rung > 0 && now.saturating_since(since) >= self.up_hold {
                    return self.set(now, Decision::Rung(rung - 1));
                }
                None
            }
        }
    }

    fn trip(&mut self, now: Time) -> Option<Decision> {
        self.bad_at_bottom = 0;
        self.silent_trip = false;
        self.receive_only_until = Some(now + self.probe_after);
        self.probe_after = (self.probe_after * 2).min(self.cfg.max_probe_after);
        self.set(now, Decision::ReceiveOnly)
    }

    /// Call periodically (e.g. every second): handles silence and receive-only probes.
    pub fn tick(&mut self, now: Time) -> Option<Decision> {
        match self.decision {
            Decision::ReceiveOnly => {
                if self.receive_only_until.is_some_and(|t| now >= t) {
                    self.receive_only_until = None;
                    self.last_report = Some(now);
                    return self.set(now, Decision::Rung(self.leanest()));
                }
                None
            }
            Decision::Rung(rung) => {
                let limit = if rung == self.leanest() { self.cfg.silence_trip } else { self.cfg.silence_limit };
                let silent = self.last_report.is_some_and(|t| now.saturating_since(t) >= limit);
                if !silent {
                    return None;
                }
                self.last_report = Some(now);
                if rung == self.leanest() {
                    let d = self.trip(now);
                    self.silent_trip = true;
                    d
                } else {
                    self.set(now, Decision::Rung(self.leanest()))
                }
            }
        }
    }

    /// A probe that held for a while earns back the short probe pause.
    pub fn note_stable(&mut self) {
        self.probe_after = self.cfg.probe_after;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(loss_pct: u16, trend: i16) -> ReceiverReport {
        ReceiverReport { interval_ms: 1000, expected: 100, lost: loss_pct, delay_trend: trend, ..Default::default() }
    }

    fn secs(s: u64) -> Time {
        Time::from_millis(s * 1000)
    }

    #[test]
    fn one_lossy_report_steps_down_at_once_and_severe_loss_two_rungs() {
        let mut a = RateAdapter::new(AdaptConfig::default(), 4, 0);
        assert_eq!(a.on_report(secs(1), &report(10, 0), PathSignal::default()), Some(Decision::Rung(1)));
        assert_eq!(a.on_report(secs(2), &report(30, 0), PathSignal::default()), Some(Decision::Rung(3)));
    }

    #[test]
    fn a_building_queue_or_a_huge_rtt_steps_down_without_loss() {
        let mut a = RateAdapter::new(AdaptConfig::default(), 4, 0);
        assert_eq!(a.on_report(secs(1), &report(0, 60), PathSignal::default()), Some(Decision::Rung(1)));
        assert_eq!(a.on_report(secs(2), &report(0, 0), PathSignal { rtt: Some(Duration::from_secs(2)), ..Default::default() }), Some(Decision::Rung(2)));
    }

    #[test]
    fn stepping_up_waits_for_ten_clean_seconds() {
        let mut a = RateAdapter::new(AdaptConfig::default(), 4, 2);
        for s in 1..=10 {
            assert_eq!(a.on_report(secs(s), &report(0, 0), PathSignal::default()), None, "stepped up after {s} s");
        }
        assert_eq!(a.on_report(secs(11), &report(0, 0), PathSignal::default()), Some(Decision::Rung(1)));
    }

    #[test]
    fn redundancy_that_recovers_the_loss_does_not_count_against_the_rung() {
        let mut a = RateAdapter::new(AdaptConfig::default(), 4, 1);
        let r = ReceiverReport { recovered: 12, ..report(12, 0) };
        assert_eq!(a.on_report(secs(1), &r, PathSignal::default()), None);
    }

    #[test]
    fn an_oscillating_link_does_not_make_the_profile_flap() {
        let mut a = RateAdapter::new(AdaptConfig::default(), 4, 0);
        // 12 s clean, 1 s bad, repeated for ten minutes.
        let mut t = 0;
        for _ in 0..46 {
            for _ in 0..12 {
                t += 1;
                a.on_report(secs(t), &report(0, 0), PathSignal::default());
            }
            t += 1;
            a.on_report(secs(t), &report(12, 0), PathSignal::default());
        }
        // Undamped, that is two changes per 13 s cycle (~92); damped, far fewer.
        assert!(a.changes() <= 30, "{} changes in {t} s", a.changes());
    }

    #[test]
    fn one_loss_among_a_dozen_packets_is_not_enough_to_step_down() {
        let mut a = RateAdapter::new(AdaptConfig::default(), 4, 1);
        let few = |lost| ReceiverReport { interval_ms: 1000, expected: 12, lost, ..Default::default() };
        assert_eq!(a.on_report(secs(1), &few(1), PathSignal::default()), None);
        assert_eq!(a.on_report(secs(2), &few(0), PathSignal::default()), None);
        assert_eq!(a.on_report(secs(3), &few(0), PathSignal::default()), None);
        // Sustained loss over the pooled packets still does.
        for s in 4..=6 {
            a.on_report(secs(s), &few(2), PathSignal::default());
        }
        assert_eq!(a.decision(), Decision::Rung(2));
    }

    #[test]
    fn a_dead_link_goes_receive_only_and_probes_back_by_itself() {
        let mut a = RateAdapter::new(AdaptConfig::default(), 3, 2);
        for s in 1..=3 {
            a.on_report(secs(s), &report(90, 0), PathSignal::default());
        }
        assert_eq!(a.decision(), Decision::ReceiveOnly);
        assert_eq!(a.tick(secs(8)), None);
        assert_eq!(a.tick(secs(13)), Some(Decision::Rung(2)));
        // It fails again: the next pause is twice as long.
        for s in 14..=16 {
            a.on_report(secs(s), &report(90, 0), PathSignal::default());
        }
        assert_eq!(a.decision(), Decision::ReceiveOnly);
        assert_eq!(a.tick(secs(30)), None);
        assert_eq!(a.tick(secs(36)), Some(Decision::Rung(2)));
    }

    #[test]
    fn a_link_that_stops_reporting_falls_to_the_leanest_rung_then_receive_only() {
        let mut a = RateAdapter::new(AdaptConfig::default(), 3, 0);
        a.on_report(secs(1), &report(0, 0), PathSignal::default());
        assert_eq!(a.tick(secs(6)), Some(Decision::Rung(2)));
        // A 10 s handover outage does not stop the audio...
        assert_eq!(a.tick(secs(16)), None);
        // ... a longer silence does.
        assert_eq!(a.tick(secs(21)), Some(Decision::ReceiveOnly));
        // The first report after the outage ends receive-only without waiting for the probe.
        assert_eq!(a.on_report(secs(22), &report(0, 0), PathSignal::default()), Some(Decision::Rung(2)));
    }
}
