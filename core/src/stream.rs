//! One direction of one audio stream: [`SendStream`] turns 20 ms PCM chunks
//! into datagrams under a [`Profile`]; [`ReceiveStream`] turns datagrams back
//! into PCM through the jitter buffer and decoder, pulled in 20 ms chunks or
//! smaller steps.

use std::time::Duration;

use crate::codec::{packet_has_lbrr, CodecError, Decoder, Dred, Encoder, CHUNK, MAX_FRAME_SAMPLES, MAX_PACKET_BYTES, SAMPLES_PER_MS};
use crate::jitter::{JitterBuffer, JitterConfig, JitterStats, Pop, StretchWanted};
use crate::profile::Profile;
use crate::stretch::{self, Stretch};
use crate::protect::{Protection, Protector};
use crate::time::Time;
use crate::wire::audio::{AudioHeader, AudioLevel, AudioPacket, TICK_SAMPLES};

/// Pitch periods one decoded packet may lose when far above the target.
const MAX_STRETCHES_PER_PACKET: usize = 4;

/// Encoded packets this short carry no audio: libopus emits them while in DTX.
const DTX_MAX_BYTES: usize = 2;
/// Decoded audio no louder than this (−72 dBov) is silence: what a mix of nobody decodes to.
const QUIET: u16 = 8;

pub struct SendStream {
    encoder: Encoder,
    profile: Profile,
    next_profile: Option<Profile>,
    pending: Vec<i16>,
    seq: u16,
    /// Media time of the next frame, in ticks (wraps with the wire field).
    ts: u16,
    in_talkspurt: bool,
    /// The last frame was digital silence and the encoder had nothing to send.
    silent_dtx: bool,
    stream: Option<u32>,
    with_level: bool,
    scratch: Box<[u8; MAX_PACKET_BYTES]>,
    stats: SendStats,
    protector: Protector,
    /// Both ends run the same libopus, so DRED may be sent.
    dred: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendStats {
    pub frames: u64,
    pub packets: u64,
    pub dtx_frames: u64,
    /// Datagram bytes produced (lowband header + Opus), not counting QUIC/UDP/IP.
    pub bytes: u64,
}

impl SendStream {
    /// `stream` tags every packet with a stream id; `with_level` adds the RFC 6464 level byte.
    pub fn new(profile: Profile, stream: Option<u32>, with_level: bool) -> Result<Self, CodecError> {
        Ok(SendStream {
            encoder: Encoder::new(&profile)?,
            protector: Protector::new(&profile),
            dred: false,
            pending: Vec::with_capacity(profile.frame_samples()),
            profile,
            next_profile: None,
            seq: 0,
            ts: 0,
            in_talkspurt: false,
            silent_dtx: false,
            stream,
            with_level,
            scratch: Box::new([0; MAX_PACKET_BYTES]),
            stats: SendStats::default(),
        })
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    pub fn stats(&self) -> SendStats {
        self.stats
    }

    /// Switches profile at the next frame boundary, keeping encoder state (no click, no gap).
    pub fn set_profile(&mut self, profile: Profile) {
        self.next_profile = Some(profile);
    }

    /// Sets how much loss protection to send (capped by the profile's
    /// redundancy), e.g. from `Protection::for_loss` on the receiver's report.
    pub fn set_protection(&mut self, level: Protection) {
        self.protector.set_level(level);
        self.apply_codec_protection();
    }

    /// Allows deep redundancy (DRED), for a peer that runs the same libopus
    /// (`protect::dred_compatible`); used when the profile asks for it.
    pub fn set_dred(&mut self, negotiated: bool) {
        self.dred = negotiated;
        self.apply_codec_protection();
    }

    /// libopus's own protection (LBRR, DRED) follows the reported loss.
    /// The controls take clamped, in-range values, which libopus never refuses.
    fn apply_codec_protection(&mut self) {
        let p = &self.profile;
        // Under bursts, spaced medium-rate copies restore most losses; DRED (when
        // negotiated) still reaches what a burst took together with the copy.
        let burst = self.protector.burst_mode().copied();
        let dred_ms = if self.dred { p.redundancy.dred_ms } else { 0 };
        self.protector.set_dred_active(dred_ms > 0);
        let loss = if dred_ms > 0 || p.inband_fec { self.protector.level().loss_percent.max(p.expected_loss_percent) } else { p.expected_loss_percent };
        // Each copy costs more than its nominal rate: its own header, and low-rate VBR undershoots less.
        let red_bps = self.protector.copies() as u32 * p.redundancy.bitrate_bps * 3 / 2;
        let primary = if let Some(b) = burst {
            b.bitrate_bps
        } else if p.redundancy.paid_from_bitrate {
            p.bitrate_bps.saturating_sub(red_bps).max(6_000)
        } else {
            p.bitrate_bps
        };
        let _ = self.encoder.set_bitrate(primary);
        let _ = self.encoder.set_dred_ms(dred_ms);
        let _ = self.encoder.set_expected_loss(loss);
    }

    pub fn protection(&self) -> Protection {
        self.protector.level()
    }

    /// Media time passes without audio (e.g. muted): keeps timestamps honest.
    pub fn skip_chunk(&mut self) {
        self.pending.clear();
        self.ts = self.ts.wrapping_add((CHUNK / TICK_SAMPLES) as u16);
        self.in_talkspurt = false;
        self.protector.gap();
    }

    /// Adds one 20 ms chunk; returns a datagram when a packet is complete and worth sending.
    pub fn push_chunk(&mut self, pcm: &[i16]) -> Result<Option<Vec<u8>>, CodecError> {
        debug_assert_eq!(pcm.len(), CHUNK);
        if self.pending.is_empty() {
            if let Some(p) = self.next_profile.take() {
                self.encoder.configure(&p)?;
                self.protector.configure(&p)?;
                self.profile = p;
                self.apply_codec_protection();
            }
            // Burst protection sends longer packets; the switch happens here, between frames.
            let frame = self.protector.burst_mode().map_or(self.profile.frame_samples(), |b| b.frame_ms as usize * SAMPLES_PER_MS);
            self.encoder.set_frame_samples(frame);
        }
        self.pending.extend_from_slice(pcm);
        if self.pending.len() < self.encoder.frame_samples() {
            return Ok(None);
        }
        let frame_ts = self.ts;
        self.ts = self.ts.wrapping_add((self.pending.len() / TICK_SAMPLES) as u16);
        let zeros = self.pending.iter().all(|&s| s == 0);
        if zeros && self.silent_dtx && !self.protector.tail_pending() {
            // libopus spends two thirds of a speech encode even on zeros, and
            // once in DTX on digital silence (a WAV's gap, a muted device) it
            // only refreshes comfort noise of silence every 400 ms: skip it.
            self.pending.clear();
            self.stats.frames += 1;
            self.stats.dtx_frames += 1;
            return Ok(None);
        }
        let n = self.encoder.encode(&self.pending, &mut self.scratch[..])?;
        self.silent_dtx = zeros && n <= DTX_MAX_BYTES;
        let voice = n > DTX_MAX_BYTES && !self.encoder.in_dtx();
        let level = self.with_level.then(|| AudioLevel { voice, dbov: dbov(&self.pending) });
        self.stats.frames += 1;
        if n <= DTX_MAX_BYTES {
            self.pending.clear();
            self.stats.dtx_frames += 1;
            if self.in_talkspurt && self.protector.tail_pending() {
                // The talkspurt's last frames have spaced copies still to send: this
                // (silent) frame carries them.
                return Ok(Some(self.send(frame_ts, n, level)));
            }
            self.in_talkspurt = false;
            self.protector.gap();
            return Ok(None);
        }
        let datagram = self.send(frame_ts, n, level);
        self.protector.push_frame(&self.profile, frame_ts, &self.pending, &self.scratch[..n])?;
        self.pending.clear();
        Ok(Some(datagram))
    }

    /// Packs the `n` encoded bytes in `scratch` with the copies due now.
    fn send(&mut self, frame_ts: u16, n: usize, level: Option<AudioLevel>) -> Vec<u8> {
        let header = AudioHeader { seq: self.seq, ts: frame_ts, marker: !self.in_talkspurt, stream: self.stream, level };
        self.seq = self.seq.wrapping_add(1);
        self.in_talkspurt = true;
        let mut packet = AudioPacket::new(header, &self.scratch[..n]);
        self.protector.attach(frame_ts, &mut packet);
        let datagram = packet.to_vec();
        if n <= DTX_MAX_BYTES {
            self.protector.push_gap(frame_ts);
        }
        self.stats.packets += 1;
        self.stats.bytes += datagram.len() as u64;
        datagram
    }
}

/// Fills a hole that ends right where the next buffered packet starts from
/// that packet's in-band FEC (LBRR), which covers exactly the frame before it.
fn lbrr_fill(jitter: &JitterBuffer, decoder: &mut Decoder, out: &mut [i16]) -> Option<usize> {
    let (ahead, _, payload) = jitter.peek_following().next()?;
    if ahead != 0 || !packet_has_lbrr(payload) {
        return None;
    }
    decoder.decode_fec(payload, out).ok().filter(|&n| n > 0)
}

/// Fills a hole that just left the jitter buffer from the DRED of the next
/// buffered packet, if it reaches back that far.
fn dred_fill(jitter: &JitterBuffer, dred: &mut Option<(Dred, Option<i64>)>, decoder: &mut Decoder, out: &mut [i16]) -> Option<usize> {
    let (dred, parsed) = dred.as_mut()?;
    // The nearest packets may be RED copies, which carry no DRED: look a little further.
    for (ahead, ts, payload) in jitter.peek_following().take(4) {
        if *parsed != Some(ts) {
            dred.parse(payload);
            *parsed = Some(ts);
        }
        // The hole began out.len() samples before the playout point.
        let offset = ahead + out.len();
        if dred.available() >= offset {
            return decoder.decode_dred(dred, offset, out).ok().filter(|&n| n > 0);
        }
    }
    None
}

/// Level of a frame in -dBov (0 loudest, 127 silent), as RFC 6464 carries it.
pub fn dbov(pcm: &[i16]) -> u8 {
    if pcm.is_empty() {
        return 127;
    }
    let energy: f64 = pcm.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / pcm.len() as f64;
    let rms = energy.sqrt() / 32768.0;
    if rms <= 0.0 {
        return 127;
    }
    (-20.0 * rms.log10()).clamp(0.0, 127.0) as u8
}

/// What a pulled chunk holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkKind {
    Silence,
    /// Comfort noise between talkspurts (DTX): played, but never mixed.
    ComfortNoise,
    Audio,
    /// At least part of it was concealed.
    Concealed,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiveStats {
    pub jitter: JitterStats,
    pub decode_errors: u64,
    pub bad_packets: u64,
    /// Samples rebuilt from DRED instead of concealed.
    pub dred_recovered_samples: u64,
    /// Samples rebuilt from in-band FEC (LBRR) instead of concealed.
    pub fec_recovered_samples: u64,
    /// Samples of DTX pause (after comfort noise or silence) played as silence, not concealed.
    pub pause_samples: u64,
}

pub struct ReceiveStream {
    jitter: JitterBuffer,
    /// Made on first use and droppable: a decoder with neural PLC/NoLACE holds
    /// ~190 KiB, and a gateway needs one only for whoever is being mixed.
    decoder: Option<Decoder>,
    decoder_complexity: u8,
    /// Decoded audio not yet pulled; room for one repeated pitch period.
    pcm: Box<[i16; MAX_FRAME_SAMPLES + CHUNK + stretch::MAX_PERIOD]>,
    pcm_len: usize,
    decode_errors: u64,
    bad_packets: u64,
    /// Whether the last packet decoded carried speech.
    voice: bool,
    /// The last packet decoded to (near) digital silence: a mix nobody was talking into.
    quiet: bool,
    /// Whether comfort noise is heard (a listener) or dropped (the mixer leaves it out).
    comfort_noise_heard: bool,
    /// Deep-redundancy parser and the media time of the packet it last parsed.
    dred: Option<(Dred, Option<i64>)>,
    dred_recovered_samples: u64,
    fec_recovered_samples: u64,
    pause_samples: u64,
}

impl ReceiveStream {
    /// A stream with a fixed-delay buffer and no stretching.
    pub fn new(decoder_complexity: u8, target_delay: Duration) -> Result<Self, CodecError> {
        Self::with_config(decoder_complexity, JitterConfig::fixed(target_delay))
    }

    pub fn with_config(decoder_complexity: u8, jitter: JitterConfig) -> Result<Self, CodecError> {
        Ok(ReceiveStream {
            jitter: JitterBuffer::new(jitter),
            decoder: Some(Decoder::new(decoder_complexity)?),
            decoder_complexity,
            pcm: Box::new([0; MAX_FRAME_SAMPLES + CHUNK + stretch::MAX_PERIOD]),
            pcm_len: 0,
            decode_errors: 0,
            bad_packets: 0,
            voice: false,
            quiet: false,
            comfort_noise_heard: true,
            dred: None,
            dred_recovered_samples: 0,
            fec_recovered_samples: 0,
            pause_samples: 0,
        })
    }

    /// For a mixer, which never mixes comfort noise: the pauses between
    /// comfort-noise updates play as silence instead of being concealed.
    /// A listener keeps the default and hears continuous comfort noise.
    pub fn drop_comfort_noise(&mut self) {
        self.comfort_noise_heard = false;
    }

    /// Rebuilds holes from deep redundancy (DRED) when later packets carry it.
    pub fn enable_dred(&mut self) -> Result<(), CodecError> {
        if self.dred.is_none() {
            self.dred = Some((Dred::new()?, None));
        }
        Ok(())
    }

    pub fn dred_enabled(&self) -> bool {
        self.dred.is_some()
    }

    pub fn stats(&self) -> ReceiveStats {
        ReceiveStats {
            jitter: self.jitter.stats(),
            decode_errors: self.decode_errors,
            bad_packets: self.bad_packets,
            dred_recovered_samples: self.dred_recovered_samples,
            fec_recovered_samples: self.fec_recovered_samples,
            pause_samples: self.pause_samples,
        }
    }

    /// The receive buffer, for reports that follow its target and playout lead.
    pub fn jitter_buffer(&self) -> &JitterBuffer {
        &self.jitter
    }

    /// Takes one datagram; malformed ones are counted and dropped.
    pub fn insert_datagram(&mut self, now: Time, datagram: &[u8]) -> Option<AudioHeader> {
        match AudioPacket::decode(datagram) {
            Ok(p) => {
                self.insert(now, &p);
                Some(p.header)
            }
            Err(_) => {
                self.bad_packets += 1;
                None
            }
        }
    }

    pub fn insert(&mut self, now: Time, packet: &AudioPacket<'_>) {
        // Without a level byte (e.g. the gateway's mix) every packet counts as speech.
        let voice = packet.header.level.is_none_or(|l| l.voice);
        self.jitter.insert_seq(now, Some(packet.header.seq), packet.header.ts, packet.primary, voice);
        // Copies from further back than the packet before (spaced against
        // bursts) are only of use if playout waits for them.
        let back = packet.redundant().iter().map(|r| usize::from(r.ticks_back) * TICK_SAMPLES).max().unwrap_or(0);
        let frame = crate::codec::packet_samples(packet.primary).unwrap_or(MAX_FRAME_SAMPLES);
        if back > frame {
            // DRED in the first packet after a burst reaches one packet further
            // back than the spaced copies: waiting for it too restores longer bursts.
            let reach = if self.dred.is_some() { back + frame } else { back };
            self.jitter.note_redundancy_reach(now, Duration::from_micros((reach / SAMPLES_PER_MS * 1000) as u64));
        }
        for r in packet.redundant() {
            let ts = packet.header.ts.wrapping_sub(u16::from(r.ticks_back));
            self.jitter.insert_recovery(ts, r.payload);
        }
    }

    /// Frees the decoder until the next decode (which starts from a fresh state).
    pub fn release_decoder(&mut self) {
        self.decoder = None;
    }

    /// Lets one 20 ms chunk of playout time pass without decoding it: the
    /// mixer's path for someone not selected as a talker, so silent or
    /// unselected uplinks cost a few comparisons instead of a decode.
    pub fn discard_chunk(&mut self, now: Time) {
        if self.pcm_len >= CHUNK {
            self.pcm.copy_within(CHUNK..self.pcm_len, 0);
            self.pcm_len -= CHUNK;
            return;
        }
        let mut need = CHUNK - self.pcm_len;
        self.pcm_len = 0;
        while need > 0 {
            match self.jitter.pop(now, CHUNK - need, need) {
                Pop::Silence => break,
                Pop::Missing(n) => need = need.saturating_sub(n),
                Pop::Packet(p, voice) => {
                    self.voice = voice;
                    let n = crate::codec::packet_samples(&p).unwrap_or(need).min(MAX_FRAME_SAMPLES);
                    if n > need {
                        // The rest of this packet would play next chunk: silence stands in.
                        self.pcm[..n - need].fill(0);
                        self.pcm_len = n - need;
                        need = 0;
                    } else {
                        need -= n;
                    }
                }
            }
        }
    }

    /// Stretches the decoded audio (of which `decoded` samples are new) one
    /// pitch period toward the buffer's target, when the buffer asks.
    fn follow_target(&mut self, decoded: usize) {
        let mut len = self.pcm_len + decoded;
        if self.jitter.stretch_wanted() == Some(StretchWanted::CatchUp) {
            // Only in pauses between words: speech itself is left alone.
            let mut pos = 0;
            while pos + 2 * stretch::MIN_PERIOD <= len && self.jitter.stretch_wanted() == Some(StretchWanted::CatchUp) {
                let mut rest = len - pos;
                match stretch::accelerate_quiet_at_most(&mut self.pcm[pos..], &mut rest, self.jitter.accelerate_limit()) {
                    Stretch::Removed(n) => {
                        self.jitter.stretched(-(n as isize));
                        len = pos + rest;
                    }
                    _ => pos += stretch::MIN_PERIOD,
                }
            }
            self.pcm_len = len;
            return;
        }
        // Far above target, several periods go from one packet's audio.
        let mut pos = 0;
        for _ in 0..MAX_STRETCHES_PER_PACKET {
            if pos + 2 * stretch::MIN_PERIOD > len {
                break;
            }
            let mut rest = len - pos;
            let done = match self.jitter.stretch_wanted() {
                Some(StretchWanted::Accelerate) => stretch::accelerate_at_most(&mut self.pcm[pos..], &mut rest, self.jitter.accelerate_limit()),
                Some(StretchWanted::Expand) if pos == 0 => stretch::expand(&mut self.pcm[pos..], &mut rest),
                _ => break,
            };
            len = pos + rest;
            match done {
                Stretch::Removed(n) => {
                    self.jitter.stretched(-(n as isize));
                    pos += n;
                }
                Stretch::Inserted(n) => self.jitter.stretched(n as isize),
                Stretch::None => pos += stretch::MIN_PERIOD,
            }
        }
        self.pcm_len = len;
    }

    /// Fills `out` with what plays now: one pull of playout, a 20 ms chunk
    /// or a smaller step (the buffer's [`JitterConfig::pull`]); the decoded
    /// audio left over waits for the next pull.
    pub fn pull_chunk(&mut self, now: Time, out: &mut [i16]) -> ChunkKind {
        let want = out.len();
        debug_assert!(want > 0 && want <= CHUNK, "pulls are at most a chunk");
        let mut kind = ChunkKind::Audio;
        loop {
            // In an outage's backlog, decode a chunk ahead whatever the pull (see `in_backlog`).
            let fill = if self.jitter.in_backlog() { CHUNK } else { want };
            if self.pcm_len >= fill {
                break;
            }
            if self.decoder.is_none() {
                match Decoder::new(self.decoder_complexity) {
                    Ok(d) => self.decoder = Some(d),
                    Err(_) => {
                        self.decode_errors += 1;
                        out.fill(0);
                        return ChunkKind::Silence;
                    }
                }
            }
            let decoder = self.decoder.as_mut().expect("made above");
            let room = &mut self.pcm[self.pcm_len..self.pcm_len + MAX_FRAME_SAMPLES];
            let got = match self.jitter.pop(now, self.pcm_len, fill - self.pcm_len) {
                Pop::Silence if self.pcm_len == 0 => {
                    out.fill(0);
                    return ChunkKind::Silence;
                }
                Pop::Silence => {
                    room[..fill - self.pcm_len].fill(0);
                    fill - self.pcm_len
                }
                Pop::Packet(p, voice) => {
                    self.voice = voice;
                    let n = decoder.decode(&p, room).unwrap_or_else(|_| {
                        self.decode_errors += 1;
                        0
                    });
                    self.quiet = room[..n].iter().all(|s| s.unsigned_abs() <= QUIET);
                    if voice && n > 0 {
                        self.follow_target(n);
                        continue;
                    }
                    n
                }
                Pop::Missing(n) => {
                    kind = ChunkKind::Concealed;
                    let n = n.next_multiple_of(TICK_SAMPLES).min(MAX_FRAME_SAMPLES);
                    let pause = self.quiet || (!self.voice && !self.comfort_noise_heard);
                    if pause && self.jitter.peek_following().next().is_none() {
                        // Nothing is buffered after silence (or, at a mixer, comfort
                        // noise): a DTX pause, not a loss. Neural concealment (FARGAN,
                        // dearer than a decode) would only extend it: play silence.
                        room[..n].fill(0);
                        self.pause_samples += n as u64;
                        n
                    } else if let Some(got) = lbrr_fill(&self.jitter, decoder, &mut room[..n]) {
                        self.fec_recovered_samples += got as u64;
                        got
                    } else if let Some(got) = dred_fill(&self.jitter, &mut self.dred, decoder, &mut room[..n]) {
                        self.dred_recovered_samples += got as u64;
                        got
                    } else {
                        decoder.conceal(&mut room[..n]).unwrap_or_else(|_| {
                            room[..n].fill(0);
                            n
                        })
                    }
                }
            };
            self.pcm_len += got;
        }
        out.copy_from_slice(&self.pcm[..want]);
        self.pcm.copy_within(want..self.pcm_len, 0);
        self.pcm_len -= want;
        if self.voice {
            kind
        } else {
            ChunkKind::ComfortNoise
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digital_silence_stops_costing_packets_once_in_dtx_and_speech_resumes_at_once() {
        let mut s = SendStream::new(Profile::default(), None, true).unwrap();
        let zeros = [0i16; CHUNK];
        let tone: Vec<i16> = (0..CHUNK).map(|i| ((i as f32 * 0.07).sin() * 8000.0) as i16).collect();
        let sent = |s: &mut SendStream, pcm: &[i16], chunks: usize| (0..chunks).filter(|_| s.push_chunk(pcm).unwrap().is_some()).count();
        assert!(sent(&mut s, &tone, 50) > 20);
        // Settling into DTX takes a few frames; after that, no comfort-noise refreshes of silence.
        sent(&mut s, &zeros, 50);
        assert_eq!(sent(&mut s, &zeros, 200), 0, "4 s of digital silence send nothing");
        let frames = s.stats().frames;
        let first = (0..4).find_map(|_| s.push_chunk(&tone).unwrap()).expect("speech is sent again");
        let p = AudioPacket::decode(&first).unwrap();
        assert!(p.header.marker, "a new talkspurt is marked");
        assert!(s.stats().frames > frames);
    }
}

#[cfg(test)]
mod dtx_pause_tests {
    use super::*;

    /// Sends `chunks` through a level-tagged send stream into a receive stream
    /// (20 ms a chunk, no loss), then keeps pulling for `after` chunks with
    /// nothing arriving; returns the kinds and the peak of what played after,
    /// and the samples played as a DTX pause.
    fn play(chunks: &[Vec<i16>], after: usize, mixer: bool) -> (Vec<ChunkKind>, i32, u64) {
        let mut tx = SendStream::new(Profile::default(), None, true).unwrap();
        let mut rx = ReceiveStream::new(7, Duration::from_millis(60)).unwrap();
        if mixer {
            rx.drop_comfort_noise();
        }
        let mut out = [0i16; CHUNK];
        let mut kinds = Vec::new();
        let mut peak = 0;
        for (i, pcm) in chunks.iter().map(Some).chain(std::iter::repeat_n(None, after)).enumerate() {
            let now = Time::from_millis(i as u64 * 20);
            if let Some(pcm) = pcm {
                if let Some(d) = tx.push_chunk(pcm).unwrap() {
                    rx.insert_datagram(now, &d);
                }
            }
            let kind = rx.pull_chunk(now, &mut out);
            if i >= chunks.len() + 4 {
                kinds.push(kind);
                peak = peak.max(out.iter().map(|s| i32::from(*s).abs()).max().unwrap());
            }
        }
        (kinds, peak, rx.stats().pause_samples)
    }

    fn voice(n: usize) -> Vec<Vec<i16>> {
        use std::f64::consts::TAU;
        (0..n)
            .map(|c| {
                (0..CHUNK)
                    .map(|i| {
                        let t = (c * CHUNK + i) as f64 / 16_000.0;
                        ((TAU * 300.0 * t + 8.0 * (TAU * 5.0 * t).sin()).sin() * 6000.0 * (0.55 + 0.45 * (TAU * 3.0 * t).sin())) as i16
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_pause_after_silence_plays_silence_after_comfort_noise_only_at_a_mixer_and_a_late_packet_mid_speech_is_concealed() {
        // Speech, then digital silence until the sender is in DTX (a mix nobody talks into).
        let mut call = voice(50);
        call.extend(std::iter::repeat_n(vec![0i16; CHUNK], 40));
        let (_, peak, paused) = play(&call, 10, false);
        assert!(peak == 0 && paused >= 10 * CHUNK as u64, "a DTX pause after silence was concealed: peak {peak}, {paused} samples paused");
        // Speech, then faint noise: comfort-noise updates every 400 ms, pauses between them.
        let mut call = voice(50);
        let mut x = 1u32;
        call.extend((0..100).map(|_| (0..CHUNK).map(|_| { x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345); ((x >> 16) % 61) as i16 - 30 }).collect()));
        let (_, _, paused) = play(&call, 0, true);
        assert!(paused >= 20 * CHUNK as u64, "a mixer concealed the pauses between comfort-noise updates: {paused} samples paused");
        // A listener hears comfort noise through those pauses, not bursts of it between silence.
        let (_, _, paused) = play(&call, 0, false);
        assert_eq!(paused, 0, "a listener's comfort noise was cut into bursts");
        // Speech that stops arriving mid-word: the buffer waits and conceals, as before.
        let (kinds, peak, paused) = play(&voice(50), 6, true);
        assert!(kinds.contains(&ChunkKind::Concealed) && peak > 100 && paused == 0, "a late packet mid-speech was not concealed: {kinds:?}, peak {peak}");
    }
}
