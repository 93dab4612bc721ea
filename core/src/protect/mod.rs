//! Loss protection at rates where libopus's own FEC stays off: RED-style
//! redundancy (RFC 2198, Signal's low-bitrate variant). A second, low-rate
//! encoder codes every frame again; each datagram carries those copies of the
//! previous one to three frames, so a burst of lost datagrams is rebuilt from
//! the first one that arrives. How many copies to send ([`Protection`]) is a
//! plain input, chosen from the loss the receiver reports.

use std::collections::VecDeque;

use crate::codec::{CodecError, Encoder, MAX_PACKET_BYTES};
use crate::profile::{Bandwidth, BurstRedundancy, Profile, Redundancy};
use crate::wire::audio::{AudioPacket, Redundant, MAX_REDUNDANT};
use crate::wire::ReceiverReport;

/// How much protection a sender applies now (capped by its profile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Protection {
    /// Earlier frames repeated in each datagram, 0-3.
    pub copies: u8,
    /// Loss the encoder is told to expect (drives DRED and LBRR where on).
    pub loss_percent: u8,
    /// Packets between copies of one frame (≥ 1): copy k of frame n rides in
    /// packet n + k × spacing, so a burst shorter than `spacing` cannot take
    /// a frame and its copy together.
    pub spacing: u8,
}

impl Protection {
    pub const OFF: Protection = Protection { copies: 0, loss_percent: 0, spacing: 1 };

    /// Protection for a reported loss rate (0-1) and mean burst length (in
    /// packets): none on a clean link, one copy for scattered loss, and one
    /// copy per packet of a typical burst (up to 3) when losses come in bursts,
    /// spaced by the mean burst length so one burst rarely takes them all
    /// (the profile caps copies and spacing).
    pub fn for_loss(loss: f64, mean_burst: f64) -> Protection {
        let loss_percent = (loss * 100.0).round().clamp(0.0, 100.0) as u8;
        let copies = if loss < 0.005 {
            0
        } else if loss < 0.02 || mean_burst < 1.5 {
            1
        } else {
            (mean_burst.ceil() as u8).clamp(2, MAX_REDUNDANT as u8)
        };
        let spacing = if copies == 0 || mean_burst < 1.5 { 1 } else { mean_burst.round().clamp(1.0, 8.0) as u8 };
        Protection { copies, loss_percent, spacing }
    }
}

/// Protection from a stream of receiver reports: loss goes up at once and
/// comes down slowly (×0.8 per report), so a clean second inside a lossy spell
/// does not switch burst protection (and its packet size) off and on. The mean
/// burst is lost packets over loss runs, both summed with the same decay, and
/// judged once two runs were seen (and kept until the next judgement):
/// scattered loss (mean run ≈ 1.1 at
/// 10 %) never looks bursty because one run of two happened.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProtectionSizer {
    loss: f64,
    lost: f64,
    runs: f64,
    burst: f64,
}

impl ProtectionSizer {
    const KEEP: f64 = 0.8;

    /// One report on the stream we send.
    pub fn on_report(&mut self, r: &ReceiverReport) -> Protection {
        if r.expected > 0 {
            let loss = f64::from(r.lost) / f64::from(r.expected);
            self.loss = loss.max(Self::KEEP * self.loss + (1.0 - Self::KEEP) * loss);
            // A report without run counts (all losses in one run) still counts as one.
            let runs = if r.lost == 0 { 0 } else { r.loss_runs.clamp(1, r.lost) };
            self.lost = Self::KEEP * self.lost + f64::from(r.lost);
            self.runs = Self::KEEP * self.runs + f64::from(runs);
            if self.runs >= 1.5 {
                self.burst = self.lost / self.runs;
            }
        }
        Protection::for_loss(self.loss, self.mean_burst())
    }

    /// Mean length of a loss run, in packets (1 when nothing was lost lately).
    pub fn mean_burst(&self) -> f64 {
        self.burst.max(1.0)
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

    /// The profile's burst redundancy, while the reported loss comes in bursts.
    pub fn burst_mode(&self) -> Option<&BurstRedundancy> {
        self.redundancy.bursts.as_ref().filter(|_| self.level.copies > 0 && self.level.spacing > 1)
    }

    /// Packets between a frame and its copy: the wanted spacing capped by the profile.
    pub fn spacing(&self) -> usize {
        self.burst_mode().map_or(1, |b| usize::from(self.level.spacing.clamp(1, b.max_spacing.max(1))))
    }

    /// Copies actually sent: the wanted level capped by the profile.
    pub fn copies(&self) -> usize {
        if let Some(b) = self.burst_mode() {
            return usize::from(self.level.copies.min(b.copies)).min(MAX_REDUNDANT);
        }
        if self.dred_active {
            return 0;
        }
        usize::from(self.level.copies.min(self.redundancy.max_copies)).min(MAX_REDUNDANT)
    }

    fn copy_bitrate(&self) -> u32 {
        self.burst_mode().map_or(self.redundancy.bitrate_bps, |b| b.copy_bitrate_bps)
    }

    /// Copies of the last talkspurt's frames that later packets still have to carry.
    pub fn tail_pending(&self) -> bool {
        self.burst_mode().is_some() && self.history.iter().any(|(_, p)| p.len() > 2)
    }

    /// A frame with nothing worth copying (DTX) takes its place in the
    /// history, so the talkspurt's last frames still get their spaced copies.
    pub fn push_gap(&mut self, ts: u16) {
        let window = self.copies() * self.spacing();
        while self.history.len() >= window.max(1) {
            self.history.pop_front();
        }
        self.history.push_back((ts, Vec::new()));
        if !self.tail_pending() {
            self.history.clear();
        }
    }

    pub fn set_dred_active(&mut self, on: bool) {
        self.dred_active = on;
        // Burst copies are sent alongside DRED: it reaches what a burst over the copy took.
        if on && self.burst_mode().is_none() {
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
        let any = profile.redundancy.bitrate_bps > 0 || profile.redundancy.bursts.is_some();
        match &mut self.encoder {
            Some(_) if !any => self.encoder = None,
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
    pub fn push_frame(&mut self, profile: &Profile, ts: u16, pcm: &[i16], primary: &[u8]) -> Result<(), CodecError> {
        let bandwidth = crate::codec::packet_bandwidth(primary);
        let (keep, bitrate) = (self.copies(), self.copy_bitrate());
        if keep == 0 || bitrate == 0 {
            self.history.clear();
            return Ok(());
        }
        let window = keep * self.spacing();
        let enc = match &mut self.encoder {
            Some(e) => e,
            None => self.encoder.insert(Encoder::new(&secondary_profile(profile, &self.redundancy))?),
        };
        enc.set_bandwidth(bandwidth)?;
        enc.set_bitrate(bitrate)?;
        enc.set_frame_samples(pcm.len());
        let n = enc.encode(pcm, &mut self.scratch[..])?;
        while self.history.len() >= window {
            self.history.pop_front();
        }
        self.history.push_back((ts, self.scratch[..n].to_vec()));
        Ok(())
    }

    /// A silent gap (DTX, mute): copies from before it are useless afterwards.
    pub fn gap(&mut self) {
        self.history.clear();
    }

    /// Attaches the copies of frames `spacing`, 2 × `spacing`, … packets
    /// before `ts` to `packet`, oldest first.
    pub fn attach<'a>(&'a self, ts: u16, packet: &mut AudioPacket<'a>) {
        let (keep, spacing, len) = (self.copies(), self.spacing(), self.history.len());
        for k in (1..=keep).rev() {
            let Some((frame_ts, payload)) = len.checked_sub(k * spacing).and_then(|i| self.history.get(i)) else { continue };
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

    fn report(expected: u16, lost: u16, loss_runs: u16) -> ReceiverReport {
        ReceiverReport { expected, lost, loss_runs, max_burst: lost, ..Default::default() }
    }

    #[test]
    fn one_clean_report_inside_a_bursty_spell_keeps_the_spaced_copies() {
        let mut sizer = ProtectionSizer::default();
        assert_eq!(sizer.on_report(&report(8, 0, 0)), Protection::OFF);
        sizer.on_report(&report(8, 3, 1));
        let bursty = sizer.on_report(&report(8, 3, 1));
        assert_eq!((bursty.copies, bursty.spacing), (3, 3));
        let after_clean = sizer.on_report(&report(8, 0, 0));
        assert_eq!(after_clean.spacing, 3, "{after_clean:?}");
        // A long clean spell turns protection off again.
        let p = (0..40).fold(after_clean, |_, _| sizer.on_report(&report(8, 0, 0)));
        assert_eq!(p.copies, 0);
    }

    #[test]
    fn scattered_loss_with_one_run_of_two_does_not_switch_to_burst_protection() {
        let mut sizer = ProtectionSizer::default();
        // 10 % random loss at 60 ms packets: ~2 losses a second, now and then two in a row.
        for second in 0..30 {
            let (lost, runs) = if second % 5 == 0 { (2, 1) } else { (2, 2) };
            // (the very first second is one run of two)
            let p = sizer.on_report(&report(17, lost, runs));
            assert_eq!((p.copies, p.spacing), (1, 1), "second {second}: {p:?}");
        }
        assert!(sizer.mean_burst() < 1.5, "{}", sizer.mean_burst());
    }

    #[test]
    fn the_mean_burst_is_lost_packets_over_loss_runs() {
        let mut sizer = ProtectionSizer::default();
        for _ in 0..10 {
            sizer.on_report(&report(17, 6, 2));
        }
        assert!((sizer.mean_burst() - 3.0).abs() < 1e-9, "{}", sizer.mean_burst());
        let p = sizer.on_report(&report(17, 6, 2));
        assert_eq!(p.spacing, 3);
    }

    #[test]
    fn copies_are_spaced_by_the_mean_burst_only_when_losses_come_in_bursts() {
        assert_eq!(Protection::for_loss(0.1, 1.1).spacing, 1);
        assert_eq!(Protection::for_loss(0.2, 3.0).spacing, 3);
        assert_eq!(Protection::for_loss(0.0, 3.0).spacing, 1);
    }
}
