//! A room's mixer. Every 20 ms: pick at most K talkers (voice activity and
//! level from the uplinks' level bytes, with hangover; the presenter always),
//! decode only them, sum them once, then encode once per downlink tier for
//! everyone who is not talking (a shared encode) and once per talker (its own
//! mix-minus). Encode cost follows talkers and tiers, not participants.
//!
//! All encoders of a room frame on the room's clock (chunk 0 = the room's
//! first tick), so a listener can move between the shared encode and its own
//! at any chunk: a new talker's encoder is a copy of the shared one it was
//! hearing, so its decoder never hears a reset.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use crate::codec::{CodecError, Encoder, CHUNK, MAX_PACKET_BYTES};
use crate::mixer::Mix;
use crate::profile::Profile;
use crate::stream::{ChunkKind, ReceiveStream};
use crate::time::Time;
use crate::wire::audio::{AudioHeader, AudioPacket, TICK_SAMPLES};
use crate::wire::{ParticipantId, Role, RosterEntry};

use super::{ConnId, GatewayStats, Output};

/// Media-time ticks (2.5 ms) per 20 ms chunk.
const TICKS_PER_CHUNK: u64 = (CHUNK / TICK_SAMPLES) as u64;
/// Encoded frames this short carry no audio: libopus emits them while in DTX.
const DTX_MAX_BYTES: usize = 2;
/// A talker keeps its slot against a newcomer this many dB louder.
const STICKY_DB: u32 = 6;

/// How a room picks and encodes: the part of the gateway config the tick needs.
#[derive(Debug, Clone)]
pub(super) struct MixConfig<'a> {
    pub(super) tiers: &'a [Profile],
    pub(super) max_talkers: usize,
    pub(super) hangover: Duration,
}

pub(super) struct Participant {
    pub(super) conn: ConnId,
    pub(super) entry: RosterEntry,
    pub(super) uplink: ReceiveStream,
    chunk: [i16; CHUNK],
    /// Their voice is in this tick's mix.
    talking: bool,
    /// Arrival of the last packet flagged as speech.
    last_voice: Option<Time>,
    /// Smoothed loudness of recent speech, 0 (silent) to 127 (full scale).
    loudness: u8,
    down: Downlink,
}

impl Participant {
    pub(super) fn new(conn: ConnId, entry: RosterEntry, mut uplink: ReceiveStream, tier: usize, dred: bool) -> Self {
        // Decoders are made when someone is selected to talk, not for every listener.
        uplink.release_decoder();
        Participant {
            conn,
            entry,
            uplink,
            chunk: [0; CHUNK],
            talking: false,
            last_voice: None,
            loudness: 0,
            down: Downlink { tier, next_tier: None, seq: 0, in_talkspurt: false, own: None, dred, loss_percent: 0 },
        }
    }

    /// An uplink packet arrived: voice activity for talker selection.
    pub(super) fn heard(&mut self, now: Time, header: &AudioHeader) {
        // Without a level byte, every packet counts as speech at a middling level.
        let (voice, dbov) = header.level.map_or((true, 40), |l| (l.voice, l.dbov));
        if voice {
            self.last_voice = Some(now);
            let loud = 127 - dbov.min(127);
            self.loudness = ((u16::from(self.loudness) * 3 + u16::from(loud)) / 4) as u8;
        }
    }

    /// The tier this participant hears, by index into the gateway's tiers.
    pub(super) fn tier(&self) -> usize {
        self.down.next_tier.unwrap_or(self.down.tier)
    }

    /// The loss this listener reports on its mix (drives DRED on what it hears).
    pub(super) fn set_downlink_loss(&mut self, percent: u8) {
        self.down.loss_percent = percent;
    }

    /// Switches tier at the next frame boundary both tiers share.
    pub(super) fn set_tier(&mut self, tier: usize) {
        self.down.next_tier = (tier != self.down.tier).then_some(tier);
    }
}

struct Downlink {
    tier: usize,
    next_tier: Option<usize>,
    /// This listener's own packet counter (receiver reports count losses by it).
    seq: u16,
    in_talkspurt: bool,
    /// Its own mix-minus encoder while it is a selected talker.
    own: Option<FrameEncoder>,
    /// The listener runs our libopus, so what it hears may carry DRED.
    dred: bool,
    /// Loss it last reported on its mix, %.
    loss_percent: u8,
}

/// Deep redundancy for one encode: on only while its listeners report loss
/// and every one of them runs our libopus (one encode cannot carry DRED for
/// some listeners and not others). Returns (DRED ms, expected loss %).
/// `listeners`: each one's (runs our libopus, loss % it reports).
fn dred_for(tier: &Profile, listeners: impl Iterator<Item = (bool, u8)>) -> (u32, u8) {
    let (mut all, mut loss, mut any) = (true, 0u8, false);
    for (dred, reported) in listeners {
        any = true;
        all &= dred;
        loss = loss.max(reported);
    }
    if any && all && loss > 0 && tier.redundancy.dred_ms > 0 {
        (tier.redundancy.dred_ms, loss)
    } else {
        (0, tier.expected_loss_percent)
    }
}

/// One encoder framing on the room clock.
struct FrameEncoder {
    encoder: Encoder,
    frame_chunks: u64,
    pending: Vec<i16>,
    /// Room chunk index of the pending frame's first chunk.
    frame_start: u64,
    /// DRED ms and expected loss % last set.
    protection: (u32, u8),
    /// The last frame was digital silence and libopus had nothing to send:
    /// more silence is skipped, not encoded (see [`FrameEncoder::push`]).
    silent_dtx: bool,
}

/// What one encoder produced this chunk.
#[derive(Debug, Clone)]
enum Frame {
    /// Mid-frame (or waiting for the first frame boundary).
    Pending,
    /// A frame completed as silence: nothing is sent.
    Dtx,
    Packet { ts: u16, payload: Vec<u8> },
}

impl FrameEncoder {
    fn new(profile: &Profile) -> Result<Self, CodecError> {
        let encoder = Encoder::new(profile)?;
        let frame_chunks = (encoder.frame_samples() / CHUNK).max(1) as u64;
        Ok(FrameEncoder { encoder, frame_chunks, pending: Vec::with_capacity(frame_chunks as usize * CHUNK), frame_start: 0, protection: (0, profile.expected_loss_percent), silent_dtx: false })
    }

    fn fork(&self) -> Result<Self, CodecError> {
        Ok(FrameEncoder { encoder: self.encoder.try_clone()?, frame_chunks: self.frame_chunks, pending: self.pending.clone(), frame_start: self.frame_start, protection: self.protection, silent_dtx: self.silent_dtx })
    }

    /// Sets DRED depth and expected loss (see [`dred_for`]) when they change.
    fn protect(&mut self, (dred_ms, loss): (u32, u8)) {
        if self.protection != (dred_ms, loss) {
            // In-range values, which libopus never refuses.
            let _ = self.encoder.set_dred_ms(dred_ms);
            let _ = self.encoder.set_expected_loss(loss);
            self.protection = (dred_ms, loss);
        }
    }

    /// Takes a new profile; only between frames, so the caller checks alignment.
    fn configure(&mut self, profile: &Profile) -> Result<(), CodecError> {
        self.encoder.configure(profile)?;
        self.frame_chunks = (self.encoder.frame_samples() / CHUNK).max(1) as u64;
        self.protection = (0, profile.expected_loss_percent);
        Ok(())
    }

    fn push(&mut self, index: u64, pcm: &[i16], scratch: &mut [u8]) -> Result<Frame, CodecError> {
        if self.pending.is_empty() {
            if index % self.frame_chunks != 0 {
                return Ok(Frame::Pending);
            }
            self.frame_start = index;
        }
        self.pending.extend_from_slice(pcm);
        if self.pending.len() < self.encoder.frame_samples() {
            return Ok(Frame::Pending);
        }
        let zeros = self.pending.iter().all(|&s| s == 0);
        if zeros && self.silent_dtx {
            // A mix nobody is talking into (and a lone talker's own mix-minus) is
            // digital silence. Once in DTX, libopus would spend most of a speech
            // encode on it only to send a comfort-noise update of silence every
            // 400 ms, which costs a 2G downlink bytes and the listener a decode
            // and concealment: skip it, as a client's send stream does.
            self.pending.clear();
            return Ok(Frame::Dtx);
        }
        let n = self.encoder.encode(&self.pending, scratch);
        self.pending.clear();
        let n = n?;
        self.silent_dtx = zeros && n <= DTX_MAX_BYTES;
        // In DTX libopus still emits an occasional comfort-noise update: send
        // those (as a client does); only the 1-2 byte frames carry nothing.
        if n <= DTX_MAX_BYTES {
            return Ok(Frame::Dtx);
        }
        Ok(Frame::Packet { ts: (self.frame_start * TICKS_PER_CHUNK) as u16, payload: scratch[..n].to_vec() })
    }
}

pub(super) struct Room {
    pub(super) participants: BTreeMap<ParticipantId, Participant>,
    pub(super) next_id: ParticipantId,
    pub(super) next_tick: Time,
    pub(super) mix: Mix,
    pub(super) floor: super::floor::Floor,
    /// Chunks mixed since the room opened: the room's media clock.
    chunk_index: u64,
    /// The shared encode of each tier, while the tier has a listener.
    shared: Vec<Option<FrameEncoder>>,
    talkers: BTreeSet<ParticipantId>,
    scratch: Box<[u8; MAX_PACKET_BYTES]>,
}

/// What a tick tells the engine.
#[derive(Debug, Default)]
pub(super) struct TickOutcome {
    /// Connections whose codec failed.
    pub(super) failed: Vec<ConnId>,
    /// The selected talkers, when they changed (for speaking indicators).
    pub(super) talkers: Option<Vec<ParticipantId>>,
}

impl Room {
    pub(super) fn new(next_tick: Time, tiers: usize) -> Self {
        Room {
            participants: BTreeMap::new(),
            next_id: 1,
            next_tick,
            mix: Mix::default(),
            floor: super::floor::Floor::default(),
            chunk_index: 0,
            shared: (0..tiers).map(|_| None).collect(),
            talkers: BTreeSet::new(),
            scratch: Box::new([0; MAX_PACKET_BYTES]),
        }
    }

    /// The talkers to mix now: the presenter, then the loudest recent voices,
    /// current talkers keeping their slot against slightly louder newcomers.
    fn select(&self, now: Time, cfg: &MixConfig<'_>) -> BTreeSet<ParticipantId> {
        let mut ranked: Vec<(u32, ParticipantId)> = Vec::new();
        for (id, p) in &self.participants {
            if p.entry.muted {
                continue;
            }
            let score = if p.entry.role == Role::Presenter {
                u32::MAX
            } else {
                match p.last_voice {
                    Some(t) if now.saturating_since(t) <= cfg.hangover => {
                        u32::from(p.loudness) + 1 + if self.talkers.contains(id) { STICKY_DB } else { 0 }
                    }
                    _ => continue,
                }
            };
            ranked.push((score, *id));
        }
        ranked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        ranked.into_iter().take(cfg.max_talkers.max(1)).map(|(_, id)| id).collect()
    }

    /// Gives new talkers their own encoder (a copy of the shared one they were
    /// hearing) and hands a leaving talker's encoder back to its tier if idle.
    fn hand_over(&mut self, selected: BTreeSet<ParticipantId>, cfg: &MixConfig<'_>) -> Result<(), (ConnId, CodecError)> {
        for id in self.talkers.difference(&selected) {
            let Some(p) = self.participants.get_mut(id) else { continue };
            p.uplink.release_decoder();
            if let Some(own) = p.down.own.take() {
                let slot = &mut self.shared[p.down.tier];
                if slot.is_none() {
                    *slot = Some(own);
                }
            }
        }
        for id in selected.difference(&self.talkers) {
            let Some(p) = self.participants.get_mut(id) else { continue };
            let own = match &self.shared[p.down.tier] {
                Some(shared) => shared.fork(),
                None => FrameEncoder::new(&cfg.tiers[p.down.tier]),
            };
            p.down.own = Some(own.map_err(|e| (p.conn, e))?);
        }
        self.talkers = selected;
        Ok(())
    }

    /// One 20 ms mixer step.
    pub(super) fn tick(&mut self, now: Time, cfg: &MixConfig<'_>, out: &mut VecDeque<Output>, stats: &mut GatewayStats) -> TickOutcome {
        stats.ticks += 1;
        let index = self.chunk_index;
        self.chunk_index += 1;
        let mut outcome = TickOutcome::default();

        let selected = self.select(now, cfg);
        if selected != self.talkers {
            outcome.talkers = Some(selected.iter().copied().collect());
            if let Err((conn, _)) = self.hand_over(selected, cfg) {
                outcome.failed.push(conn);
            }
        }

        self.mix.clear();
        for (id, p) in self.participants.iter_mut() {
            p.talking = false;
            if self.talkers.contains(id) {
                let kind = p.uplink.pull_chunk(now, &mut p.chunk);
                // The gateway enforces mute: a muted talker's audio never reaches the mix.
                p.talking = matches!(kind, ChunkKind::Audio | ChunkKind::Concealed) && !p.entry.muted;
                if p.talking {
                    self.mix.add(&p.chunk);
                }
            } else {
                p.uplink.discard_chunk(now);
            }
        }

        // Tier switches land where both tiers' frames begin.
        for p in self.participants.values_mut() {
            let Some(next) = p.down.next_tier else { continue };
            let span = lcm(frame_chunks(&cfg.tiers[p.down.tier]), frame_chunks(&cfg.tiers[next]));
            if index % span != 0 {
                continue;
            }
            let result = match &mut p.down.own {
                Some(own) => own.configure(&cfg.tiers[next]),
                // The first listener of a tier starts its shared encode from the
                // state of the one it heard, so its decoder hears no reset.
                None if self.shared[next].is_none() => match &self.shared[p.down.tier] {
                    Some(old) => old.fork().and_then(|mut e| e.configure(&cfg.tiers[next]).map(|()| e)).map(|e| self.shared[next] = Some(e)),
                    None => Ok(()),
                },
                None => Ok(()),
            };
            if result.is_err() {
                outcome.failed.push(p.conn);
            }
            p.down.tier = next;
            p.down.next_tier = None;
        }

        // One shared encode per tier that has a listener who is not talking.
        let mut listeners = vec![false; self.shared.len()];
        for p in self.participants.values() {
            if p.down.own.is_none() {
                listeners[p.down.tier] = true;
            }
        }
        let mut pcm = [0i16; CHUNK];
        self.mix.minus(None, &mut pcm);
        let mut shared_frames: Vec<Frame> = Vec::with_capacity(self.shared.len());
        for (tier, slot) in self.shared.iter_mut().enumerate() {
            if !listeners[tier] {
                *slot = None;
                shared_frames.push(Frame::Pending);
                continue;
            }
            if slot.is_none() {
                match FrameEncoder::new(&cfg.tiers[tier]) {
                    Ok(e) => *slot = Some(e),
                    Err(_) => {
                        shared_frames.push(Frame::Pending);
                        continue;
                    }
                }
            }
            let enc = slot.as_mut().expect("just filled");
            if enc.pending.is_empty() {
                let on_tier = self.participants.values().filter(|p| p.down.own.is_none() && p.down.tier == tier).map(|p| (p.down.dred, p.down.loss_percent));
                enc.protect(dred_for(&cfg.tiers[tier], on_tier));
            }
            shared_frames.push(enc.push(index, &pcm, &mut self.scratch[..]).unwrap_or(Frame::Pending));
        }

        for p in self.participants.values_mut() {
            let own_frame;
            let frame = match &mut p.down.own {
                Some(own) => {
                    if own.pending.is_empty() {
                        let mine = (p.down.dred, p.down.loss_percent);
                        own.protect(dred_for(&cfg.tiers[p.down.tier], std::iter::once(mine)));
                    }
                    self.mix.minus(p.talking.then_some(&p.chunk[..]), &mut pcm);
                    own_frame = match own.push(index, &pcm, &mut self.scratch[..]) {
                        Ok(f) => f,
                        Err(_) => {
                            outcome.failed.push(p.conn);
                            continue;
                        }
                    };
                    &own_frame
                }
                None => &shared_frames[p.down.tier],
            };
            match frame {
                Frame::Pending => {}
                Frame::Dtx => p.down.in_talkspurt = false,
                Frame::Packet { ts, payload } => {
                    let header = AudioHeader { seq: p.down.seq, ts: *ts, marker: !p.down.in_talkspurt, stream: None, level: None };
                    p.down.seq = p.down.seq.wrapping_add(1);
                    p.down.in_talkspurt = true;
                    stats.datagrams_out += 1;
                    out.push_back(Output::Datagram { conn: p.conn, data: AudioPacket::new(header, payload).to_vec() });
                }
            }
        }
        outcome
    }

    /// The gateway fell behind and skips these chunks: media time jumps with
    /// them, so timestamps keep following the wall clock (listeners conceal the gap).
    /// Partial frames are dropped and the clock lands on a boundary of every
    /// frame length (20-120 ms), so all encoders stay aligned.
    pub(super) fn skip_chunks(&mut self, chunks: u64) {
        self.chunk_index = (self.chunk_index + chunks).next_multiple_of(12);
        for e in self.shared.iter_mut().flatten() {
            e.pending.clear();
        }
        for p in self.participants.values_mut() {
            if let Some(e) = &mut p.down.own {
                e.pending.clear();
            }
        }
    }

    /// Forgets a participant who left (their talker slot frees up next tick).
    pub(super) fn remove(&mut self, id: ParticipantId) -> Option<Participant> {
        let p = self.participants.remove(&id)?;
        self.talkers.remove(&id);
        Some(p)
    }
}

fn frame_chunks(p: &Profile) -> u64 {
    (p.frame_samples() / CHUNK).max(1) as u64
}

fn lcm(a: u64, b: u64) -> u64 {
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    a / x * b
}
