//! One talker through one lossy link, in virtual time: speech → [`SendStream`]
//! (real Opus, real datagrams) → a seeded loss model → [`ReceiveStream`]
//! (jitter buffer, redundancy, concealment) → what the listener hears.

use std::time::Duration;

use lowband_core::codec::CHUNK;
use lowband_core::loss::{Bernoulli, GilbertElliott, LossModel};
use lowband_core::profile::{Profile, WIRE_OVERHEAD_BYTES};
use lowband_core::protect::Protection;
use lowband_core::stream::{ReceiveStream, SendStream};
use lowband_core::Time;
use serde::Serialize;

/// A loss pattern of the report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LossPattern {
    pub name: &'static str,
    /// Long-run fraction of datagrams lost.
    pub loss: f64,
    /// Mean burst length in datagrams (1 = independent losses).
    pub mean_burst: f64,
}

impl LossPattern {
    pub const CLEAN: LossPattern = LossPattern { name: "0%", loss: 0.0, mean_burst: 1.0 };

    /// The patterns: 0 %; 5 % and 10 % random; 20 % in bursts of 3; 30 % in bursts of 6.
    pub fn all() -> [LossPattern; 5] {
        [
            LossPattern::CLEAN,
            LossPattern { name: "5% random", loss: 0.05, mean_burst: 1.0 },
            LossPattern { name: "10% random", loss: 0.10, mean_burst: 1.0 },
            LossPattern { name: "20% bursts of 3", loss: 0.20, mean_burst: 3.0 },
            LossPattern { name: "30% bursts of 6", loss: 0.30, mean_burst: 6.0 },
        ]
    }

    pub fn model(&self, seed: u64) -> Box<dyn LossModel> {
        if self.mean_burst <= 1.0 {
            Box::new(Bernoulli::new(self.loss, seed))
        } else {
            Box::new(GilbertElliott::with_mean(self.loss, self.mean_burst, seed))
        }
    }

    /// The burst length a receiver would report for this pattern (random loss
    /// still loses two in a row now and then).
    pub fn reported_burst(&self) -> f64 {
        if self.mean_burst <= 1.0 {
            1.0 / (1.0 - self.loss).max(0.01)
        } else {
            self.mean_burst
        }
    }
}

/// What the link is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Mode {
    /// The profile as designed, protection sized from the reported loss.
    Protected,
    /// Same profile and decoder, no redundancy.
    Unprotected,
    /// No redundancy and plain Opus concealment (decoder complexity 0).
    PlainPlc,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Protected, Mode::Unprotected, Mode::PlainPlc];
}

#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub heard: Vec<i16>,
    /// Where the speech starts in `heard` if nothing were delayed (the leading pad).
    pub said_at: usize,
    pub packets: u64,
    pub lost: u64,
    /// IPv4 bytes of every datagram sent (lost ones included).
    pub wire_bytes: u64,
    /// Media time the sent packets cover: the talking time.
    pub talk_ms: u64,
    pub recovered: u64,
    pub concealed_samples: u64,
    /// Samples rebuilt from deep redundancy (DRED) and in-band FEC (LBRR).
    pub dred_samples: u64,
    pub fec_samples: u64,
    pub frame_samples: u64,
}

impl Outcome {
    /// Lost datagrams rebuilt from any redundancy (RED copies, LBRR, DRED), capped at those lost.
    pub fn rebuilt(&self) -> u64 {
        let codec = (self.dred_samples + self.fec_samples) / self.frame_samples.max(1);
        (self.recovered + codec).min(self.lost)
    }
}

impl Outcome {
    /// IPv4 bits per second on the wire while talking.
    pub fn wire_kbps(&self) -> f64 {
        if self.talk_ms == 0 {
            0.0
        } else {
            self.wire_bytes as f64 * 8.0 / self.talk_ms as f64
        }
    }
}

/// Jitter-buffer delay that lets every copy a profile may send still arrive
/// in time: a burst of n packets is rebuilt from the packet after it, so the
/// receiver must wait n + 1 packets (DRED: up to 3, like RED's maximum;
/// burst copies: copies × spacing of their longer packets, one more with DRED).
pub fn playout_delay(profile: &Profile) -> Duration {
    let r = &profile.redundancy;
    let reach = if r.dred_ms > 0 { r.max_copies.max(3) } else { r.max_copies };
    let usual = u64::from(profile.frame_ms) * (u64::from(reach) + 1);
    // With DRED the live receiver waits one packet more (`ReceiveStream::insert`).
    let dred = u64::from(r.dred_ms > 0);
    let bursts = r.bursts.map_or(0, |b| u64::from(b.frame_ms) * (u64::from(b.copies) * u64::from(b.max_spacing) + 1 + dred));
    Duration::from_millis(usual.max(bursts) + 20)
}

const LEAD_MS: usize = 400;
const TAIL_MS: usize = 1200;

/// Runs `speech` through `profile` under `pattern` (seeded) in `mode`.
pub fn run(profile: &Profile, mode: Mode, pattern: &LossPattern, seed: u64, speech: &[i16]) -> Result<Outcome, String> {
    run_with(profile, mode, pattern, &mut *pattern.model(seed), speech)
}

/// Like [`run`], with any loss model (e.g. a replayed sequence); `pattern`
/// only says what loss the receiver reports, which sizes the protection.
pub fn run_with(profile: &Profile, mode: Mode, pattern: &LossPattern, loss: &mut dyn LossModel, speech: &[i16]) -> Result<Outcome, String> {
    let delay = playout_delay(profile);
    let (tx_profile, decoder_complexity) = match mode {
        Mode::Protected => (profile.clone(), profile.decoder_complexity),
        Mode::Unprotected => (profile.unprotected(), profile.decoder_complexity),
        Mode::PlainPlc => (profile.unprotected(), 0),
    };
    let mut tx = SendStream::new(tx_profile, None, true).map_err(|e| e.to_string())?;
    let mut rx = ReceiveStream::new(decoder_complexity, delay).map_err(|e| e.to_string())?;
    if mode == Mode::Protected {
        tx.set_protection(Protection::for_loss(pattern.loss, pattern.reported_burst()));
        // Both ends of this simulation run the same libopus.
        if profile.redundancy.dred_ms > 0 && lowband_core::protect::dred_compatible(lowband_core::codec::libopus_version()) {
            tx.set_dred(true);
            rx.enable_dred().map_err(|e| e.to_string())?;
        }
    }
    let lead = LEAD_MS * 16;
    let mut input = vec![0i16; lead];
    input.extend_from_slice(speech);
    input.resize((input.len() + TAIL_MS * 16).next_multiple_of(CHUNK), 0);
    let mut out = Outcome { said_at: lead, ..Outcome::default() };
    let mut chunk = vec![0i16; CHUNK];
    for (i, pcm) in input.chunks(CHUNK).enumerate() {
        let now = Time::from_micros(i as u64 * 20_000);
        if let Some(d) = tx.push_chunk(pcm).map_err(|e| e.to_string())? {
            out.packets += 1;
            out.wire_bytes += (d.len() + WIRE_OVERHEAD_BYTES) as u64;
            let samples = lowband_core::codec::packet_samples(primary_of(&d)?).map_err(|e| e.to_string())?;
            out.talk_ms += samples as u64 / 16;
            if loss.lose_next() {
                out.lost += 1;
            } else {
                rx.insert_datagram(now, &d);
            }
        }
        rx.pull_chunk(now, &mut chunk);
        out.heard.extend_from_slice(&chunk);
    }
    let s = rx.stats();
    out.recovered = s.jitter.recovered;
    out.concealed_samples = s.jitter.concealed_samples;
    out.dred_samples = s.dred_recovered_samples;
    out.fec_samples = s.fec_recovered_samples;
    // Burst protection sends longer packets than the profile's own: count DRED in the packets really sent.
    out.frame_samples = if out.packets > 0 { out.talk_ms * 16 / out.packets } else { profile.frame_samples() as u64 };
    Ok(out)
}

fn primary_of(d: &[u8]) -> Result<&[u8], String> {
    lowband_core::wire::audio::AudioPacket::decode(d).map(|p| p.primary).map_err(|e| e.to_string())
}
