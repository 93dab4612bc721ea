//! Receive buffer with an adaptive target delay, NetEq-style: each packet's
//! delay relative to the fastest one of the last 2 s goes into a histogram
//! with exponential forgetting (~3 s memory); the target is its 0.95 quantile (NetEq's),
//! raised at once on a spike and lowered at most 50 ms per second. Playout
//! follows the target by asking the caller to time-stretch decoded speech
//! ([`JitterBuffer::stretch_wanted`]) and by moving freely in silences.
//! A missing packet with nothing buffered behind it is waited for (concealed
//! without advancing), as NetEq's expand does; one with packets behind it is
//! lost and concealed. A gap in media time with no gap in sequence numbers is
//! a DTX silence: playout jumps it when the next talkspurt is due at the
//! target. Playout is pulled in steps ([`JitterConfig::pull`]: 20 ms chunks
//! in the mixer, 10 ms in the client, as NetEq's GetAudio), so a packet must be
//! here by the pull its first sample plays in: deadlines move in whole pulls, and a wait
//! for a packet a few ms late conceals a whole pull. So after a wait, the
//! pauses between words are shortened until playout is back at the lowest pull
//! step that still covers the target (speech itself is only accelerated 60 ms
//! over the target, as moving a turn's time axis mid-speech costs PESQ-WB).
//! The backlog after an outage is played and then caught up by
//! accelerating, unless it exceeds `max_delay`; its delays stay out of the
//! histogram so one outage does not inflate the target for seconds.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::codec::{packet_samples, CHUNK_MS, SAMPLES_PER_MS};
use crate::stretch;
use crate::time::Time;
use crate::wire::audio::{TICK_SAMPLES, TICK_US};

fn ticks_for_samples(samples: usize) -> i64 {
    samples.div_ceil(TICK_SAMPLES) as i64
}

/// Extends wrapping 16-bit counters (sequence numbers, timestamps) to i64.
#[derive(Debug, Clone, Default)]
pub struct Unwrapper {
    last: Option<i64>,
}

impl Unwrapper {
    pub fn extend(&mut self, v: u16) -> i64 {
        let ext = match self.last {
            None => i64::from(v),
            Some(last) => last + i64::from(v.wrapping_sub(last as u16) as i16),
        };
        self.last = Some(self.last.map_or(ext, |l| l.max(ext)));
        ext
    }
}

/// What the buffer has for the next slot of playout.
#[derive(Debug, PartialEq, Eq)]
pub enum Pop {
    /// Nothing to play: not started, or between talkspurts.
    Silence,
    /// The packet that starts at the playout point, and whether it carries
    /// speech (false for a comfort-noise update sent during DTX).
    Packet(Vec<u8>, bool),
    /// The next packet is missing (lost or not yet here): conceal this many samples.
    Missing(usize),
}

/// Which way playout should be stretched to follow the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StretchWanted {
    /// Above target: play faster (remove a pitch period).
    Accelerate,
    /// Below target: play slower (repeat a pitch period).
    Expand,
    /// Above the lowest safe lead after a wait: remove quiet audio only
    /// (pauses between words), so speech within a turn keeps its time axis.
    CatchUp,
}

#[derive(Debug, Clone, Copy)]
pub struct JitterConfig {
    /// False: a fixed target of `initial_target` (the old behaviour).
    pub adaptive: bool,
    /// Target before any statistics exist (NetEq starts at 80 ms).
    pub initial_target: Duration,
    pub min_target: Duration,
    pub max_target: Duration,
    /// Audio older than this at playout is dropped, not played.
    pub max_delay: Duration,
    /// Quantile of relative delay the target covers.
    pub quantile: f64,
    /// Memory of the histogram (time constant of the forgetting).
    pub memory: Duration,
    /// How fast the target may fall, ms per second.
    pub fall_ms_per_s: f64,
    /// Accelerate when playout is this far above the target.
    pub accelerate_above: Duration,
    /// Whether the receive stream time-stretches speech to follow the target.
    pub stretch: bool,
    /// How much playout the caller pulls at a time (at most a 20 ms chunk):
    /// a packet's deadline is the pull its first sample plays in, so the
    /// smaller the pull, the closer playout can sit to the target.
    pub pull: Duration,
    /// Whether playout also follows a fallen target down (shortening pauses
    /// between words) when no packet was late; off, only what a wait added is
    /// taken back and the rest waits for the next silence. On, the Norway car
    /// trace plays below even an idealised fixed buffer, but the 3G traces
    /// conceal 0.04-0.34 % more of their audio and a listener's delay shifts
    /// more often mid-turn (measured: `jitter-report --follow-falling-target`).
    pub follow_falling_target: bool,
}

impl JitterConfig {
    /// The adaptive buffer with stretching, as lowband runs it.
    pub fn adaptive() -> Self {
        JitterConfig {
            adaptive: true,
            initial_target: Duration::from_millis(80),
            min_target: Duration::ZERO,
            max_target: Duration::from_millis(1000),
            max_delay: Duration::from_secs(10),
            quantile: 0.95,
            memory: Duration::from_secs(3),
            fall_ms_per_s: 50.0,
            accelerate_above: Duration::from_millis(60),
            stretch: true,
            pull: Duration::from_millis(CHUNK_MS as u64),
            follow_falling_target: false,
        }
    }

    /// A fixed target delay, no stretching.
    pub fn fixed(target: Duration) -> Self {
        JitterConfig { adaptive: false, initial_target: target, stretch: false, ..Self::adaptive() }
    }
}

impl Default for JitterConfig {
    fn default() -> Self {
        Self::adaptive()
    }
}

/// Lifetime metrics, named as WebRTC's getStats names NetEq's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    pub received: u64,
    pub duplicates: u64,
    /// Arrived after their slot had been played (or concealed).
    pub late: u64,
    /// Missed their slot but were waited for (concealed meanwhile) and played:
    /// late for a fixed buffer, a delay increase here.
    pub waited_for: u64,
    pub invalid: u64,
    pub concealed_samples: u64,
    /// Packets handed out for playout with an arrival time, and the sum of
    /// the time each waited here (NetEq's jitterBufferEmittedCount and jitterBufferDelay).
    pub emitted: u64,
    pub delay_us: u64,
    /// Runs of concealment (each start of one counts once).
    pub concealment_events: u64,
    /// Dropped unplayed to catch up (e.g. the backlog after an outage).
    pub skipped_packets: u64,
    /// Holes filled by redundant copies before they had to be concealed.
    pub recovered: u64,
    pub played_packets: u64,
    /// Mean time from a packet's arrival to the pull that emits it for
    /// decoding (WebRTC's jitterBufferDelay), µs.
    pub mean_delay_us: u64,
    /// Mean and 95th percentile of the time from a packet's arrival to its
    /// first sample's place in the output (the pull plus the audio queued
    /// ahead of it): what the listener waits, comparable to a fixed buffer's delay, µs.
    pub mean_playout_delay_us: u64,
    pub p95_playout_delay_us: u64,
    /// Current target delay (relative to the fastest packet), µs.
    pub target_delay_us: u64,
    pub inserted_samples: u64,
    pub removed_samples: u64,
    /// Concealment runs of 150 ms or more while audio was expected, and their total length.
    pub interruptions: u64,
    pub interruption_us: u64,
    /// Times playout jumped to the target between talkspurts.
    pub silence_moves: u64,
}

impl JitterStats {
    /// Packets that never played because they came too late or were dropped as stale.
    pub fn late_loss(&self) -> u64 {
        self.late + self.skipped_packets
    }
}

/// Relative delays are kept at this resolution...
const BIN_US: u64 = 1_000;
/// ...up to this many bins (2 s); longer delays land in the last one.
const BINS: usize = 2_000;
/// Relative delay is measured against the fastest packet of this window.
const BASE_WINDOW: Duration = Duration::from_secs(2);
/// After this much concealment while waiting, play silence (PLC has faded anyway).
const MAX_CONCEAL_SAMPLES: usize = 200 * SAMPLES_PER_MS;
/// Waits this long are interruptions (WebRTC's definition).
const INTERRUPTION: Duration = Duration::from_millis(150);
/// In speech, at most one pitch period per this much audio (≤ ~10 % speed change)...
const STRETCH_SPACING_SAMPLES: usize = 100 * SAMPLES_PER_MS;
/// ...unless playout is this far above the target (an outage's backlog).
const BACKLOG_US: i64 = 200_000;
/// In speech, expand only when this far below the target (waits raise the delay too).
const EXPAND_BELOW_US: i64 = 20_000;
/// Less than this over the lowest safe lead is not worth a stretch.
const MIN_STRETCH_US: i64 = (stretch::MIN_PERIOD * 1000 / SAMPLES_PER_MS) as i64;
/// A wait this long is an outage: what arrives right after it is backlog...
const OUTAGE: Duration = Duration::from_secs(1);
/// Spaced copies stop raising the target this long after the last one came.
const REACH_MEMORY: Duration = Duration::from_secs(10);
/// ...for this long...
const BACKLOG_WINDOW: Duration = Duration::from_millis(200);
/// ...and its delays this far above the target are the outage, not jitter.
const OUTLIER_US: i64 = 200_000;

#[derive(Debug)]
struct Entry {
    seq: Option<i64>,
    payload: Vec<u8>,
    voice: bool,
    arrival: Time,
}

/// The relative-delay histogram and the target it gives.
#[derive(Debug)]
struct DelayEstimator {
    /// (arrival, arrival − media time) over the last [`BASE_WINDOW`].
    history: VecDeque<(Time, i64)>,
    bins: Vec<f64>,
    total: f64,
    /// Weight of the next sample; grows instead of decaying every bin.
    weight: f64,
    target_us: f64,
    last_update: Option<Time>,
}

impl DelayEstimator {
    fn new(initial_us: f64) -> Self {
        DelayEstimator { history: VecDeque::new(), bins: vec![0.0; BINS], total: 0.0, weight: 1.0, target_us: initial_us, last_update: None }
    }

    /// Arrival minus media time of the fastest recent packet (the delay floor).
    fn base(&self) -> Option<i64> {
        self.history.iter().map(|&(_, a)| a).min()
    }

    /// Relative delay of a packet with this arrival offset, in µs.
    fn relative(&self, offset: i64) -> i64 {
        self.base().map_or(0, |b| (offset - b).max(0))
    }

    fn observe(&mut self, now: Time, offset: i64, packet_us: u64, cfg: &JitterConfig) {
        while self.history.front().is_some_and(|&(t, _)| t + BASE_WINDOW < now) {
            self.history.pop_front();
        }
        self.history.push_back((now, offset));
        let rel = self.relative(offset) as u64;
        // Forget per packet so the memory is in time whatever the packet size.
        let forget = (-(packet_us as f64) / cfg.memory.as_micros() as f64).exp();
        self.weight /= forget;
        if self.weight > 1e200 {
            self.bins.iter_mut().for_each(|b| *b /= self.weight);
            self.total /= self.weight;
            self.weight = 1.0;
        }
        let bin = ((rel / BIN_US) as usize).min(BINS - 1);
        self.bins[bin] += self.weight;
        self.total += self.weight;
        let raw = self.quantile(cfg.quantile);
        let lo = cfg.min_target.as_micros() as f64;
        let hi = cfg.max_target.as_micros() as f64;
        let raw = raw.clamp(lo, hi);
        let dt = self.last_update.map_or(0.0, |t| now.saturating_since(t).as_secs_f64());
        self.last_update = Some(now);
        self.target_us = if raw >= self.target_us { raw } else { raw.max(self.target_us - cfg.fall_ms_per_s * 1000.0 * dt) };
    }

    fn quantile(&self, q: f64) -> f64 {
        let want = self.total * q;
        let mut acc = 0.0;
        for (i, &b) in self.bins.iter().enumerate() {
            acc += b;
            if acc >= want {
                return ((i as u64 + 1) * BIN_US) as f64;
            }
        }
        (BINS as u64 * BIN_US) as f64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the first packet to be due.
    Idle,
    Playing,
}

#[derive(Debug)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    ts: Unwrapper,
    seq: Unwrapper,
    packets: BTreeMap<i64, Entry>,
    state: State,
    /// Media time (ticks) of the next sample to play.
    next: i64,
    /// Sequence number of the last packet played.
    last_seq: Option<i64>,
    /// Playout lead over the fastest packet at the last packet played, µs.
    lead_us: Option<i64>,
    estimator: DelayEstimator,
    /// Since when nothing has been buffered for the next slot (waiting for it).
    waiting_since: Option<Time>,
    /// Samples concealed while waiting.
    waiting: usize,
    /// When the last packet arrived (redundant copies ride in it).
    last_insert: Time,
    /// How far behind their carrier spaced redundant copies reach (µs), and
    /// when such a copy last arrived: the target waits that much longer.
    reach_us: i64,
    reach_seen: Time,
    /// Arrivals before this are an outage's backlog.
    backlog_until: Time,
    /// Inside a run of concealment (for counting events).
    concealing: bool,
    /// Samples played since the last stretch.
    since_stretch: usize,
    /// Playout waited for a late packet in this talkspurt: until the next
    /// silence it follows the lowest safe lead down in pauses between words.
    catching_up: bool,
    /// Lead of the pull that emitted the last packet played: its deadline, µs.
    deadline_lead_us: Option<i64>,
    /// The same moved by the stretches since: what the 60 ms rule and expand
    /// compare with the target (the output lead would add the queued audio,
    /// which made a first turn's speech stretched more and scored worse).
    emission_lead_us: Option<i64>,
    /// Arrival-to-output delays (including the audio queued ahead).
    delays: DelayHistogram,
    /// Sum of arrival-to-emission delays, µs.
    emission_delay_sum_us: u64,
    stats: JitterStats,
}

/// Arrival-to-playout delays, 1 ms bins up to 10 s, for mean and p95.
#[derive(Debug)]
struct DelayHistogram {
    bins: Vec<u32>,
    sum_us: u64,
    count: u64,
}

impl DelayHistogram {
    fn add(&mut self, us: u64) {
        let i = ((us / 1000) as usize).min(self.bins.len() - 1);
        self.bins[i] += 1;
        self.sum_us += us;
        self.count += 1;
    }

    fn percentile_us(&self, p: f64) -> u64 {
        let want = (self.count as f64 * p).ceil() as u64;
        let mut acc = 0u64;
        for (i, &b) in self.bins.iter().enumerate() {
            acc += u64::from(b);
            if acc >= want && want > 0 {
                return (i as u64 + 1) * 1000;
            }
        }
        0
    }
}

fn samples_us(n: usize) -> u64 {
    (n * 1000 / SAMPLES_PER_MS) as u64
}

fn ts_us(ts: i64) -> i64 {
    ts * TICK_US as i64
}

impl JitterBuffer {
    pub fn new(cfg: JitterConfig) -> Self {
        JitterBuffer {
            estimator: DelayEstimator::new(cfg.initial_target.as_micros() as f64),
            cfg,
            ts: Unwrapper::default(),
            seq: Unwrapper::default(),
            packets: BTreeMap::new(),
            state: State::Idle,
            next: 0,
            last_seq: None,
            lead_us: None,
            waiting_since: None,
            waiting: 0,
            backlog_until: Time::ZERO,
            last_insert: Time::ZERO,
            reach_us: 0,
            reach_seen: Time::ZERO,
            concealing: false,
            since_stretch: 0,
            catching_up: false,
            deadline_lead_us: None,
            emission_lead_us: None,
            delays: DelayHistogram { bins: vec![0; 10_000], sum_us: 0, count: 0 },
            emission_delay_sum_us: 0,
            stats: JitterStats::default(),
        }
    }

    pub fn config(&self) -> &JitterConfig {
        &self.cfg
    }

    /// The target delay now (over the fastest recent packet).
    pub fn target(&self) -> Duration {
        Duration::from_micros(self.target_us() as u64)
    }

    fn target_us(&self) -> i64 {
        if self.cfg.adaptive {
            self.estimator.target_us as i64 + self.reach_us
        } else {
            self.cfg.initial_target.as_micros() as i64
        }
    }

    pub fn stats(&self) -> JitterStats {
        let mut s = self.stats;
        s.emitted = self.delays.count;
        s.delay_us = self.emission_delay_sum_us;
        s.mean_delay_us = self.emission_delay_sum_us.checked_div(self.delays.count).unwrap_or(0);
        s.mean_playout_delay_us = self.delays.sum_us.checked_div(self.delays.count).unwrap_or(0);
        s.p95_playout_delay_us = self.delays.percentile_us(0.95);
        s.target_delay_us = self.target_us() as u64;
        s
    }

    /// A packet without a sequence number: media-time gaps count as losses.
    pub fn insert(&mut self, now: Time, ts: u16, payload: &[u8], voice: bool) {
        self.insert_seq(now, None, ts, payload, voice);
    }

    /// Copies of frames `back` behind the packet carrying them are arriving
    /// (spaced redundancy against bursts): an adaptive target waits that much
    /// longer so they come before their slot, until none has come for a while.
    pub fn note_redundancy_reach(&mut self, now: Time, back: Duration) {
        self.reach_us = self.reach_us.max(back.as_micros() as i64);
        self.reach_seen = now;
    }

    /// A packet; its sequence number tells DTX silences from losses.
    pub fn insert_seq(&mut self, now: Time, seq: Option<u16>, ts: u16, payload: &[u8], voice: bool) {
        let ts = self.ts.extend(ts);
        let seq = seq.map(|s| self.seq.extend(s));
        self.stats.received += 1;
        self.last_insert = now;
        if self.reach_us > 0 && now.saturating_since(self.reach_seen) > REACH_MEMORY {
            self.reach_us = 0;
        }
        let offset = now.as_micros() as i64 - ts_us(ts);
        if self.waiting_since.is_some_and(|since| now.saturating_since(since) >= OUTAGE) {
            self.backlog_until = now + BACKLOG_WINDOW;
        }
        if self.state == State::Playing && ts < self.next {
            self.stats.late += 1;
            // Late but informative: it says how much more delay was needed.
            self.observe(now, offset, payload);
            return;
        }
        if self.packets.contains_key(&ts) {
            self.stats.duplicates += 1;
            return;
        }
        self.observe(now, offset, payload);
        self.packets.insert(ts, Entry { seq, payload: payload.to_vec(), voice, arrival: now });
        self.catch_up(now);
    }

    fn observe(&mut self, now: Time, offset: i64, payload: &[u8]) {
        if now < self.backlog_until && self.estimator.relative(offset) > self.target_us() + OUTLIER_US {
            return;
        }
        let packet_us = packet_samples(payload).map_or(20_000, |n| (n / SAMPLES_PER_MS * 1000) as u64);
        self.estimator.observe(now, offset, packet_us.max(2_500), &self.cfg);
    }

    /// Drops what would play more than `max_delay` late.
    fn catch_up(&mut self, now: Time) {
        if self.state != State::Playing {
            return;
        }
        let max = self.cfg.max_delay.as_micros() as i64;
        if self.lead_at(now, self.next) <= max {
            return;
        }
        // The oldest media time still within `max_delay` now.
        let base = self.estimator.base().unwrap_or(0);
        let new_next = (now.as_micros() as i64 - base - max).div_euclid(TICK_US as i64);
        if new_next <= self.next {
            return;
        }
        let keep = self.packets.split_off(&new_next);
        self.stats.skipped_packets += self.packets.len() as u64;
        self.packets = keep;
        self.next = new_next;
        self.last_seq = None;
    }

    /// Offers a redundant copy of an earlier frame (from RED, LBRR or DRED):
    /// it fills the slot only if the primary is missing and still playable.
    /// Returns true when it was used.
    pub fn insert_recovery(&mut self, ts: u16, payload: &[u8]) -> bool {
        let ts = self.ts.extend(ts);
        let playable = self.state == State::Playing && ts >= self.next;
        if !playable || self.packets.contains_key(&ts) {
            return false;
        }
        // Redundancy rides in the packet inserted just before.
        self.packets.insert(ts, Entry { seq: None, payload: payload.to_vec(), voice: true, arrival: self.last_insert });
        self.stats.recovered += 1;
        true
    }

    /// The buffered packets at or after the playout point: how many samples
    /// ahead of it each starts, its media time and its payload. Deep
    /// redundancy (DRED) rebuilds a hole from the packet after it.
    pub fn peek_following(&self) -> impl Iterator<Item = (usize, i64, &[u8])> {
        let next = (self.state == State::Playing).then_some(self.next);
        next.into_iter().flat_map(move |next| self.packets.range(next..).map(move |(&ts, e)| ((ts - next) as usize * TICK_SAMPLES, ts, e.payload.as_slice())))
    }

    /// Lead of playout at `now` for media time `ts` over the fastest recent packet, µs.
    fn lead_at(&self, now: Time, ts: i64) -> i64 {
        let offset = now.as_micros() as i64 - ts_us(ts);
        offset - self.estimator.base().unwrap_or(offset)
    }

    /// Takes what plays next. `queued` is the audio the caller holds ahead of
    /// it (samples), `want` what it needs, used to size concealment.
    pub fn pop(&mut self, now: Time, queued: usize, want: usize) -> Pop {
        if self.state == State::Idle {
            let Some((&ts, _)) = self.packets.first_key_value() else { return Pop::Silence };
            if self.lead_at(now, ts) < self.target_us() {
                return Pop::Silence;
            }
            self.state = State::Playing;
            self.next = ts;
        }
        // Drop anything that overlaps what was already played.
        while let Some(entry) = self.packets.first_entry() {
            if *entry.key() >= self.next {
                break;
            }
            entry.remove();
            self.stats.late += 1;
        }
        let ahead = self.packets.first_key_value().map(|(&ts, e)| (ts, e.seq));
        if let Some((ts, seq)) = ahead {
            let contiguous = match (self.last_seq, seq) {
                (Some(l), Some(s)) => s == l + 1,
                _ => false,
            };
            if ts > self.next && (contiguous || self.waiting_since.is_some()) {
                // Nothing was lost: the gap is a DTX silence (or what an
                // outage took is gone anyway). Jump it when the next
                // talkspurt is due at the target: playout moves here.
                if self.lead_at(now, ts) < self.target_us() {
                    return self.wait(now, want, false);
                }
                self.next = ts;
                self.stats.silence_moves += 1;
                self.catching_up = false;
                self.waiting_since = None;
                self.waiting = 0;
            }
        }
        if let Some(e) = self.packets.remove(&self.next) {
            match packet_samples(&e.payload) {
                Ok(n) if n > 0 => {
                    if let Some(since) = self.waiting_since.take() {
                        self.catching_up = true;
                        self.stats.waited_for += 1;
                        let waited = now.saturating_since(since);
                        if waited >= INTERRUPTION {
                            self.stats.interruptions += 1;
                            self.stats.interruption_us += waited.as_micros() as u64;
                        }
                    }
                    self.waiting = 0;
                    self.concealing = false;
                    let queued_us = samples_us(queued);
                    let deadline = self.lead_at(now, self.next);
                    self.deadline_lead_us = Some(deadline);
                    self.emission_lead_us = Some(deadline);
                    self.lead_us = Some(deadline + queued_us as i64);
                    if e.arrival > Time::ZERO {
                        let d = now.saturating_since(e.arrival).as_micros() as u64;
                        self.emission_delay_sum_us += d;
                        self.delays.add(d + queued_us);
                    }
                    self.stats.played_packets += 1;
                    self.since_stretch += n;
                    self.last_seq = e.seq.or(self.last_seq.map(|l| l + 1));
                    self.next += ticks_for_samples(n);
                    return Pop::Packet(e.payload, e.voice);
                }
                _ => self.stats.invalid += 1,
            }
        }
        let Some((&ahead, _)) = self.packets.first_key_value() else {
            // Nothing behind it: the packet is late (or a silence began).
            // Wait for it, concealing without advancing, as NetEq's expand does.
            return self.wait(now, want, true);
        };
        // Packets behind the hole: it is lost; conceal up to the next one.
        let n = want.min((ahead - self.next) as usize * TICK_SAMPLES);
        self.next += ticks_for_samples(n);
        self.last_seq = None;
        self.conceal(n);
        Pop::Missing(n)
    }

    /// Holds playout where it is: concealment at first, then silence.
    fn wait(&mut self, now: Time, want: usize, expected: bool) -> Pop {
        if expected {
            self.waiting_since.get_or_insert(now);
        }
        if !expected || self.waiting >= MAX_CONCEAL_SAMPLES {
            return Pop::Silence;
        }
        self.waiting += want;
        self.conceal(want);
        Pop::Missing(want)
    }

    fn conceal(&mut self, n: usize) {
        if !self.concealing {
            self.stats.concealment_events += 1;
            self.concealing = true;
        }
        self.stats.concealed_samples += n as u64;
    }

    /// How far playout (of its first sample, in the output) ran behind the
    /// fastest recent packet at the last packet played.
    pub fn playout_lead(&self) -> Option<Duration> {
        self.lead_us.map(|l| Duration::from_micros(l.max(0) as u64))
    }

    /// Playout is an outage's backlog behind (far above the target): the
    /// caller should decode at least a chunk ahead, as the stretcher removes
    /// more per operation from a longer stretch of audio (quiet parts go by
    /// half of it), so the backlog drains as fast whatever the pull size.
    pub fn in_backlog(&self) -> bool {
        self.cfg.stretch && self.emission_lead_us.is_some_and(|l| l > self.target_us() + BACKLOG_US)
    }

    /// Which way the caller should stretch the audio of the packet just popped, if any.
    pub fn stretch_wanted(&self) -> Option<StretchWanted> {
        if !self.cfg.stretch {
            return None;
        }
        let lead = self.emission_lead_us?;
        let target = self.target_us();
        if lead > target + BACKLOG_US {
            return Some(StretchWanted::Accelerate);
        }
        if self.following_target_down() && self.over_safe_lead_us() >= MIN_STRETCH_US && lead <= target + self.cfg.accelerate_above.as_micros() as i64 {
            // A wait concealed a whole pull, usually for a packet only a few ms
            // late (or the target fell): take back what the deadlines do not need.
            return Some(StretchWanted::CatchUp);
        }
        if self.since_stretch < STRETCH_SPACING_SAMPLES {
            return None;
        }
        if lead > target + self.cfg.accelerate_above.as_micros() as i64 {
            Some(StretchWanted::Accelerate)
        } else if lead + EXPAND_BELOW_US < target {
            Some(StretchWanted::Expand)
        } else {
            None
        }
    }

    /// Playout comes down to the lowest safe lead in pauses: after a wait
    /// (until the next silence), or always when it follows a fallen target.
    fn following_target_down(&self) -> bool {
        self.catching_up || self.cfg.follow_falling_target
    }

    /// How far playout is above the lowest lead at which the next packets'
    /// deadlines (the pulls they are emitted at) still cover the target, µs.
    /// Deadlines move in whole pulls, so that lead is the first step of the
    /// pull grid at or above the target, not the target itself.
    fn over_safe_lead_us(&self) -> i64 {
        let (Some(lead), Some(deadline)) = (self.lead_us, self.deadline_lead_us) else { return 0 };
        // A packet's deadline lead moves in whole pulls.
        let pull = (self.cfg.pull.as_micros() as i64).max(1);
        let safe = deadline + (self.target_us() - deadline).div_euclid(pull) * pull;
        let safe = if safe < self.target_us() { safe + pull } else { safe };
        lead - safe
    }

    /// How many samples acceleration may remove without taking the next
    /// packets' deadlines below the target (when catching up).
    pub fn accelerate_limit(&self) -> usize {
        if !self.following_target_down() {
            // The 60 ms rule and an outage's backlog: far above the target anyway.
            return usize::MAX;
        }
        (self.over_safe_lead_us().max(0) as usize * SAMPLES_PER_MS) / 1000
    }

    /// The caller stretched playout by this many samples (negative: removed).
    pub fn stretched(&mut self, samples: isize) {
        self.since_stretch = 0;
        if samples < 0 {
            self.stats.removed_samples += samples.unsigned_abs() as u64;
        } else {
            self.stats.inserted_samples += samples as u64;
        }
        // Removing samples brings the next packet's slot earlier.
        for l in [&mut self.lead_us, &mut self.emission_lead_us].into_iter().flatten() {
            *l += samples as i64 * 1000 / SAMPLES_PER_MS as i64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 20 ms SILK wideband Opus packet (TOC config 9, one frame).
    const PACKET: [u8; 2] = [0x48, 0x00];
    const TICKS_PER_PACKET: u16 = 8;

    /// One talker sending 20 ms packets into a buffer pulled every 20 ms (or
    /// `pull_us`), with a stand-in for the stretcher that moves 5 ms per packet when asked.
    struct Sim {
        jb: JitterBuffer,
        pull_us: u64,
        /// Decoded samples not yet pulled.
        queued: usize,
        /// (arrival µs, sequence number, media time) still in flight.
        flight: Vec<(u64, u16, u16)>,
        next_arrival: usize,
        t: u64,
        played_at: Vec<(u64, Duration)>,
    }

    impl Sim {
        fn new() -> Self {
            Self::pulled_every(20_000)
        }

        fn pulled_every(pull_us: u64) -> Self {
            let cfg = JitterConfig { pull: Duration::from_micros(pull_us), ..JitterConfig::adaptive() };
            Sim { jb: JitterBuffer::new(cfg), pull_us, queued: 0, flight: Vec::new(), next_arrival: 0, t: 0, played_at: Vec::new() }
        }

        /// Sends packets `0..n`, packet i at `send(i)` µs arriving after `delay(i)` µs (None: lost).
        fn send(&mut self, n: u16, send: impl Fn(u16) -> u64, delay: impl Fn(u16) -> Option<u64>) {
            for i in 0..n {
                if let Some(d) = delay(i) {
                    self.flight.push((send(i) + d, i, i.wrapping_mul(TICKS_PER_PACKET)));
                }
            }
            self.flight.sort();
        }

        /// Delivers and pulls until `until_us`.
        fn run_until(&mut self, until_us: u64) {
            while self.t <= until_us {
                while self.next_arrival < self.flight.len() && self.flight[self.next_arrival].0 <= self.t {
                    let (at, i, ts) = self.flight[self.next_arrival];
                    self.jb.insert_seq(Time::from_micros(at), Some(i), ts, &PACKET, true);
                    self.next_arrival += 1;
                }
                if self.t % self.pull_us == 7_000 % self.pull_us {
                    self.pull(Time::from_micros(self.t));
                }
                self.t += 1_000;
            }
        }

        fn run(&mut self, n: u16, send: impl Fn(u16) -> u64, delay: impl Fn(u16) -> Option<u64>, until_us: u64) {
            self.send(n, send, delay);
            self.run_until(until_us);
        }

        fn pull(&mut self, now: Time) {
            let want = (self.pull_us / 1000) as usize * SAMPLES_PER_MS;
            while self.queued < want {
                match self.jb.pop(now, self.queued, want - self.queued) {
                    Pop::Packet(..) => {
                        self.queued += 320;
                        match self.jb.stretch_wanted() {
                            Some(StretchWanted::Accelerate) if self.jb.accelerate_limit() >= 40 => {
                                let n = self.jb.accelerate_limit().min(80);
                                self.queued -= n;
                                self.jb.stretched(-(n as isize));
                            }
                            Some(StretchWanted::Expand) => {
                                self.queued += 80;
                                self.jb.stretched(80);
                            }
                            Some(StretchWanted::CatchUp) if self.jb.accelerate_limit() >= 40 => {
                                // The stand-in treats every packet's audio as holding a pause.
                                let n = self.jb.accelerate_limit().min(80);
                                self.queued -= n;
                                self.jb.stretched(-(n as isize));
                            }
                            _ => {}
                        }
                        if let Some(l) = self.jb.playout_lead() {
                            self.played_at.push((now.as_micros(), l));
                        }
                    }
                    Pop::Missing(n) => self.queued += n,
                    Pop::Silence => self.queued = want,
                }
            }
            self.queued -= want;
        }

        /// Largest playout lead among packets played in [from, to) µs.
        fn max_lead(&self, from: u64, to: u64) -> Duration {
            self.played_at.iter().filter(|(t, _)| (from..to).contains(t)).map(|&(_, l)| l).max().unwrap_or_default()
        }
    }

    fn every_20ms(i: u16) -> u64 {
        u64::from(i) * 20_000
    }

    #[test]
    fn a_delay_spike_raises_the_target_at_once_and_it_falls_slowly_after() {
        let mut sim = Sim::new();
        // 60 s; at 10 s a 400 ms spike that drains over the next 400 ms.
        let delay = |i: u16| {
            let t = every_20ms(i) as i64;
            Some(50_000 + (400_000 - (t - 10_000_000)).clamp(0, 400_000) as u64 * u64::from(t >= 10_000_000))
        };
        sim.run(3000, every_20ms, delay, 11_000_000);
        // The spike is ~13 % of the last 3 s of packets, so the 0.95 quantile lies inside it.
        let peak = sim.jb.target();
        assert!(peak >= Duration::from_millis(200), "target {peak:?} right after the spike");
        let late = sim.jb.stats().late_loss();
        assert!(late <= 2, "{late} packets lost to the spike");
        // At most 50 ms per second down: 2 s later it is still high.
        sim.run_until(13_000_000);
        let mid = sim.jb.target();
        assert!(mid + Duration::from_millis(100) >= peak && mid > Duration::from_millis(100), "the target fell too fast: {mid:?} 2 s after {peak:?}");
        sim.run_until(59_000_000);
        assert!(sim.jb.target() < Duration::from_millis(30), "target {:?} long after the spike", sim.jb.target());
        // Without pauses, speech is accelerated down to target + 60 ms.
        assert!(sim.max_lead(50_000_000, 59_000_000) < Duration::from_millis(100), "playout did not come back down");
    }

    #[test]
    fn a_step_in_delay_costs_almost_no_packets_and_the_target_settles() {
        let mut sim = Sim::new();
        let delay = |i: u16| Some(if every_20ms(i) < 10_000_000 { 40_000 } else { 190_000 });
        sim.run(2000, every_20ms, delay, 40_000_000);
        let s = sim.jb.stats();
        assert!(s.late_loss() <= 5, "{} packets lost to the step", s.late_loss());
        assert!(sim.jb.target() < Duration::from_millis(30), "target {:?} after the base delay moved", sim.jb.target());
        assert!(sim.max_lead(30_000_000, 40_000_000) < Duration::from_millis(60), "playout stayed high: {:?}", sim.max_lead(30_000_000, 40_000_000));
    }

    #[test]
    fn sender_clock_drift_of_200_ppm_either_way_is_absorbed() {
        for ppm in [200.0, -200.0] {
            let mut sim = Sim::new();
            // Ten minutes: 120 ms of drift, more than the target.
            let send = |i: u16| (f64::from(i) * 20_000.0 * (1.0 - ppm * 1e-6)) as u64;
            let jitter = |i: u16| Some(30_000 + u64::from(i % 7) * 3_000);
            sim.run(30_000, send, jitter, 600_500_000);
            let s = sim.jb.stats();
            assert!(s.late_loss() < 30, "{ppm} ppm: {} packets late", s.late_loss());
            assert!(s.played_packets > 29_800, "{ppm} ppm: only {} played", s.played_packets);
            let lead = sim.max_lead(540_000_000, 600_000_000);
            // Uncorrected, +200 ppm would have added 120 ms; acceleration holds it under target + 60 ms.
            assert!(lead < Duration::from_millis(100), "{ppm} ppm: playout lead grew to {lead:?}");
        }
    }

    #[test]
    fn reordered_packets_are_played_in_order_not_lost() {
        let mut sim = Sim::new();
        // Every 10th packet arrives 30 ms late, after the one behind it.
        let delay = |i: u16| Some(if i % 10 == 5 { 80_000 } else { 50_000 });
        sim.run(1500, every_20ms, delay, 31_000_000);
        let s = sim.jb.stats();
        assert!(s.late_loss() <= 3, "{} reordered packets lost", s.late_loss());
        assert_eq!(s.duplicates, 0);
        assert!(s.played_packets >= 1495);
    }

    /// Talkspurts of 3 s with 0.5 s of DTX between them (media time jumps,
    /// sequence numbers do not). Delay 58 ms + 0..10 ms of jitter, and every
    /// 197 packets a short stall (+25, +15, +5 ms, in order), replayed into
    /// `sim` for 46 s; returns the jitter's 98th percentile (ms) and the mean
    /// playout lead over 10-46 s (ms).
    fn steady_low_jitter(sim: &mut Sim) -> (f64, f64) {
        let mut rng = crate::rng::Rng::new(7);
        let mut jitter = Vec::new();
        for i in 0..2000u16 {
            let spurt = u64::from(i / 150);
            let send = spurt * 3_500_000 + u64::from(i % 150) * 20_000;
            let ts = (send / TICK_US) as u16;
            let j = rng.below(11) + [25, 15, 5].get(usize::from(i % 197).wrapping_sub(50)).copied().unwrap_or(0);
            jitter.push(j);
            sim.flight.push((send + 58_000 + j * 1_000, i, ts));
        }
        sim.flight.sort();
        sim.run_until(46_000_000);
        jitter.sort_unstable();
        let q98 = jitter[jitter.len() * 98 / 100] as f64;
        let leads: Vec<f64> = sim.played_at.iter().filter(|(t, _)| (10_000_000..46_000_000).contains(t)).map(|(_, l)| l.as_secs_f64() * 1e3).collect();
        (q98, leads.iter().sum::<f64>() / leads.len() as f64)
    }

    #[test]
    fn pulled_every_10_ms_playout_settles_a_step_closer_to_the_target_than_pulled_every_20() {
        // The pulls fall 9 ms after the fastest arrivals: deadlines can be
        // 9, 19, 29 ms... pulled every 10 ms, 9, 29, 49... every 20 ms.
        let (q98, mean) = steady_low_jitter(&mut Sim::pulled_every(10_000));
        let mut coarse = Sim::new();
        let (_, mean_coarse) = steady_low_jitter(&mut coarse);
        let s = coarse.jb.stats();
        assert!(mean >= q98 && mean < 19.0 + 3.0, "pulled every 10 ms: mean lead {mean:.1} ms, jitter q98 {q98} ms");
        assert!(mean + 5.0 < mean_coarse, "10 ms pulls {mean:.1} ms, 20 ms pulls {mean_coarse:.1} ms");
        assert_eq!(s.late_loss(), 0, "{s:?}");
    }

    #[test]
    fn on_steady_low_jitter_playout_settles_at_the_first_pull_that_covers_the_98th_percentile() {
        // The pulls fall 9 ms after the fastest arrivals, so deadlines can be
        // 9, 29, 49 ms...: 9 would miss ~9 % of packets, 29 is the lowest that
        // covers the 98th percentile.
        let mut sim = Sim::new();
        let (q98, mean) = steady_low_jitter(&mut sim);
        let s = sim.jb.stats();
        // A wait for a late packet conceals a whole pull (+20 ms); playout comes back down in speech.
        assert!(s.waited_for >= 5, "{s:?}");
        assert!(mean >= q98 && mean < 29.0 + 3.0, "settled at a mean lead of {mean:.1} ms, jitter q98 {q98} ms");
        assert_eq!(s.late_loss(), 0, "{s:?}");
        assert!(s.waited_for * 100 <= s.played_packets * 2, "{} of {} packets waited for", s.waited_for, s.played_packets);
    }

    #[test]
    fn a_fallen_target_brings_playout_down_in_pauses_only_when_asked_to_follow_it() {
        // A constant 50 ms network delay: playout starts at the initial 80 ms
        // target, which then falls to nothing. No packet is ever late, so only
        // following the fallen target brings playout down (the stand-in treats
        // every packet as holding a pause; below 60 ms over target speech is not touched).
        let run = |follow: bool| {
            let mut sim = Sim::pulled_every(10_000);
            sim.jb.cfg.follow_falling_target = follow;
            sim.run(1000, every_20ms, |_| Some(50_000), 20_000_000);
            let s = sim.jb.stats();
            assert!(sim.max_lead(0, 1_000_000) >= Duration::from_millis(70), "playout did not start at the initial target");
            assert_eq!((s.waited_for, s.late_loss(), s.inserted_samples), (0, 0, 0), "{s:?}");
            sim.max_lead(10_000_000, 20_000_000)
        };
        let (kept, followed) = (run(false), run(true));
        assert!(followed < Duration::from_millis(10), "following, still {followed:?} over the fastest packet");
        assert!(kept > Duration::from_millis(50), "by default the cushion stays until a wait or a silence: {kept:?}");
    }

    #[test]
    fn duplicates_are_counted_and_played_once() {
        let mut jb = JitterBuffer::new(JitterConfig::adaptive());
        jb.insert_seq(Time::ZERO, Some(0), 0, &PACKET, true);
        jb.insert_seq(Time::from_millis(1), Some(0), 0, &PACKET, true);
        assert_eq!(jb.stats().duplicates, 1);
        assert!(matches!(jb.pop(Time::from_millis(200), 0, 320), Pop::Packet(..)));
        assert!(matches!(jb.pop(Time::from_millis(220), 0, 320), Pop::Missing(_)));
    }

    #[test]
    fn a_five_second_outage_is_one_interruption_and_playout_catches_up_after_it() {
        let mut sim = Sim::new();
        // Packets sent in [10 s, 15 s) wait in a queue and all arrive at 15 s.
        let delay = |i: u16| {
            let t = every_20ms(i);
            Some(if (10_000_000..15_000_000).contains(&t) { 15_000_000 - t + 50_000 } else { 50_000 })
        };
        sim.run(4000, every_20ms, delay, 79_000_000);
        let s = sim.jb.stats();
        assert_eq!(s.interruptions, 1, "{s:?}");
        let secs = s.interruption_us as f64 / 1e6;
        assert!((4.8..5.3).contains(&secs), "interruption of {secs} s");
        assert!(s.late_loss() <= 2, "{} packets of the backlog lost", s.late_loss());
        assert!(sim.jb.target() < Duration::from_millis(100), "the outage inflated the target to {:?}", sim.jb.target());
        assert!(sim.max_lead(60_000_000, 79_000_000) < Duration::from_millis(60), "playout still {:?} behind", sim.max_lead(60_000_000, 79_000_000));
    }

    #[test]
    fn after_an_outage_that_lost_everything_playout_resumes_at_the_target() {
        let mut sim = Sim::new();
        let delay = |i: u16| if (10_000_000..15_000_000).contains(&every_20ms(i)) { None } else { Some(50_000) };
        sim.run(1500, every_20ms, delay, 29_000_000);
        let s = sim.jb.stats();
        assert_eq!(s.late_loss(), 0);
        assert!(sim.max_lead(15_500_000, 29_000_000) < Duration::from_millis(60), "{:?}", sim.max_lead(15_500_000, 29_000_000));
        // Playback restarted right after the outage, not seconds later.
        assert!(sim.played_at.iter().any(|&(t, _)| (15_000_000..15_200_000).contains(&t)));
    }
}
