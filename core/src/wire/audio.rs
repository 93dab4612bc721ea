//! Audio datagram layout, v1. One QUIC DATAGRAM carries one packet:
//!
//! ```text
//! byte 0   flags: VV S R L M 00
//!            VV version (1)          S stream id present
//!            R  redundancy present   L audio level present
//!            M  first packet of a talkspurt (the receiver may re-time here)
//!            00 reserved, must be zero
//! 1..3     sequence number, u16 big-endian, +1 per packet sent
//! 3..5     media timestamp, u16 big-endian, in 2.5 ms ticks (the Opus frame grain)
//! [S]      stream id, varint (room-local participant id; absent = the mix)
//! [L]      audio level, u8: bit 7 voice activity, bits 0-6 level in -dBov (RFC 6464)
//! [R]      count n (1-3), then n × { ticks back: u8, length: varint },
//!          then the n redundant Opus payloads, oldest first
//! rest     the primary Opus packet
//! ```
//!
//! A plain mixed packet costs 5 bytes on top of Opus; a talker's uplink with
//! level costs 6. Redundant copies cost 2-3 bytes each plus their payload.

use super::{varint, WireError};

pub const VERSION: u8 = 1;
/// Media timestamps count this unit: the shortest Opus frame.
pub const TICK_US: u64 = 2_500;
/// One tick in samples at lowband's 16 kHz.
pub const TICK_SAMPLES: usize = 40;
/// Most redundant copies one packet may carry.
pub const MAX_REDUNDANT: usize = 3;
/// Bytes of a header with no optional fields.
pub const BASE_HEADER_LEN: usize = 5;

const F_STREAM: u8 = 0x20;
const F_RED: u8 = 0x10;
const F_LEVEL: u8 = 0x08;
const F_MARKER: u8 = 0x04;
const F_RESERVED: u8 = 0x03;

/// Speech level as in RFC 6464: `dbov` is 0 (loudest) to 127 (silence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioLevel {
    pub voice: bool,
    pub dbov: u8,
}

impl AudioLevel {
    fn to_byte(self) -> u8 {
        (u8::from(self.voice) << 7) | self.dbov.min(127)
    }
    fn from_byte(b: u8) -> Self {
        AudioLevel { voice: b & 0x80 != 0, dbov: b & 0x7f }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AudioHeader {
    pub seq: u16,
    /// Media time of the primary payload's first sample, in [`TICK_US`] ticks (wrapping).
    pub ts: u16,
    pub marker: bool,
    pub stream: Option<u32>,
    pub level: Option<AudioLevel>,
}

/// An earlier frame carried again for loss protection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Redundant<'a> {
    /// How far before the primary this copy starts, in ticks.
    pub ticks_back: u8,
    pub payload: &'a [u8],
}

/// A parsed audio datagram; payloads borrow from the datagram, nothing is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioPacket<'a> {
    pub header: AudioHeader,
    redundant: [Redundant<'a>; MAX_REDUNDANT],
    redundant_len: u8,
    pub primary: &'a [u8],
}

impl<'a> AudioPacket<'a> {
    pub fn new(header: AudioHeader, primary: &'a [u8]) -> Self {
        AudioPacket { header, redundant: Default::default(), redundant_len: 0, primary }
    }

    /// Adds a redundant copy (oldest first). Returns false when full.
    pub fn push_redundant(&mut self, r: Redundant<'a>) -> bool {
        if usize::from(self.redundant_len) == MAX_REDUNDANT {
            return false;
        }
        self.redundant[usize::from(self.redundant_len)] = r;
        self.redundant_len += 1;
        true
    }

    pub fn redundant(&self) -> &[Redundant<'a>] {
        &self.redundant[..usize::from(self.redundant_len)]
    }

    /// Bytes the encoded packet will take.
    pub fn encoded_len(&self) -> usize {
        let h = &self.header;
        let mut n = BASE_HEADER_LEN + self.primary.len();
        n += h.stream.map_or(0, |s| varint::len(u64::from(s)));
        n += usize::from(h.level.is_some());
        if self.redundant_len > 0 {
            n += 1;
            for r in self.redundant() {
                n += 1 + varint::len(r.payload.len() as u64) + r.payload.len();
            }
        }
        n
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        let h = &self.header;
        let mut flags = VERSION << 6;
        if h.stream.is_some() {
            flags |= F_STREAM;
        }
        if self.redundant_len > 0 {
            flags |= F_RED;
        }
        if h.level.is_some() {
            flags |= F_LEVEL;
        }
        if h.marker {
            flags |= F_MARKER;
        }
        out.reserve(self.encoded_len());
        out.push(flags);
        out.extend_from_slice(&h.seq.to_be_bytes());
        out.extend_from_slice(&h.ts.to_be_bytes());
        if let Some(s) = h.stream {
            varint::put(out, u64::from(s));
        }
        if let Some(l) = h.level {
            out.push(l.to_byte());
        }
        if self.redundant_len > 0 {
            out.push(self.redundant_len);
            for r in self.redundant() {
                out.push(r.ticks_back);
                varint::put(out, r.payload.len() as u64);
            }
            for r in self.redundant() {
                out.extend_from_slice(r.payload);
            }
        }
        out.extend_from_slice(self.primary);
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.encoded_len());
        self.encode(&mut v);
        v
    }

    /// Parses a datagram. Total: any input gives a packet or an error.
    pub fn decode(buf: &'a [u8]) -> Result<Self, WireError> {
        if buf.len() < BASE_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let flags = buf[0];
        if flags >> 6 != VERSION {
            return Err(WireError::UnknownVersion(flags >> 6));
        }
        if flags & F_RESERVED != 0 {
            return Err(WireError::ReservedBits);
        }
        let mut header = AudioHeader {
            seq: u16::from_be_bytes([buf[1], buf[2]]),
            ts: u16::from_be_bytes([buf[3], buf[4]]),
            marker: flags & F_MARKER != 0,
            stream: None,
            level: None,
        };
        let mut rest = &buf[BASE_HEADER_LEN..];
        if flags & F_STREAM != 0 {
            let (s, r) = varint::get(rest)?;
            header.stream = Some(u32::try_from(s).map_err(|_| WireError::OutOfRange)?);
            rest = r;
        }
        if flags & F_LEVEL != 0 {
            let (&b, r) = rest.split_first().ok_or(WireError::Truncated)?;
            header.level = Some(AudioLevel::from_byte(b));
            rest = r;
        }
        let mut packet = AudioPacket::new(header, &[]);
        if flags & F_RED != 0 {
            let (&n, r) = rest.split_first().ok_or(WireError::Truncated)?;
            rest = r;
            if n == 0 || usize::from(n) > MAX_REDUNDANT {
                return Err(WireError::OutOfRange);
            }
            let mut lens = [(0u8, 0usize); MAX_REDUNDANT];
            for slot in lens.iter_mut().take(usize::from(n)) {
                let (&back, r) = rest.split_first().ok_or(WireError::Truncated)?;
                let (len, r) = varint::get(r)?;
                *slot = (back, usize::try_from(len).map_err(|_| WireError::OutOfRange)?);
                rest = r;
            }
            for &(ticks_back, len) in lens.iter().take(usize::from(n)) {
                if rest.len() < len {
                    return Err(WireError::Truncated);
                }
                let (payload, r) = rest.split_at(len);
                packet.push_redundant(Redundant { ticks_back, payload });
                rest = r;
            }
        }
        if rest.is_empty() {
            return Err(WireError::Truncated);
        }
        packet.primary = rest;
        Ok(packet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_packet() -> Vec<u8> {
        let mut p = AudioPacket::new(
            AudioHeader {
                seq: 0xfffe,
                ts: 1234,
                marker: true,
                stream: Some(300),
                level: Some(AudioLevel { voice: true, dbov: 30 }),
            },
            b"primary",
        );
        p.push_redundant(Redundant { ticks_back: 16, payload: b"older" });
        p.push_redundant(Redundant { ticks_back: 8, payload: b"old" });
        p.to_vec()
    }

    #[test]
    fn a_plain_mixed_packet_adds_five_bytes() {
        let p = AudioPacket::new(AudioHeader { seq: 7, ts: 8, ..Default::default() }, &[1, 2, 3]);
        let v = p.to_vec();
        assert_eq!(v.len(), BASE_HEADER_LEN + 3);
        assert_eq!(AudioPacket::decode(&v).unwrap(), p);
    }

    #[test]
    fn every_field_round_trips() {
        let v = full_packet();
        let p = AudioPacket::decode(&v).unwrap();
        assert_eq!(p.encoded_len(), v.len());
        assert_eq!(p.header.stream, Some(300));
        assert_eq!(p.header.level, Some(AudioLevel { voice: true, dbov: 30 }));
        assert!(p.header.marker);
        assert_eq!(p.redundant().len(), 2);
        assert_eq!(p.redundant()[0].payload, b"older");
        assert_eq!(p.redundant()[1].ticks_back, 8);
        assert_eq!(p.primary, b"primary");
        assert_eq!(p.to_vec(), v);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let v = full_packet();
        let primary_start = v.len() - b"primary".len();
        for cut in 0..primary_start {
            assert!(AudioPacket::decode(&v[..cut]).is_err(), "cut at {cut} parsed");
        }
    }

    #[test]
    fn foreign_versions_and_reserved_bits_are_refused() {
        let mut v = full_packet();
        v[0] = (v[0] & 0x3f) | (2 << 6);
        assert_eq!(AudioPacket::decode(&v), Err(WireError::UnknownVersion(2)));
        let mut v = full_packet();
        v[0] |= 0x01;
        assert_eq!(AudioPacket::decode(&v), Err(WireError::ReservedBits));
    }
}
