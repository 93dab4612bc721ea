//! Per-packet arrival feedback on a client's uplink, in the style of
//! transport-wide congestion control: the gateway tells the client which of
//! its audio packets arrived and when, so the client's link recorder sees its
//! uplink as it sees its downlink (`core/src/link/record.rs`).
//!
//! Sent only to clients that ask (`ClientMsg::WantArrivals`, protocol v4),
//! about once a second with the receiver report: a byte or two per packet is
//! a real cost on a 2G downlink, so nobody pays it unless recording.
//!
//! One message covers `count` consecutive sequence numbers from `base_seq`: a
//! bitmap of which arrived, then one arrival delta per arrived packet in
//! sequence order (from `base_us`, then from the previous arrival), in units
//! of 250 µs, zigzag varints (postcard). Times are the gateway's clock.

use serde::{Deserialize, Serialize};

use crate::time::Time;

/// Most sequence numbers one message covers: bounds it to ~2.6 KiB.
pub const MAX_PACKETS: u16 = 512;
/// Resolution of arrival deltas (as transport-wide CC).
pub const DELTA_UNIT_US: u64 = 250;
/// `base_us` must stay below this, so sums of deltas cannot overflow.
const MAX_BASE_US: u64 = 1 << 60;

/// Which of `count` uplink packets from `base_seq` arrived, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawArrivals")]
pub struct Arrivals {
    base_seq: u16,
    base_us: u64,
    count: u16,
    /// Bit i (least significant first) of byte i/8: packet `base_seq + i` arrived.
    received: Vec<u8>,
    /// One per arrived packet, 250 µs units, from the previous arrival (the first from `base_us`).
    deltas: Vec<i32>,
}

/// The same fields, as they come off the wire, before validation.
#[derive(Deserialize)]
struct RawArrivals {
    base_seq: u16,
    base_us: u64,
    count: u16,
    received: Vec<u8>,
    deltas: Vec<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ArrivalsError {
    #[error("covers {0} packets (1..={MAX_PACKETS} allowed)")]
    Count(u16),
    #[error("the bitmap does not match the packet count")]
    Bitmap,
    #[error("the arrival deltas do not match the arrived packets")]
    Deltas,
    #[error("an arrival time is out of range")]
    Time,
}

impl TryFrom<RawArrivals> for Arrivals {
    type Error = ArrivalsError;

    fn try_from(r: RawArrivals) -> Result<Self, ArrivalsError> {
        if r.count == 0 || r.count > MAX_PACKETS {
            return Err(ArrivalsError::Count(r.count));
        }
        let bytes = usize::from(r.count).div_ceil(8);
        let pad = r.count % 8;
        if r.received.len() != bytes || (pad != 0 && r.received[bytes - 1] >> pad != 0) {
            return Err(ArrivalsError::Bitmap);
        }
        let arrived: u32 = r.received.iter().map(|b| b.count_ones()).sum();
        if r.deltas.len() != arrived as usize {
            return Err(ArrivalsError::Deltas);
        }
        if r.base_us >= MAX_BASE_US {
            return Err(ArrivalsError::Time);
        }
        // No arrival may fall before the gateway's epoch (at most 512 × 2^31 units: no i64 overflow).
        let mut t = r.base_us as i64;
        for &d in &r.deltas {
            t += i64::from(d) * DELTA_UNIT_US as i64;
            if t < 0 {
                return Err(ArrivalsError::Time);
            }
        }
        Ok(Arrivals { base_seq: r.base_seq, base_us: r.base_us, count: r.count, received: r.received, deltas: r.deltas })
    }
}

impl Arrivals {
    /// Each covered sequence number with its arrival (gateway clock), or `None` if lost.
    pub fn packets(&self) -> impl Iterator<Item = (u16, Option<Time>)> + '_ {
        let mut deltas = self.deltas.iter();
        let mut t = self.base_us as i64;
        (0..self.count).map(move |i| {
            let seq = self.base_seq.wrapping_add(i);
            let got = self.received[usize::from(i / 8)] >> (i % 8) & 1 == 1;
            let at = got.then(|| {
                t += i64::from(*deltas.next().expect("validated: one delta per arrival")) * DELTA_UNIT_US as i64;
                Time::from_micros(t as u64)
            });
            (seq, at)
        })
    }

    pub fn base_seq(&self) -> u16 {
        self.base_seq
    }

    pub fn count(&self) -> u16 {
        self.count
    }
}

/// The gateway's side: arrivals of one uplink since the last message.
#[derive(Debug, Default)]
pub struct ArrivalLog {
    /// First sequence number the next message covers.
    base: Option<u16>,
    /// (offset from base, arrival), unsorted.
    got: Vec<(u16, Time)>,
}

impl ArrivalLog {
    /// An uplink audio packet arrived. Returns a message when the window is
    /// full and must go out now (the packet then starts the next one).
    pub fn on_packet(&mut self, now: Time, seq: u16) -> Option<Arrivals> {
        let base = *self.base.get_or_insert(seq);
        let off = seq.wrapping_sub(base);
        if off >= 0x8000 {
            return None; // before the window: already reported, as lost
        }
        let mut full = None;
        if off >= MAX_PACKETS {
            full = self.take();
            let base = self.base.expect("set above");
            if seq.wrapping_sub(base) >= MAX_PACKETS {
                // A jump longer than a message: the gap goes unreported (the client marks it unobserved).
                self.base = Some(seq);
            }
        }
        let off = seq.wrapping_sub(self.base.expect("set above"));
        if !self.got.iter().any(|&(o, _)| o == off) {
            self.got.push((off, now));
        }
        full
    }

    /// Everything from the base up to the highest arrival, if anything arrived.
    /// Packets missing after the highest are reported in the next message.
    pub fn take(&mut self) -> Option<Arrivals> {
        if self.got.is_empty() {
            return None;
        }
        self.got.sort_unstable_by_key(|&(o, _)| o);
        let count = self.got.last().expect("not empty").0 + 1;
        let base_seq = self.base.expect("set with the first packet");
        let base_us = self.got[0].1.as_micros();
        let mut received = vec![0u8; usize::from(count).div_ceil(8)];
        let mut deltas = Vec::with_capacity(self.got.len());
        // Deltas are taken between quantised times, so rounding never accumulates.
        let mut prev = 0i64;
        for &(o, t) in &self.got {
            received[usize::from(o / 8)] |= 1 << (o % 8);
            // Never before the epoch, which the client would refuse as malformed.
            let q = (t.as_micros() as i64 - base_us as i64).div_euclid(DELTA_UNIT_US as i64).max(-((base_us / DELTA_UNIT_US) as i64));
            let d = (q - prev).clamp(i64::from(i32::MIN), i64::from(i32::MAX));
            deltas.push(d as i32);
            prev += d;
        }
        self.got.clear();
        self.base = Some(base_seq.wrapping_add(count));
        Some(Arrivals { base_seq, base_us, count, received, deltas })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::control::{decode_body, encode_frame, FrameReader};
    use crate::wire::ServerMsg;

    fn log(arrivals: &[(u16, u64)]) -> Vec<Arrivals> {
        let mut l = ArrivalLog::default();
        let mut out: Vec<Arrivals> = arrivals.iter().filter_map(|&(s, us)| l.on_packet(Time::from_micros(us), s)).collect();
        out.extend(l.take());
        out
    }

    #[test]
    fn losses_reordering_and_wrap_round_trip_through_the_wire() {
        let sent = [(65534, 1_000_000), (1, 1_060_000), (65535, 1_075_250), (3, 1_200_000)];
        let msgs = log(&sent);
        assert_eq!(msgs.len(), 1);
        let body = postcard::to_stdvec(&ServerMsg::Arrivals(msgs[0].clone())).unwrap();
        let ServerMsg::Arrivals(a) = decode_body::<ServerMsg>(&body).unwrap() else { panic!("not arrivals") };
        let got: Vec<_> = a.packets().collect();
        let t = |us| Some(Time::from_micros(us));
        assert_eq!(got, vec![(65534, t(1_000_000)), (65535, t(1_075_250)), (0, None), (1, t(1_060_000)), (2, None), (3, t(1_200_000))]);
    }

    #[test]
    fn a_long_run_is_split_into_bounded_messages_and_a_long_jump_is_not_reported() {
        let sent: Vec<(u16, u64)> = (0..1200u16).map(|s| (s, u64::from(s) * 20_000)).chain([(30_000, 99_000_000)]).collect();
        let msgs = log(&sent);
        assert_eq!(msgs.iter().map(|m| (m.base_seq(), m.count())).collect::<Vec<_>>(), vec![(0, 512), (512, 512), (1024, 176), (30_000, 1)]);
        for m in &msgs {
            assert!(encode_frame(&ServerMsg::Arrivals(m.clone())).len() < 2700);
        }
    }

    #[test]
    fn garbage_arrival_messages_are_errors_not_panics() {
        let valid = encode_frame(&ServerMsg::Arrivals(log(&[(7, 5_000), (9, 30_000)]).remove(0)));
        let mut rng = crate::rng::Rng::new(4);
        for _ in 0..20_000 {
            let mut v = valid.clone();
            for _ in 0..=rng.below(3) {
                let i = rng.below(v.len() as u64) as usize;
                v[i] = rng.next_u64() as u8;
            }
            v.truncate(1 + rng.below(v.len() as u64) as usize);
            let mut r = FrameReader::default();
            r.push(&v);
            if let Ok(Some(ServerMsg::Arrivals(a))) = r.next::<ServerMsg>() {
                assert!(a.packets().count() <= usize::from(MAX_PACKETS));
            }
        }
        // Hand-made invalid ones: each check fires.
        let raw = |count: u16, received: Vec<u8>, deltas: Vec<i32>, base_us: u64| {
            #[derive(Serialize)]
            struct R(u16, u64, u16, Vec<u8>, Vec<i32>);
            let mut body = vec![7u8]; // ServerMsg::Arrivals's variant index
            body.extend(postcard::to_stdvec(&R(0, base_us, count, received, deltas)).unwrap());
            decode_body::<ServerMsg>(&body)
        };
        assert!(raw(3, vec![0b101], vec![0, 4], 0).is_ok());
        assert!(raw(0, vec![], vec![], 0).is_err(), "empty");
        assert!(raw(MAX_PACKETS + 1, vec![0; 65], vec![], 0).is_err(), "over the bound");
        assert!(raw(3, vec![0b1101], vec![0, 4, 1], 0).is_err(), "bits past count");
        assert!(raw(3, vec![0b101, 0], vec![0, 4], 0).is_err(), "bitmap too long");
        assert!(raw(3, vec![0b101], vec![0], 0).is_err(), "a delta missing");
        assert!(raw(3, vec![0b101], vec![0, -5], 1000).is_err(), "before the epoch");
        assert!(raw(3, vec![0b101], vec![0, 4], u64::MAX).is_err(), "base out of range");
    }
}
