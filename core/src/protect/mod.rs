//! Loss protection at rates where libopus's own FEC stays off: RED-style
//! redundancy (RFC 2198, Signal's low-bitrate variant). A second, low-rate
//! encoder codes every frame again; each datagram carries those copies of the
//! previous one to three frames, so a burst of lost datagrams is rebuilt from
//! the first one that arrives. How many copies to send ([`Protection`]) is a
//! plain input, chosen from the loss the receiver reports.

use std::collections::VecDeque;

use crate::codec::{CodecError, Encoder, MAX_PACKET_BYTES};
use crate::profile::{Bandwidth, Profile, Redundancy};
use crate::wire::audio::{AudioPacket, Redundant, MAX_REDUNDANT};

/// How much protection a sender applies now (capped by its profile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Protection {
    /// Earlier frames repeated in each datagram, 0-3.
    pub copies: u8,
    /// Loss the encoder is told to expect (drives DRED and LBRR where on).
    pub loss_percent: u8,
}

impl Protection {
    pub const OFF: Protection = Protection { copies: 0, loss_percent: 0 };

    /// Protection for a reported loss rate (0-1) and mean burst length (in
    /// packets): none on a clean link, one copy for scattered loss, and one
    /// copy per packet of a typical burst (up to 3) when losses come in bursts.
    pub fn for_loss(loss: f64, mean_burst: f64) -> Protection {
        let loss_percent = (loss * 100.0).round().clamp(0.0, 100.0) as u8;
        let copies = if loss < 0.005 {
            0
        } else if loss < 0.02 || mean_burst < 1.5 {
            1
        } else {
            (mean_burst.ceil() as u8).clamp(2, MAX_REDUNDANT as u8)
        };
        Protection { copies, loss_percent }
    }
}

/// Whether a peer reporting `peer_libopus` (its `opus_get_version_string`)
/// can read our DRED: the extension is still a draft, so only an identical
/// libopus build is trusted.
pub fn dred_compatible(peer_libopus: &str) -> bool {
    peer_libopus == crate::codec::libopus_version()
}

/// The secondary encoder's settings for a profile's redundancy.
fn secondary_profile(p: &Profile, r: &Redundancy) -> Profile {
    Profile {
        name: format!("{}-red", p.name),
        bitrate_bps: r.bitrate_bps,
        max_bandwidth: Bandwidth::Wide,
        vbr: true,
        dtx: false,
        complexity: 10,
        inband_fec: false,
        expected_loss_percent: 0,
        redundancy: Redundancy::OFF,
        ..p.clone()
    }
}

/// The sending half: keeps low-rate copies of recent frames and attaches them.
pub struct Protector {
    encoder: Option<Encoder>,
    redundancy: Redundancy,
    level: Protection,
    /// DRED is on: it reaches further for fewer bits, so RED copies stay off.
    dred_active: bool,
    /// (media timestamp in ticks, low-rate packet), oldest first.
    history: VecDeque<(u16, Vec<u8>)>,
    scratch: Box<[u8; MAX_PACKET_BYTES]>,
}

impl Protector {
    pub fn new(profile: &Profile) -> Self {
        Protector {
            encoder: None,
            redundancy: profile.redundancy,
            level: Protection::OFF,
            dred_active: false,
            history: VecDeque::with_capacity(MAX_REDUNDANT + 1),
            scratch: Box::new([0; MAX_PACKET_BYTES]),
        }
    }

    /// Copies actually sent: the wanted level capped by the profile.
    pub fn copies(&self) -> usize {
        if self.dred_active {
            return 0;
        }
        usize::from(self.level.copies.min(self.redundancy.max_copies)).min(MAX_REDUNDANT)
    }

    pub fn set_dred_active(&mut self, on: bool) {
        self.dred_active = on;
        if on {
            self.history.clear();
        }
    }

    pub fn level(&self) -> Protection {
        self.level
    }

    pub fn set_level(&mut self, level: Protection) {
        self.level = level;
        if self.copies() == 0 {
            self.history.clear();
        }
    }

    /// Follows a profile switch (at a frame boundary).
    pub fn configure(&mut self, profile: &Profile) -> Result<(), CodecError> {
        self.redundancy = profile.redundancy;
        match &mut self.encoder {
            Some(_) if profile.redundancy.bitrate_bps == 0 => self.encoder = None,
            Some(enc) => enc.configure(&secondary_profile(profile, &profile.redundancy))?,
            None => {}
        }
        if self.copies() == 0 {
            self.history.clear();
        }
        Ok(())
    }

    /// Codes `pcm` (one frame starting at `ts`) at the low rate for later
    /// datagrams, at the primary's `bandwidth`: a copy at another bandwidth
    /// makes the receiver's decoder switch and lose its state twice, which
    /// costs more than the copy restores.
    pub fn push_frame(&mut self, profile: &Profile, ts: u16, pcm: &[i16], bandwidth: Option<Bandwidth>) -> Result<(), CodecError> {
        let keep = self.copies();
        if keep == 0 || self.redundancy.bitrate_bps == 0 {
            self.history.clear();
            return Ok(());
        }
        let enc = match &mut self.encoder {
            Some(e) => e,
            None => self.encoder.insert(Encoder::new(&secondary_profile(profile, &self.redundancy))?),
        };
        enc.set_bandwidth(bandwidth)?;
        let n = enc.encode(pcm, &mut self.scratch[..])?;
        while self.history.len() >= keep {
            self.history.pop_front();
        }
        self.history.push_back((ts, self.scratch[..n].to_vec()));
        Ok(())
    }

    /// A silent gap (DTX, mute): copies from before it are useless afterwards.
    pub fn gap(&mut self) {
        self.history.clear();
    }

    /// Attaches the copies of frames before `ts` to `packet`, oldest first.
    pub fn attach<'a>(&'a self, ts: u16, packet: &mut AudioPacket<'a>) {
        let keep = self.copies();
        let skip = self.history.len().saturating_sub(keep);
        for (frame_ts, payload) in self.history.iter().skip(skip) {
            let back = ts.wrapping_sub(*frame_ts);
            // Copies of tiny (DTX) frames protect nothing; far ones do not fit the field.
            if back == 0 || back > u16::from(u8::MAX) || payload.len() <= 2 {
                continue;
            }
            packet.push_redundant(Redundant { ticks_back: back as u8, payload });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_link_gets_no_protection_and_bursts_get_more_copies() {
        assert_eq!(Protection::for_loss(0.0, 1.0).copies, 0);
        assert_eq!(Protection::for_loss(0.05, 1.1).copies, 1);
        assert_eq!(Protection::for_loss(0.2, 3.0).copies, 3);
        assert_eq!(Protection::for_loss(0.3, 6.0).copies, 3);
        assert_eq!(Protection::for_loss(0.1, 2.0).copies, 2);
    }
}
