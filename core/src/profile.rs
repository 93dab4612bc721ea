//! Codec profiles: what one audio stream looks like on the wire. Profiles are
//! plain data; a stream switches profile between frames without a reset.

use serde::{Deserialize, Serialize};

use crate::codec::SAMPLES_PER_MS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Bandwidth {
    /// 4 kHz audio bandwidth.
    Narrow,
    /// 6 kHz.
    Medium,
    /// 8 kHz: wideband speech.
    Wide,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    /// Audio per datagram: 20, 40 or 60 ms. Longer packets pay the ~60-byte
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
}

impl Profile {
    pub fn frame_samples(&self) -> usize {
        self.frame_ms as usize * SAMPLES_PER_MS
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
        }
    }
}
