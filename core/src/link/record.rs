//! Recording what a real link did, and replaying it as a link model.
//!
//! The client logs one line per audio packet (CSV, `#` comments):
//!
//! ```text
//! dir,seq,media_us,sent_us,arrived_us,size
//! down,41,102500,,2034511,61      arrived at the client 2.034511 s into the call
//! down,42,,,,                     never arrived (a gap in the gateway's sequence numbers)
//! up,17,42500,2010002,7731250,84  sent; the gateway says it arrived at 7.731250 s (its clock)
//! up,18,62500,2030002,,84         sent; the gateway says it never arrived
//! up,19,82500,2050001,?,84        sent; no feedback covered it (end of call, old gateway)
//! ```
//!
//! `media_us` is the sender's media clock (the packet's timestamp), `sent_us`
//! the client's clock, `size` the datagram bytes (lowband header + Opus,
//! without QUIC/UDP/IP). Down lines are written on arrival, in the client's
//! clock, with loss from sequence gaps. Up lines are written when the
//! gateway's per-packet feedback ([`crate::wire::arrivals`]) covers them:
//! their `arrived_us` is the gateway's clock (the two clocks differ by an
//! unknown constant, which replay removes). `?` = unobserved, left out of replay.
//!
//! Replay: packet i pushed into the link gets recorded fate i (looping):
//! lost, or delayed by its recorded relative one-way delay
//! `(arrived − sent) − min(arrived − sent)` (the media clock when the send
//! time is unknown) plus a base delay the tester chooses (the clocks of the
//! two ends are not synchronised, so the absolute one-way delay is not
//! observable; half the RTT is a good base).

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use super::model::RecordedFates;
use crate::jitter::Unwrapper;
use crate::time::Time;
use crate::wire::arrivals::Arrivals;
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
    /// Sent, waiting for the gateway's feedback, in send order.
    pending_up: VecDeque<PendingUp>,
}

#[derive(Debug)]
struct PendingUp {
    seq: i64,
    media: i64,
    sent: Time,
    size: usize,
}

/// An uplink packet no feedback covered for this long is written as unobserved
/// (feedback comes once a second; a stalled control stream can hold it longer).
const FEEDBACK_WAIT: Duration = Duration::from_secs(30);

impl LinkRecorder {
    pub fn new() -> Self {
        Self::default()
    }

    fn header(&mut self) {
        if !self.started {
            self.started = true;
            self.text.push_str("# lowband link record v2: one line per audio packet; see core/src/link/record.rs\n");
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

    /// The client sent an audio datagram; its line waits for the gateway's feedback.
    pub fn on_up(&mut self, sent: Time, seq: u16, ts: u16, size: usize) {
        self.header();
        let seq = self.up_seq.extend(seq);
        let media = self.up_ts.extend(ts) * TICK_US as i64;
        self.pending_up.push_back(PendingUp { seq, media, sent, size });
        while self.pending_up.front().is_some_and(|p| sent.saturating_since(p.sent) > FEEDBACK_WAIT) {
            let p = self.pending_up.pop_front().expect("checked");
            self.write_up(&p, "?");
        }
    }

    /// The gateway's feedback on uplink packets: their lines are written now.
    pub fn on_up_arrivals(&mut self, a: &Arrivals) {
        for (seq, at) in a.packets() {
            // Pending packets are few (about a second's worth): a scan is cheap.
            let Some(i) = self.pending_up.iter().position(|p| p.seq as u16 == seq) else { continue };
            let p = self.pending_up.remove(i).expect("found");
            let arrived = at.map_or(String::new(), |t| t.as_micros().to_string());
            self.write_up(&p, &arrived);
        }
    }

    fn write_up(&mut self, p: &PendingUp, arrived: &str) {
        let _ = writeln!(self.text, "up,{},{},{},{arrived},{}", p.seq, p.media, p.sent.as_micros(), p.size);
    }

    /// Text recorded since the last call.
    pub fn take(&mut self) -> String {
        std::mem::take(&mut self.text)
    }

    /// The call ended: uplink packets still without feedback are written as unobserved.
    pub fn finish(&mut self) -> String {
        while let Some(p) = self.pending_up.pop_front() {
            self.write_up(&p, "?");
        }
        self.take()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedPacket {
    pub media_us: Option<i64>,
    pub sent_us: Option<u64>,
    pub arrived_us: Option<u64>,
    pub size: Option<usize>,
    /// False for `?`: nobody saw whether it arrived.
    pub observed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("line {0}: expected {HEADER}")]
    Malformed(usize),
    #[error("the record has no {0} packets")]
    Empty(&'static str),
    #[error("no uplink packet in the record was observed (the gateway sent no arrival feedback: record with a protocol-v4 gateway, or replay the downlink)")]
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
        // v1 wrote up lines at send time: an empty arrival there means unobserved, not lost.
        let v1 = text.lines().next().is_some_and(|l| l.starts_with("# lowband link record v1"));
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
            let observed = f[4].trim() != "?" && !(v1 && f[0].trim() == "up");
            let p = RecordedPacket {
                media_us: opt(f[2]).map_err(|_| bad())?,
                sent_us: opt(f[3]).map_err(|_| bad())?,
                arrived_us: if observed { opt(f[4]).map_err(|_| bad())? } else { None },
                size: opt(f[5]).map_err(|_| bad())?,
                observed,
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

    /// The loss pattern of one direction's observed packets, in sequence order (true = lost).
    pub fn loss_pattern(&self, dir: Dir) -> Vec<bool> {
        self.observed(dir).map(|p| p.arrived_us.is_none()).collect()
    }

    fn observed(&self, dir: Dir) -> impl Iterator<Item = &RecordedPacket> {
        let packets = match dir {
            Dir::Up => &self.up,
            Dir::Down => &self.down,
        };
        packets.values().filter(|p| p.observed)
    }

    /// Per-packet fates for [`super::model::LinkConfig::recorded`].
    pub fn fates(&self, dir: Dir, base_delay: Duration) -> Result<RecordedFates, RecordError> {
        let packets: Vec<&RecordedPacket> = self.observed(dir).collect();
        if packets.is_empty() {
            let any_up = dir == Dir::Up && !self.up.is_empty();
            return Err(if any_up { RecordError::NoUplinkFeedback } else { RecordError::Empty(dir.name()) });
        }
        // Relative one-way delay needs a sender clock: the send time if known, else the media clock.
        let origin = |p: &RecordedPacket| p.sent_us.map(|s| s as i64).or(p.media_us);
        let rel = |p: &RecordedPacket| -> Option<i64> { Some(p.arrived_us? as i64 - origin(p)?) };
        let min = packets.iter().copied().filter_map(rel).min().unwrap_or(0);
        let fates = packets
            .iter()
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
        let rec = RecordedLink::parse(&r.finish()).unwrap();
        assert_eq!(rec.fates(Dir::Up, Duration::ZERO).unwrap_err(), RecordError::NoUplinkFeedback);
        assert_eq!(rec.fates(Dir::Down, Duration::ZERO).unwrap_err(), RecordError::Empty("down"));
    }
}
