//! Codec profiles: what one audio stream looks like on the wire. Profiles are
//! plain data; a stream switches profile between frames without a reset.
//!
//! The link ladder, leanest first ([`Profile::ladder`]):
//!
//! | name | packet | Opus (all VBR, wideband max, DTX) | loss protection | on-wire budget (IPv4, talking) |
//! | --- | --- | --- | --- | --- |
//! | `2g`   | 120 ms | 8 kbit/s  | RED: ≤ 1 earlier packet, 6 kbit/s secondary encoder (DRED cannot activate below ~12 kbit/s) | 18 kbit/s |
//! | `edge` | 60 ms  | 18 kbit/s | DRED 1 s when negotiated; else RED ≤ 1 copy at 4 kbit/s, paid from the 18 | 27 kbit/s |
//! | `3g`   | 60 ms  | 19 kbit/s | DRED 1 s when negotiated; else RED ≤ 2 copies at 4 kbit/s, paid from the 19. Bursty loss: 120 ms packets, 19 kbit/s + one 9.3 kbit/s copy spaced by the mean burst (≤ 3 packets) + DRED when negotiated | 28 kbit/s |
//! | `good` | 20 ms  | 28 kbit/s | in-band FEC (LBRR) + DRED 0.5 s when negotiated | 60 kbit/s |
//!
//! Decoders run at complexity 7 (deep PLC + NoLACE). DRED and LBRR spend bits
//! only when the reported loss asks for them (`SendStream::set_protection`).
//!
//! "On wire" counts IPv4 + UDP + QUIC short header + DATAGRAM frame + AEAD
//! tag + lowband header + Opus payload + redundancy ([`WIRE_OVERHEAD_BYTES`]).
//! How much of the profile's redundancy is actually sent is set at run time
//! from the loss the receiver reports (see `crate::protect`).

use serde::{Deserialize, Serialize};

use crate::codec::SAMPLES_PER_MS;

/// Bytes one uplink datagram costs below lowband's own header on IPv4: IP 20
/// + UDP 8 + QUIC short header (1 flags + 4 gateway CID + 2 packet number) +
/// DATAGRAM frame (1 type + 2 length) + 16 AEAD tag. (Downlink: 4 fewer, the
/// clients' CIDs are empty; `lowband_quic::GATEWAY_CID_LEN`.)
pub const WIRE_OVERHEAD_BYTES: usize = 54;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Bandwidth {
    /// 4 kHz audio bandwidth.
    Narrow,
    /// 6 kHz.
    Medium,
    /// 8 kHz: wideband speech.
    Wide,
}

/// Loss protection a profile may use; how much of it is on is decided at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redundancy {
    /// Most earlier packets carried again in each datagram (0-3).
    pub max_copies: u8,
    /// Bitrate of the separate low-rate encoder that makes those copies.
    pub bitrate_bps: u32,
    /// libopus deep redundancy, in ms of history; used only when both ends
    /// run the same libopus (see [`crate::codec::libopus_version`]).
    pub dred_ms: u32,
    /// The copies' bitrate comes out of the profile's `bitrate_bps` (the
    /// primary gets less while they are sent), so the wire budget holds at
    /// any protection level; otherwise they are added on top.
    #[serde(default)]
    pub paid_from_bitrate: bool,
    /// What to send instead while losses come in bursts (None: the above).
    #[serde(default)]
    pub bursts: Option<BurstRedundancy>,
}

/// Redundancy for bursty loss: medium-rate copies spaced several packets
/// behind their originals, so a burst that takes a packet and its neighbours
/// leaves the copy. Longer packets pay the per-datagram overhead less often,
/// which buys the copy its bitrate. The receiver waits `copies × spacing`
/// packets longer while these are sent (it sees how far back copies reach).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BurstRedundancy {
    /// Audio per datagram while bursty loss is reported.
    pub frame_ms: u32,
    /// The primary's bitrate then.
    pub bitrate_bps: u32,
    /// Copies of each frame (1-3) and their encoder's bitrate.
    pub copies: u8,
    pub copy_bitrate_bps: u32,
    /// Most packets between a frame and its copy (the reported mean burst sets it).
    pub max_spacing: u8,
}

impl Redundancy {
    pub const OFF: Redundancy = Redundancy { max_copies: 0, bitrate_bps: 0, dred_ms: 0, paid_from_bitrate: false, bursts: None };
}

impl Default for Redundancy {
    fn default() -> Self {
        Redundancy::OFF
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    /// Audio per datagram: 20, 40, 60 or 120 ms. Longer packets pay the ~60-byte
    /// IP/UDP/QUIC overhead less often, which is what makes 2G possible.
    pub frame_ms: u32,
    pub bitrate_bps: u32,
    pub max_bandwidth: Bandwidth,
    pub vbr: bool,
    /// Discontinuous transmission: send (almost) nothing during silence.
    pub dtx: bool,
    /// Encoder complexity 0-10.
    pub complexity: u8,
    /// Decoder complexity 0-10: ≥ 5 deep PLC, 6 LACE, ≥ 7 NoLACE.
    pub decoder_complexity: u8,
    /// libopus in-band FEC (LBRR); libopus only uses it at ≥ ~16 kbit/s.
    pub inband_fec: bool,
    pub expected_loss_percent: u8,
    #[serde(default)]
    pub redundancy: Redundancy,
    /// Most IPv4 bits per second this profile may put on the wire while
    /// talking, redundancy included (0 = not budgeted).
    #[serde(default)]
    pub wire_budget_bps: u32,
}

/// Names of the link profiles, leanest first.
pub const LADDER: [&str; 4] = ["2g", "edge", "3g", "good"];

impl Profile {
    pub fn frame_samples(&self) -> usize {
        self.frame_ms as usize * SAMPLES_PER_MS
    }

    /// Datagrams per second while talking.
    pub fn packets_per_second(&self) -> f64 {
        1000.0 / f64::from(self.frame_ms)
    }

    /// A link profile by name (`2g`, `edge`, `3g`, `good`).
    pub fn named(name: &str) -> Option<Profile> {
        let base = Profile { name: name.into(), vbr: true, dtx: true, max_bandwidth: Bandwidth::Wide, decoder_complexity: 7, ..Profile::default() };
        let p = match name {
            "2g" => Profile {
                frame_ms: 120,
                bitrate_bps: 8_000,
                complexity: 10,
                redundancy: Redundancy { max_copies: 1, bitrate_bps: 6_000, dred_ms: 0, paid_from_bitrate: false, bursts: None },
                wire_budget_bps: 18_000,
                ..base
            },
            "edge" => Profile {
                frame_ms: 60,
                // DRED gets no bits below ~18 kbit/s at 60 ms (measured: at 16 it protected nothing).
                bitrate_bps: 18_000,
                complexity: 10,
                redundancy: Redundancy { max_copies: 1, bitrate_bps: 4_000, dred_ms: 1_000, paid_from_bitrate: true, bursts: None },
                wire_budget_bps: 27_000,
                ..base
            },
            "3g" => Profile {
                frame_ms: 60,
                bitrate_bps: 19_000,
                complexity: 10,
                redundancy: Redundancy {
                    max_copies: 2,
                    bitrate_bps: 4_000,
                    dred_ms: 1_000,
                    paid_from_bitrate: true,
                    // Under bursty loss: 120 ms packets (half the per-datagram overhead) carry
                    // a 19 kbit/s primary (with DRED when negotiated) and one 9.3 kbit/s copy
                    // of the packet `mean burst` (≤ 3) back. Measured best within 28 kbit/s
                    // (`burst-sweep`; 20 % in bursts of 3: 27.9 kbit/s, PESQ-WB 3.02).
                    bursts: Some(BurstRedundancy { frame_ms: 120, bitrate_bps: 19_000, copies: 1, copy_bitrate_bps: 9_300, max_spacing: 3 }),
                },
                wire_budget_bps: 28_000,
                ..base
            },
            "good" => Profile {
                frame_ms: 20,
                bitrate_bps: 28_000,
                complexity: 9,
                inband_fec: true,
                redundancy: Redundancy { max_copies: 0, bitrate_bps: 0, dred_ms: 500, paid_from_bitrate: false, bursts: None },
                wire_budget_bps: 60_000,
                ..base
            },
            _ => return None,
        };
        Some(p)
    }

    /// Every link profile, leanest (`2g`) first, richest (`good`) last.
    pub fn ladder() -> Vec<Profile> {
        LADDER.iter().filter_map(|n| Profile::named(n)).collect()
    }

    /// The same profile with every kind of loss protection off.
    pub fn unprotected(&self) -> Profile {
        Profile { redundancy: Redundancy::OFF, inband_fec: false, expected_loss_percent: 0, ..self.clone() }
    }
}

impl Default for Profile {
    /// 16 kbit/s wideband in 40 ms packets: ~28 kbit/s on the wire while
    /// talking, clean PESQ-WB ≈ 3.9, and still ≥ 3 after the mixer re-encodes.
    fn default() -> Self {
        Profile {
            name: "default".into(),
            frame_ms: 40,
            bitrate_bps: 16_000,
            max_bandwidth: Bandwidth::Wide,
            vbr: true,
            dtx: true,
            complexity: 9,
            decoder_complexity: 7,
            inband_fec: false,
            expected_loss_percent: 0,
            redundancy: Redundancy::OFF,
            wire_budget_bps: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ladder_runs_from_2g_to_good_with_growing_budgets() {
        let ladder = Profile::ladder();
        let names: Vec<_> = ladder.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, LADDER);
        assert!(ladder.windows(2).all(|w| w[0].wire_budget_bps < w[1].wire_budget_bps));
        assert!(Profile::named("5g").is_none());
    }

    #[test]
    fn profiles_survive_a_round_trip_through_serde() {
        for p in Profile::ladder() {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(serde_json::from_str::<Profile>(&json).unwrap(), p);
        }
    }
}
