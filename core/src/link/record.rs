//! Recording what a real link did, and replaying it as a link model.
//!
//! The client logs one line per audio packet (CSV, `#` comments):
//!
//! ```text
//! dir,seq,media_us,sent_us,arrived_us,size
//! down,41,102500,,2034511,61      arrived at the client 2.034511 s into the call
//! down,42,,,,                     never arrived (a gap in the gateway's sequence numbers)
//! up,17,42500,2010002,,84         sent; arrival unknown without gateway feedback
//! ```
//!
//! `media_us` is the sender's media clock (the packet's timestamp), `sent_us`
//! and `arrived_us` are the client's clock, `size` the datagram bytes (lowband
//! header + Opus, without QUIC/UDP/IP). Down lines are fully observed: arrival
//! time, size, and loss from sequence gaps. Up lines know only send time and
//! size: the gateway's per-packet fate is not sent back (its periodic
//! `ReceiverReport` carries counts, not packets), so an uplink replay needs
//! explicit `arrived_us`/loss filled in by the tester, else it is refused.
//!
//! Replay: packet i pushed into the link gets recorded fate i (looping):
//! lost, or delayed by its recorded relative one-way delay
//! `(arrived − media) − min(arrived − media)` plus a base delay the tester
//! chooses (the clocks of the two ends are not synchronised, so the absolute
//! one-way delay is not observable; half the RTT is a good base).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use super::model::RecordedFates;
use crate::jitter::Unwrapper;
use crate::time::Time;
use crate::wire::audio::TICK_US;

pub const HEADER: &str = "dir,seq,media_us,sent_us,arrived_us,size";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dir {
    Up,
    Down,
}

impl Dir {
    fn name(self) -> &'static str {
        match self {
            Dir::Up => "up",
            Dir::Down => "down",
        }
    }
}

/// Builds the record's text; the shell appends [`LinkRecorder::take`] to a file.
#[derive(Debug, Default)]
pub struct LinkRecorder {
    text: String,
    down_seq: Unwrapper,
    down_ts: Unwrapper,
    up_ts: Unwrapper,
    up_seq: Unwrapper,
    highest_down: Option<i64>,
    started: bool,
}

impl LinkRecorder {
    pub fn new() -> Self {
        Self::default()
    }

    fn header(&mut self) {
        if !self.started {
            self.started = true;
            self.text.push_str("# lowband link record v1: one line per audio packet; see core/src/link/record.rs\n");
            self.text.push_str(HEADER);
            self.text.push('\n');
        }
    }

    /// A datagram from the gateway arrived (`seq`, `ts` from its audio header).
    pub fn on_down(&mut self, arrived: Time, seq: u16, ts: u16, size: usize) {
        self.header();
        let s = self.down_seq.extend(seq);
        let media = self.down_ts.extend(ts) * TICK_US as i64;
        if let Some(h) = self.highest_down {
            for missing in h + 1..s {
                let _ = writeln!(self.text, "down,{missing},,,,");
            }
        }
        self.highest_down = Some(self.highest_down.map_or(s, |h| h.max(s)));
        let _ = writeln!(self.text, "down,{s},{media},,{},{size}", arrived.as_micros());
    }

    /// The client sent an audio datagram.
    pub fn on_up(&mut self, sent: Time, seq: u16, ts: u16, size: usize) {
        self.header();
        let s = self.up_seq.extend(seq);
        let media = self.up_ts.extend(ts) * TICK_US as i64;
        let _ = writeln!(self.text, "up,{s},{media},{},,{size}", sent.as_micros());
    }

    /// Text recorded since the last call.
    pub fn take(&mut self) -> String {
        std::mem::take(&mut self.text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedPacket {
    pub media_us: Option<i64>,
    pub sent_us: Option<u64>,
    pub arrived_us: Option<u64>,
    pub size: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("line {0}: expected {HEADER}")]
    Malformed(usize),
    #[error("the record has no {0} packets")]
    Empty(&'static str),
    #[error("the record's uplink has no arrival times (the gateway does not report per-packet fates); fill arrived_us or replay the downlink")]
    NoUplinkFeedback,
}

/// A parsed record: per direction, packets by sequence number.
#[derive(Debug, Clone, Default)]
pub struct RecordedLink {
    pub up: BTreeMap<i64, RecordedPacket>,
    pub down: BTreeMap<i64, RecordedPacket>,
}

impl RecordedLink {
    pub fn parse(text: &str) -> Result<Self, RecordError> {
        let mut rec = RecordedLink::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line == HEADER {
                continue;
            }
            let f: Vec<&str> = line.split(',').collect();
            if f.len() != 6 {
                return Err(RecordError::Malformed(i + 1));
            }
            let bad = || RecordError::Malformed(i + 1);
            fn opt<T: std::str::FromStr>(s: &str) -> Result<Option<T>, ()> {
                if s.trim().is_empty() {
                    Ok(None)
                } else {
                    s.trim().parse().map(Some).map_err(|_| ())
                }
            }
            let seq: i64 = f[1].trim().parse().map_err(|_| bad())?;
            let p = RecordedPacket {
                media_us: opt(f[2]).map_err(|_| bad())?,
                sent_us: opt(f[3]).map_err(|_| bad())?,
                arrived_us: opt(f[4]).map_err(|_| bad())?,
                size: opt(f[5]).map_err(|_| bad())?,
            };
            let map = match f[0].trim() {
                "up" => &mut rec.up,
                "down" => &mut rec.down,
                _ => return Err(bad()),
            };
            // A late arrival overrides the gap line written before it came.
            if p.arrived_us.is_some() || !map.contains_key(&seq) {
                map.insert(seq, p);
            }
        }
        Ok(rec)
    }

    /// The loss pattern of one direction, in sequence order (true = lost).
    pub fn loss_pattern(&self, dir: Dir) -> Vec<bool> {
        self.packets(dir).values().map(|p| p.arrived_us.is_none()).collect()
    }

    fn packets(&self, dir: Dir) -> &BTreeMap<i64, RecordedPacket> {
        match dir {
            Dir::Up => &self.up,
            Dir::Down => &self.down,
        }
    }

    /// Per-packet fates for [`super::model::LinkConfig::recorded`].
    pub fn fates(&self, dir: Dir, base_delay: Duration) -> Result<RecordedFates, RecordError> {
        let packets = self.packets(dir);
        if packets.is_empty() {
            return Err(RecordError::Empty(dir.name()));
        }
        if dir == Dir::Up && packets.values().all(|p| p.arrived_us.is_none()) {
            return Err(RecordError::NoUplinkFeedback);
        }
        // Relative one-way delay needs a sender clock: the send time if known, else the media clock.
        let origin = |p: &RecordedPacket| p.sent_us.map(|s| s as i64).or(p.media_us);
        let rel = |p: &RecordedPacket| -> Option<i64> { Some(p.arrived_us? as i64 - origin(p)?) };
        let min = packets.values().filter_map(rel).min().unwrap_or(0);
        let fates = packets
            .values()
            .map(|p| {
                p.arrived_us.map(|_| base_delay + Duration::from_micros(rel(p).map_or(0, |r| (r - min) as u64)))
            })
            .collect();
        Ok(Arc::new(fates))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_become_lost_lines_and_late_arrivals_fill_them() {
        let mut r = LinkRecorder::new();
        r.on_down(Time::from_millis(100), 1, 8, 60);
        r.on_down(Time::from_millis(160), 4, 32, 60);
        r.on_down(Time::from_millis(170), 3, 24, 60);
        let rec = RecordedLink::parse(&r.take()).unwrap();
        assert_eq!(rec.loss_pattern(Dir::Down), vec![false, true, false, false]);
    }

    #[test]
    fn fates_are_relative_delays_plus_the_base() {
        let mut r = LinkRecorder::new();
        // ts 8 ticks = 20 ms apart; the second packet took 30 ms longer.
        r.on_down(Time::from_millis(100), 1, 0, 60);
        r.on_down(Time::from_millis(150), 2, 8, 60);
        let rec = RecordedLink::parse(&r.take()).unwrap();
        let f = rec.fates(Dir::Down, Duration::from_millis(200)).unwrap();
        assert_eq!(*f, vec![Some(Duration::from_millis(200)), Some(Duration::from_millis(230))]);
    }

    #[test]
    fn bad_records_and_uplinks_without_feedback_are_errors() {
        assert_eq!(RecordedLink::parse("down,x,,,,").unwrap_err(), RecordError::Malformed(1));
        assert_eq!(RecordedLink::parse("sideways,1,,,,").unwrap_err(), RecordError::Malformed(1));
        assert_eq!(RecordedLink::parse("down,1,,").unwrap_err(), RecordError::Malformed(1));
        let mut r = LinkRecorder::new();
        r.on_up(Time::from_millis(1), 0, 0, 80);
        let rec = RecordedLink::parse(&r.take()).unwrap();
        assert_eq!(rec.fates(Dir::Up, Duration::ZERO).unwrap_err(), RecordError::NoUplinkFeedback);
        assert_eq!(rec.fates(Dir::Down, Duration::ZERO).unwrap_err(), RecordError::Empty("down"));
    }
}
