//! Receive buffer: orders packets by media time and hands them out at a fixed
//! delay after the first packet of a talkspurt. Deliberately simple; the
//! adaptive buffer (issue #5) replaces it behind the same interface.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::codec::{packet_samples, SAMPLES_PER_MS};
use crate::time::Time;
use crate::wire::audio::{TICK_SAMPLES, TICK_US};

fn ticks_for_samples(samples: usize) -> i64 {
    (samples / TICK_SAMPLES) as i64
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
    /// Nothing to play: not started, or the talkspurt has ended.
    Silence,
    /// The packet that starts at the playout point, and whether it carries
    /// speech (false for a comfort-noise update sent during DTX).
    Packet(Vec<u8>, bool),
    /// The next packet is missing (lost or late): conceal this many samples.
    Missing(usize),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    pub received: u64,
    pub duplicates: u64,
    pub late: u64,
    pub invalid: u64,
    pub concealed_samples: u64,
    pub skipped_packets: u64,
    /// Holes filled by redundant copies before they had to be concealed.
    pub recovered: u64,
    /// Packets handed out for playout, and the sum of the time each waited
    /// here from arrival (NetEq's jitterBufferEmittedCount and jitterBufferDelay).
    pub emitted: u64,
    pub delay_us: u64,
}

#[derive(Debug)]
pub struct JitterBuffer {
    target: Duration,
    ts: Unwrapper,
    /// Payload, speech or not, arrival time.
    packets: BTreeMap<i64, (Vec<u8>, bool, Time)>,
    /// Media time (ticks) of the next sample to play, and when playout may start.
    playout: Option<(i64, Time)>,
    missing_run: usize,
    last_insert: Time,
    stats: JitterStats,
}

/// After this much concealment with nothing buffered, the talkspurt is over.
const END_OF_SPURT_SAMPLES: usize = 200 * SAMPLES_PER_MS;
/// Beyond target + this much buffered, old packets are dropped to catch up.
const MAX_EXCESS: Duration = Duration::from_millis(300);

impl JitterBuffer {
    pub fn new(target: Duration) -> Self {
        JitterBuffer { target, ts: Unwrapper::default(), packets: BTreeMap::new(), playout: None, missing_run: 0, last_insert: Time::ZERO, stats: JitterStats::default() }
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    pub fn insert(&mut self, now: Time, ts: u16, payload: &[u8], voice: bool) {
        let ts = self.ts.extend(ts);
        self.stats.received += 1;
        self.last_insert = now;
        match self.playout {
            Some((next, _)) if ts < next => {
                self.stats.late += 1;
                return;
            }
            None => self.playout = Some((ts, now + self.target)),
            _ => {}
        }
        if self.packets.insert(ts, (payload.to_vec(), voice, now)).is_some() {
            self.stats.duplicates += 1;
        }
        self.catch_up();
    }

    fn catch_up(&mut self) {
        let (Some((next, start)), Some(&newest)) = (self.playout, self.packets.keys().next_back()) else { return };
        let span_ms = (newest - next) as u64 * TICK_US / 1000;
        let limit = (self.target + MAX_EXCESS).as_millis() as u64;
        if span_ms > limit {
            let new_next = newest - (self.target.as_micros() as u64 / TICK_US) as i64;
            let keep = self.packets.split_off(&new_next);
            self.stats.skipped_packets += self.packets.len() as u64;
            self.packets = keep;
            self.playout = Some((new_next, start));
        }
    }

    /// Offers a redundant copy of an earlier frame (from RED, LBRR or DRED):
    /// it fills the slot only if the primary is missing and still playable.
    /// Returns true when it was used.
    pub fn insert_recovery(&mut self, ts: u16, payload: &[u8]) -> bool {
        let ts = self.ts.extend(ts);
        let playable = self.playout.is_some_and(|(next, _)| ts >= next);
        if !playable || self.packets.contains_key(&ts) {
            return false;
        }
        // Redundancy rides in the packet inserted just before.
        self.packets.insert(ts, (payload.to_vec(), true, self.last_insert));
        self.stats.recovered += 1;
        true
    }

    /// The first buffered packet at or after the playout point: how many
    /// samples ahead of the playout point it starts, its media time and its
    /// payload. Deep redundancy (DRED) rebuilds a hole from the packet after it.
    pub fn peek_following(&self) -> impl Iterator<Item = (usize, i64, &[u8])> {
        let next = self.playout.map(|(n, _)| n);
        next.into_iter().flat_map(move |next| self.packets.range(next..).map(move |(&ts, (p, _, _))| ((ts - next) as usize * TICK_SAMPLES, ts, p.as_slice())))
    }

    /// Takes what plays next. `want` is the samples the caller needs, used to size concealment.
    pub fn pop(&mut self, now: Time, want: usize) -> Pop {
        let Some((next, start)) = self.playout else { return Pop::Silence };
        if now < start {
            return Pop::Silence;
        }
        // Drop anything that overlaps what was already played.
        while let Some(entry) = self.packets.first_entry() {
            if *entry.key() >= next {
                break;
            }
            entry.remove();
            self.stats.late += 1;
        }
        if let Some((payload, voice, arrived)) = self.packets.remove(&next) {
            match packet_samples(&payload) {
                Ok(n) if n > 0 => {
                    self.stats.emitted += 1;
                    self.stats.delay_us += (now - arrived).as_micros() as u64;
                    self.playout = Some((next + ticks_for_samples(n), start));
                    self.missing_run = 0;
                    return Pop::Packet(payload, voice);
                }
                _ => self.stats.invalid += 1,
            }
        }
        if self.packets.is_empty() && self.missing_run >= END_OF_SPURT_SAMPLES {
            self.playout = None;
            self.missing_run = 0;
            return Pop::Silence;
        }
        self.missing_run += want;
        self.stats.concealed_samples += want as u64;
        self.playout = Some((next + ticks_for_samples(want), start));
        Pop::Missing(want)
    }
}
