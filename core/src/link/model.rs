//! One direction of an emulated network link, sans-IO and seeded. A packet
//! pushed at `now` goes through, in order: scheduled outages, random loss,
//! duplication, the bottleneck (unlimited, a byte-rate serializer, or mahimahi
//! delivery opportunities) with a drop-tail queue, then the propagation stage
//! (fixed delay plus jitter, or reordering). A recorded link (see
//! [`super::record`]) replaces loss, delay and jitter with what was observed.
//!
//! Both the virtual-time simulator and the real-time UDP proxy drive this:
//! `push` packets in, drain `poll_deliver(now)`, wake at `poll_timeout()`.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use super::mahimahi::{MahimahiTrace, OPPORTUNITY_BYTES};
use crate::loss::{Bernoulli, GilbertElliott, LossModel};
use crate::rng::Rng;
use crate::time::Time;

/// What limits how fast bytes leave the link.
#[derive(Debug, Clone, Default)]
pub enum Capacity {
    #[default]
    Unlimited,
    /// A byte-rate serializer: each packet takes size × 8 / rate on the link.
    /// Right for 2G/EDGE presets, where a small packet goes out in ~25 ms.
    Rate { kbps: f64 },
    /// mahimahi replay: 1504-byte opportunities shared by queued packets, looping.
    Trace(Arc<MahimahiTrace>),
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum QueueLimit {
    #[default]
    Unbounded,
    Packets(usize),
    Bytes(usize),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub enum LossSpec {
    #[default]
    None,
    Bernoulli { p: f64 },
    /// Gilbert model with this mean loss and mean burst length in packets.
    GilbertElliott { loss: f64, mean_burst: f64 },
}

/// A window in which the link carries nothing (e.g. a 3G→2G handover).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    pub start: Time,
    pub length: Duration,
}

/// Per-packet fate observed on a real link: `None` lost, `Some(d)` arrived after `d`.
pub type RecordedFates = Arc<Vec<Option<Duration>>>;

#[derive(Debug, Clone, Default)]
pub struct LinkConfig {
    pub capacity: Capacity,
    pub queue: QueueLimit,
    pub delay: Duration,
    /// Delay varies uniformly in ±jitter (never below zero); packets stay in order.
    pub jitter: Duration,
    pub loss: LossSpec,
    /// Fraction of packets that skip the delay stage and overtake others (netem's reorder).
    pub reorder: f64,
    /// Fraction of packets delivered twice.
    pub duplicate: f64,
    pub outages: Vec<Outage>,
    /// Replaces loss, delay and jitter: packet i gets fate i (looping).
    pub recorded: Option<RecordedFates>,
}

impl LinkConfig {
    /// A perfect link with this one-way delay.
    pub fn delay_only(delay: Duration) -> Self {
        LinkConfig { delay, ..Default::default() }
    }

    /// mahimahi trace replay with a fixed base delay and an unbounded queue, like `mm-link` inside `mm-delay`.
    pub fn trace(trace: MahimahiTrace, delay: Duration) -> Self {
        LinkConfig { capacity: Capacity::Trace(Arc::new(trace)), delay, ..Default::default() }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub delivered: u64,
    pub bytes_delivered: u64,
    pub lost_random: u64,
    pub lost_outage: u64,
    pub dropped_queue: u64,
    pub duplicated: u64,
}

impl LinkStats {
    /// Packets that will never arrive.
    pub fn lost(&self) -> u64 {
        self.lost_random + self.lost_outage + self.dropped_queue
    }
}

struct Queued<T> {
    pkt: T,
    size: usize,
    /// Bytes not yet carried by an opportunity (trace mode).
    left: usize,
    /// Rate mode: when its last byte leaves (decided on entry, FIFO).
    depart: Time,
    /// Recorded mode: the delay drawn when it entered.
    fate: Option<Duration>,
}

struct InFlight<T> {
    at: Time,
    order: u64,
    pkt: T,
}

impl<T> PartialEq for InFlight<T> {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.order) == (o.at, o.order)
    }
}
impl<T> Eq for InFlight<T> {}
impl<T> PartialOrd for InFlight<T> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl<T> Ord for InFlight<T> {
    // Reversed: BinaryHeap is a max-heap and we want the earliest first.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.order).cmp(&(self.at, self.order))
    }
}

pub struct Link<T> {
    config: LinkConfig,
    loss: Option<Box<dyn LossModel + Send>>,
    rng: Rng,
    queue: VecDeque<Queued<T>>,
    queued_bytes: usize,
    /// Rate mode: when the link finishes sending what is queued.
    busy_until: Time,
    /// Trace mode: loop number and index of the next opportunity.
    opp_loop: u64,
    opp_index: usize,
    epoch: Time,
    started: bool,
    flight: BinaryHeap<InFlight<T>>,
    order: u64,
    /// Jitter keeps order: nothing (except reordered packets) arrives before this.
    last_arrival: Time,
    next_fate: usize,
    stats: LinkStats,
}

impl<T: Clone> Link<T> {
    pub fn new(config: LinkConfig, seed: u64) -> Self {
        let loss: Option<Box<dyn LossModel + Send>> = match config.loss {
            LossSpec::None => None,
            LossSpec::Bernoulli { p } => Some(Box::new(Bernoulli::new(p, seed ^ 0x1055))),
            LossSpec::GilbertElliott { loss, mean_burst } => Some(Box::new(GilbertElliott::with_mean(loss, mean_burst, seed ^ 0x1055))),
        };
        Link {
            config,
            loss,
            rng: Rng::new(seed),
            queue: VecDeque::new(),
            queued_bytes: 0,
            busy_until: Time::ZERO,
            opp_loop: 0,
            opp_index: 0,
            epoch: Time::ZERO,
            started: false,
            flight: BinaryHeap::new(),
            order: 0,
            last_arrival: Time::ZERO,
            next_fate: 0,
            stats: LinkStats::default(),
        }
    }

    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Bytes waiting at the bottleneck.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Starts the link's clock (a trace's first opportunity) at `now`, as
    /// mahimahi starts it with the shell. Without this call the first packet
    /// starts it.
    pub fn start(&mut self, now: Time) {
        if !self.started {
            self.started = true;
            self.epoch = now;
        }
    }

    /// Offers one packet of `size` bytes (as counted on the wire) to the link at `now`.
    pub fn push(&mut self, now: Time, pkt: T, size: usize) {
        self.start(now);
        self.advance(now);
        self.stats.packets_in += 1;
        self.stats.bytes_in += size as u64;
        if self.config.outages.iter().any(|o| now >= o.start && now < o.start + o.length) {
            self.stats.lost_outage += 1;
            return;
        }
        let fate = match &self.config.recorded {
            Some(fates) if !fates.is_empty() => {
                let f = fates[self.next_fate % fates.len()];
                self.next_fate += 1;
                match f {
                    None => {
                        self.stats.lost_random += 1;
                        return;
                    }
                    d => d,
                }
            }
            _ => {
                if self.loss.as_mut().is_some_and(|l| l.lose_next()) {
                    self.stats.lost_random += 1;
                    return;
                }
                None
            }
        };
        let copies = if self.config.duplicate > 0.0 && self.rng.chance(self.config.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            self.enqueue(now, Queued { pkt: pkt.clone(), size, left: size, depart: now, fate });
        }
    }

    fn enqueue(&mut self, now: Time, mut q: Queued<T>) {
        let full = match self.config.queue {
            QueueLimit::Unbounded => false,
            QueueLimit::Packets(n) => self.queue.len() >= n,
            QueueLimit::Bytes(n) => self.queued_bytes + q.size > n,
        };
        if full {
            self.stats.dropped_queue += 1;
            return;
        }
        if self.queue.is_empty() {
            if let Capacity::Trace(_) = self.config.capacity {
                // Opportunities that passed while the queue was empty were wasted.
                self.skip_opportunities_before(now);
            }
        }
        if let Capacity::Rate { kbps } = self.config.capacity {
            q.depart = self.busy_until.max(now) + serialization(q.size, kbps);
            self.busy_until = q.depart;
        }
        self.queued_bytes += q.size;
        self.queue.push_back(q);
        self.advance(now);
    }

    /// Moves everything the bottleneck has sent by `now` into flight.
    fn advance(&mut self, now: Time) {
        match self.config.capacity.clone() {
            Capacity::Unlimited => {
                while let Some(q) = self.queue.pop_front() {
                    self.queued_bytes -= q.size;
                    self.propagate(now, q);
                }
            }
            Capacity::Rate { .. } => {
                while self.queue.front().is_some_and(|q| q.depart <= now) {
                    let q = self.queue.pop_front().expect("front exists");
                    self.queued_bytes -= q.size;
                    self.propagate(q.depart, q);
                }
            }
            Capacity::Trace(trace) => {
                while !self.queue.is_empty() {
                    let at = self.opportunity_time(&trace);
                    if at > now {
                        break;
                    }
                    self.serve_opportunity(at);
                    self.next_opportunity(&trace);
                }
            }
        }
    }

    fn opportunity_time(&self, trace: &MahimahiTrace) -> Time {
        let ms = self.opp_loop * trace.period_ms() + trace.opportunities_ms[self.opp_index];
        self.epoch + Duration::from_millis(ms)
    }

    fn next_opportunity(&mut self, trace: &MahimahiTrace) {
        self.opp_index += 1;
        if self.opp_index == trace.opportunities_ms.len() {
            self.opp_index = 0;
            self.opp_loop += 1;
        }
    }

    fn skip_opportunities_before(&mut self, now: Time) {
        let Capacity::Trace(trace) = self.config.capacity.clone() else { return };
        if self.opportunity_time(&trace) >= now {
            return;
        }
        let period = trace.period_ms();
        let since = (now - self.epoch).as_micros() as u64;
        let mut lp = since / (period * 1000);
        let within_us = since - lp * period * 1000;
        let within_ms = within_us.div_ceil(1000);
        let mut idx = trace.opportunities_ms.partition_point(|&v| v < within_ms);
        if idx == trace.opportunities_ms.len() {
            idx = 0;
            lp += 1;
        }
        self.opp_loop = lp;
        self.opp_index = idx;
    }

    /// One 1504-byte opportunity at `at`: queued packets share it, a packet
    /// too large for what is left carries the rest over (mahimahi's link_queue).
    fn serve_opportunity(&mut self, at: Time) {
        let mut budget = OPPORTUNITY_BYTES;
        while budget > 0 {
            let Some(front) = self.queue.front_mut() else { break };
            if front.left > budget {
                front.left -= budget;
                break;
            }
            budget -= front.left;
            let q = self.queue.pop_front().expect("front exists");
            self.queued_bytes -= q.size;
            self.propagate(at, q);
        }
    }

    fn propagate(&mut self, departed: Time, q: Queued<T>) {
        let at = if let Some(d) = q.fate {
            departed + d
        } else if self.config.reorder > 0.0 && self.rng.chance(self.config.reorder) {
            departed
        } else {
            let j = self.config.jitter.as_micros() as i64;
            let offset = if j > 0 { self.rng.below(2 * j as u64 + 1) as i64 - j } else { 0 };
            let d = (self.config.delay.as_micros() as i64 + offset).max(0) as u64;
            let at = (departed + Duration::from_micros(d)).max(self.last_arrival);
            self.last_arrival = at;
            at
        };
        self.order += 1;
        self.flight.push(InFlight { at, order: self.order, pkt: q.pkt });
        self.stats.delivered += 1;
        self.stats.bytes_delivered += q.size as u64;
    }

    /// The next packet that has arrived by `now`.
    pub fn poll_deliver(&mut self, now: Time) -> Option<T> {
        self.advance(now);
        if self.flight.peek().is_some_and(|f| f.at <= now) {
            self.flight.pop().map(|f| f.pkt)
        } else {
            None
        }
    }

    /// When something next happens (a delivery or a bottleneck departure).
    pub fn poll_timeout(&self) -> Option<Time> {
        let arrival = self.flight.peek().map(|f| f.at);
        let departure = match &self.config.capacity {
            _ if self.queue.is_empty() => None,
            Capacity::Unlimited => None,
            Capacity::Rate { .. } => self.queue.front().map(|q| q.depart),
            Capacity::Trace(trace) => Some(self.opportunity_time(trace)),
        };
        match (arrival, departure) {
            (Some(a), Some(d)) => Some(a.min(d)),
            (a, d) => a.or(d),
        }
    }
}

/// Time to put `size` bytes on a link of `kbps`.
fn serialization(size: usize, kbps: f64) -> Duration {
    Duration::from_micros((size as f64 * 8.0 / kbps.max(0.001) * 1000.0).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(link: &mut Link<u32>, until: Time) -> Vec<(Time, u32)> {
        let mut out = Vec::new();
        while let Some(t) = link.poll_timeout() {
            if t > until {
                break;
            }
            while let Some(p) = link.poll_deliver(t) {
                out.push((t, p));
            }
        }
        out
    }

    #[test]
    fn small_packets_share_one_trace_opportunity() {
        let trace = MahimahiTrace::parse("100\n200\n").unwrap();
        let mut link = Link::new(LinkConfig::trace(trace, Duration::from_millis(10)), 1);
        for i in 0..3 {
            link.push(Time::from_millis(1), i, 500);
        }
        link.push(Time::from_millis(1), 3, 500);
        let got = drain(&mut link, Time::from_millis(1000));
        // Trace time starts at the first packet (1 ms). Three 500-byte packets
        // fit in 1504 bytes at 100 ms; the fourth waits for 200 ms; +10 ms delay.
        let times: Vec<u64> = got.iter().map(|(t, _)| t.as_micros() / 1000).collect();
        assert_eq!(times, vec![111, 111, 111, 211]);
    }

    #[test]
    fn a_trace_loops_and_wastes_opportunities_nobody_used() {
        let trace = MahimahiTrace::parse("10\n50\n").unwrap();
        let mut link = Link::new(LinkConfig::trace(trace, Duration::ZERO), 1);
        link.push(Time::ZERO, 0, 100);
        assert_eq!(drain(&mut link, Time::from_millis(1000)), vec![(Time::from_millis(10), 0)]);
        // At 120 ms the next opportunities are at 50+10·k…: 50·2+10 = 110 passed, so 150.
        link.push(Time::from_millis(120), 1, 100);
        assert_eq!(drain(&mut link, Time::from_millis(1000)), vec![(Time::from_millis(150), 1)]);
    }

    #[test]
    fn a_byte_rate_link_serializes_packets() {
        let cfg = LinkConfig { capacity: Capacity::Rate { kbps: 16.0 }, delay: Duration::from_millis(100), ..Default::default() };
        let mut link = Link::new(cfg, 1);
        // 100 bytes at 16 kbit/s = 50 ms each.
        link.push(Time::ZERO, 0, 100);
        link.push(Time::ZERO, 1, 100);
        let got = drain(&mut link, Time::from_millis(1000));
        assert_eq!(got, vec![(Time::from_millis(150), 0), (Time::from_millis(200), 1)]);
    }

    #[test]
    fn a_bounded_queue_drops_the_tail() {
        let cfg = LinkConfig { capacity: Capacity::Rate { kbps: 8.0 }, queue: QueueLimit::Packets(2), ..Default::default() };
        let mut link = Link::new(cfg, 1);
        for i in 0..5 {
            link.push(Time::ZERO, i, 100);
        }
        let got: Vec<u32> = drain(&mut link, Time::from_millis(5000)).into_iter().map(|(_, p)| p).collect();
        assert_eq!(got, vec![0, 1]);
        assert_eq!(link.stats().dropped_queue, 3);
    }

    #[test]
    fn outages_loss_and_duplication_change_what_arrives() {
        let cfg = LinkConfig {
            outages: vec![Outage { start: Time::from_millis(100), length: Duration::from_millis(100) }],
            duplicate: 1.0,
            ..Default::default()
        };
        let mut link = Link::new(cfg, 1);
        link.push(Time::from_millis(150), 1, 10);
        link.push(Time::from_millis(250), 2, 10);
        let got: Vec<u32> = drain(&mut link, Time::from_millis(5000)).into_iter().map(|(_, p)| p).collect();
        assert_eq!(got, vec![2, 2]);
        let mut lossy = Link::new(LinkConfig { loss: LossSpec::Bernoulli { p: 0.3 }, ..Default::default() }, 9);
        for i in 0..10_000 {
            lossy.push(Time::from_millis(i), i as u32, 10);
        }
        let rate = lossy.stats().lost_random as f64 / 10_000.0;
        assert!((rate - 0.3).abs() < 0.02, "{rate}");
    }

    #[test]
    fn jitter_varies_delay_without_reordering_and_reorder_does() {
        let cfg = LinkConfig { delay: Duration::from_millis(100), jitter: Duration::from_millis(50), ..Default::default() };
        let mut link = Link::new(cfg, 3);
        for i in 0..200u32 {
            link.push(Time::from_millis(u64::from(i) * 20), i, 50);
        }
        let got = drain(&mut link, Time::from_millis(100_000));
        assert!(got.windows(2).all(|w| w[0].1 < w[1].1));
        let delays: Vec<u64> = got.iter().map(|(t, i)| t.as_micros() / 1000 - u64::from(*i) * 20).collect();
        assert!(delays.iter().any(|&d| d > 120) && delays.iter().all(|&d| d <= 150));
        let mut re = Link::new(LinkConfig { delay: Duration::from_millis(100), reorder: 0.2, ..Default::default() }, 3);
        for i in 0..200u32 {
            re.push(Time::from_millis(u64::from(i) * 20), i, 50);
        }
        let got = drain(&mut re, Time::from_millis(100_000));
        assert_eq!(got.len(), 200);
        assert!(got.windows(2).any(|w| w[0].1 > w[1].1));
    }
}
