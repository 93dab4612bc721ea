//! Voice processing for a laptop's own microphone and speakers, in this order:
//! echo cancellation (`aec3`, a Rust port of WebRTC AEC3, with its high-pass
//! filter), noise suppression (`nnnoiseless`, RNNoise, at 48 kHz through
//! rubato), and automatic gain ([`Agc`], a small digital AGC of our own — see
//! there). Works on lowband's 20 ms chunks of 16 kHz mono.
//!
//! The AEC3 runtime is `!Send` (it uses `Rc` inside), so [`ProcessingThread`]
//! builds the processor on one thread of its own and never moves it; the call
//! driver talks to it through channels. None of this runs in a device callback.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

pub use aec3::api::config::EchoCanceller3Config;
use aec3::nodes::audio::AudioFormat;
use aec3::pipelines::linear::{self, LinearPipeline};
use lowband_core::codec::{CHUNK, SAMPLE_RATE};
use nnnoiseless::DenoiseState;

use super::resample::{ResampleError, Stream};
use super::AudioIo;

const HALF: usize = CHUNK / 2; // AEC3 takes 10 ms frames
const NS_RATE: u32 = 48_000;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("echo canceller: {0}")]
    Aec(String),
    #[error(transparent)]
    Resample(#[from] ResampleError),
    #[error("processing thread: {0}")]
    Thread(String),
}

/// Which stages run (reports switch them one by one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stages {
    pub aec: bool,
    pub ns: bool,
    pub agc: bool,
}

impl Stages {
    pub const ALL: Stages = Stages { aec: true, ns: true, agc: true };
}

/// What the last captured chunk looked like, for meters and voice activity.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ChunkInfo {
    /// RNNoise's speech probability (0 without noise suppression).
    pub speech: f32,
    /// Level of the processed chunk, dBFS.
    pub level_db: f32,
    /// The far end was audible in the last half second (AGC holds its gain).
    pub far_end_active: bool,
}

/// The processing chain, on one thread.
pub struct VoiceProcessor {
    aec: Option<LinearPipeline>,
    ns: Option<Denoiser>,
    agc: Option<Agc>,
    far: FarEnd,
    frame: [f32; HALF],
    out: [f32; HALF],
    aec_out: [i16; CHUNK],
}

impl VoiceProcessor {
    pub fn new(stages: Stages) -> Result<Self, ProcessError> {
        Self::with_aec_config(stages, aec_config())
    }

    /// With another AEC3 configuration (reports compare tunings).
    pub fn with_aec_config(stages: Stages, config: EchoCanceller3Config) -> Result<Self, ProcessError> {
        let aec = if stages.aec {
            let f = AudioFormat::ten_ms(SAMPLE_RATE, 1);
            let p = linear::builder(f, f)
                .aec3_config(config)
                .enable_noise_suppression(false)
                .enable_gain_controller2(false)
                .enable_post_filter(false)
                .build()
                .map_err(|e| ProcessError::Aec(format!("{e:?}")))?;
            Some(p)
        } else {
            None
        };
        Ok(VoiceProcessor {
            aec,
            ns: if stages.ns { Some(Denoiser::new()?) } else { None },
            agc: stages.agc.then(Agc::new),
            far: FarEnd::default(),
            frame: [0.0; HALF],
            out: [0.0; HALF],
            aec_out: [0; CHUNK],
        })
    }

    /// What is about to be played to the speakers: the echo reference.
    pub fn render(&mut self, chunk: &[i16]) -> Result<(), ProcessError> {
        self.far.render(chunk);
        if let Some(aec) = self.aec.as_mut() {
            for half in chunk.chunks_exact(HALF) {
                to_f32(half, &mut self.frame);
                aec.handle_render_frame(&self.frame).map_err(|e| ProcessError::Aec(format!("{e:?}")))?;
            }
        }
        Ok(())
    }

    /// Cleans one captured chunk in place.
    pub fn capture(&mut self, chunk: &mut [i16]) -> Result<ChunkInfo, ProcessError> {
        self.far.capture();
        if let Some(aec) = self.aec.as_mut() {
            for half in chunk.chunks_exact_mut(HALF) {
                to_f32(half, &mut self.frame);
                aec.process_capture_frame(&self.frame, &mut self.out).map_err(|e| ProcessError::Aec(format!("{e:?}")))?;
                for (o, &s) in half.iter_mut().zip(&self.out) {
                    *o = (s * 32767.0).clamp(-32768.0, 32767.0) as i16;
                }
            }
        }
        self.aec_out.copy_from_slice(chunk);
        let speech = match self.ns.as_mut() {
            Some(ns) => ns.process(chunk)?,
            None => 0.0,
        };
        let far_end_active = self.far.active();
        if let Some(agc) = self.agc.as_mut() {
            agc.process(chunk, speech, far_end_active);
        }
        Ok(ChunkInfo { speech, level_db: level_db(chunk), far_end_active })
    }

    /// The last chunk as it left the echo canceller (before NS and AGC), for ERLE.
    pub fn aec_output(&self) -> &[i16] {
        &self.aec_out
    }

    /// Current AGC gain in dB (0 without AGC).
    pub fn agc_gain_db(&self) -> f32 {
        self.agc.as_ref().map_or(0.0, |a| a.gain_db)
    }
}

/// AEC3's configuration for a laptop's speakers and microphone. WebRTC's
/// defaults keep the near end quiet whenever the far end talks (double-talk
/// PESQ-WB below the raw microphone's in `lowband-tools aec-report`); these
/// changes let the suppressor trust the linear filter where it measurably works:
pub fn aec_config() -> EchoCanceller3Config {
    let mut c = EchoCanceller3Config::default();
    // Always subtract the main filter's estimate: the fast shadow filter also
    // cancels part of the near end in double talk, and would win the
    // lower-error selection exactly then.
    c.filter.enable_shadow_filter_output_usage = false;
    // 160 ms linear filter (default 52 ms): a room's tail is cancelled, not
    // just suppressed. 16 kHz mono keeps this cheap.
    for len in [&mut c.filter.main.length_blocks, &mut c.filter.shadow.length_blocks] {
        *len = 40;
    }
    // Residual echo = linear estimate / measured ERLE. The default caps the
    // ERLE the suppressor may believe at 6 dB (1.8 dB above 2 kHz), so it
    // suppresses as if the filter barely worked; 20 dB here. The estimate
    // itself still comes from far-end single talk and falls with a
    // distorting speaker.
    c.erle.max_l = 100.0;
    c.erle.max_h = 100.0;
    // Assumed reverberation beyond the filter, per 4 ms block (default 0.83,
    // ~300 ms): the longer filter already covers most of a small room.
    c.ep_strength.default_len = 0.3;
    c.ep_strength.nearend_len = 0.3;
    // Where a shut gain starts when it may rise again (default 1e-5, -50 dB).
    // Rising at most x2 per 4 ms block, from the default it takes ~70 ms to
    // reopen after a near-end pause over far-end speech: it clipped every
    // near-end onset in double talk.
    c.suppressor.floor_first_increase = 0.01;
    c
}

fn to_f32(x: &[i16], out: &mut [f32]) {
    for (o, &s) in out.iter_mut().zip(x) {
        *o = f32::from(s) / 32768.0;
    }
}

/// RMS level in dBFS, floored at −100.
pub fn level_db(x: &[i16]) -> f32 {
    let e = x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len().max(1) as f64;
    if e <= 0.0 {
        -100.0
    } else {
        (10.0 * (e / (32768.0f64 * 32768.0)).log10()).max(-100.0) as f32
    }
}

/// Whether the far end has been audible recently (echo may be on its way).
#[derive(Default)]
struct FarEnd {
    /// Chunks since the render signal was last above the threshold.
    quiet_for: u32,
}

impl FarEnd {
    const THRESHOLD_DB: f32 = -50.0;
    /// Echo paths are well under 500 ms: hold that long after the far end stops.
    const HOLD_CHUNKS: u32 = 25;

    fn render(&mut self, chunk: &[i16]) {
        if level_db(chunk) > Self::THRESHOLD_DB {
            self.quiet_for = 0;
        }
    }

    fn capture(&mut self) {
        self.quiet_for = self.quiet_for.saturating_add(1);
    }

    fn active(&self) -> bool {
        self.quiet_for <= Self::HOLD_CHUNKS
    }
}

/// RNNoise at 48 kHz between two rubato converters. The chain is exact for
/// 16 ↔ 48 kHz (160 → 480 → 160 per 10 ms), so every chunk in gives a chunk out.
struct Denoiser {
    state: Box<DenoiseState<'static>>,
    up: Stream,
    down: Stream,
    f32_in: Vec<f32>,
    hi: Vec<f32>,
    hi_out: Vec<f32>,
    frame: [f32; DenoiseState::FRAME_SIZE],
    lo: Vec<f32>,
}

impl Denoiser {
    fn new() -> Result<Self, ProcessError> {
        Ok(Denoiser {
            state: DenoiseState::new(),
            up: Stream::new(SAMPLE_RATE, NS_RATE)?,
            down: Stream::new(NS_RATE, SAMPLE_RATE)?,
            f32_in: Vec::with_capacity(CHUNK),
            hi: Vec::with_capacity(4 * CHUNK * 3),
            hi_out: Vec::with_capacity(4 * CHUNK * 3),
            frame: [0.0; DenoiseState::FRAME_SIZE],
            lo: Vec::with_capacity(4 * CHUNK),
        })
    }

    /// Returns the largest speech probability RNNoise saw in the chunk.
    fn process(&mut self, chunk: &mut [i16]) -> Result<f32, ProcessError> {
        self.f32_in.clear();
        // RNNoise works on i16-scaled floats.
        self.f32_in.extend(chunk.iter().map(|&s| f32::from(s)));
        self.up.process(&self.f32_in, &mut self.hi)?;
        let mut vad: f32 = 0.0;
        let n = DenoiseState::FRAME_SIZE;
        let whole = self.hi.len() / n * n;
        self.hi_out.clear();
        for f in self.hi[..whole].chunks_exact(n) {
            vad = vad.max(self.state.process_frame(&mut self.frame, f));
            self.hi_out.extend_from_slice(&self.frame);
        }
        self.hi.drain(..whole);
        self.down.process(&self.hi_out, &mut self.lo)?;
        // Start-up only: pad until the converters' pipeline is full.
        if self.lo.len() < chunk.len() {
            let pad = chunk.len() - self.lo.len();
            self.lo.splice(0..0, std::iter::repeat_n(0.0, pad));
        }
        let n = chunk.len();
        for (o, s) in chunk.iter_mut().zip(self.lo.drain(..n)) {
            *o = s.clamp(-32768.0, 32767.0) as i16;
        }
        Ok(vad)
    }
}

/// A small digital AGC (not WebRTC's AGC2, whose Rust port here is tied to
/// its graph runtime): it tracks the level of the near-end talker over
/// chunks RNNoise calls speech and moves a gain towards `TARGET_DB`, rising
/// at most 6 dB/s and falling at most 30 dB/s, within −10…+20 dB, then
/// limits peaks. While the far end is audible the gain may fall but not rise,
/// so it never amplifies residual echo that the echo canceller left.
pub struct Agc {
    level_db: Option<f32>,
    gain_db: f32,
}

impl Agc {
    const TARGET_DB: f32 = -22.0;
    const MAX_GAIN_DB: f32 = 20.0;
    const MIN_GAIN_DB: f32 = -10.0;
    const RISE_DB_PER_CHUNK: f32 = 6.0 * 0.02;
    const FALL_DB_PER_CHUNK: f32 = 30.0 * 0.02;
    const SPEECH: f32 = 0.6;
    const LIMIT: f32 = 0.9 * 32767.0;

    pub fn new() -> Self {
        Agc { level_db: None, gain_db: 0.0 }
    }

    pub fn process(&mut self, chunk: &mut [i16], speech: f32, far_end_active: bool) {
        let lvl = level_db(chunk);
        if speech >= Self::SPEECH && lvl > -60.0 {
            // Speech level: fast to follow a louder talker, slow to decay.
            let a = match self.level_db {
                Some(l) if lvl > l => 0.3,
                Some(_) => 0.05,
                None => 1.0,
            };
            let l = self.level_db.map_or(lvl, |l| l + a * (lvl - l));
            self.level_db = Some(l);
        }
        let before = self.gain_db;
        if let Some(l) = self.level_db {
            let want = (Self::TARGET_DB - l).clamp(Self::MIN_GAIN_DB, Self::MAX_GAIN_DB);
            let step = (want - self.gain_db).clamp(-Self::FALL_DB_PER_CHUNK, Self::RISE_DB_PER_CHUNK);
            if !(far_end_active && step > 0.0) {
                self.gain_db += step;
            }
        }
        // Ramp across the chunk so gain changes do not click.
        let (g0, g1) = (db_to_lin(before), db_to_lin(self.gain_db));
        let n = chunk.len() as f32;
        for (i, s) in chunk.iter_mut().enumerate() {
            let g = g0 + (g1 - g0) * (i as f32 / n);
            let v = f32::from(*s) * g;
            // Soft limiter above LIMIT keeps peaks from clipping.
            let v = if v.abs() > Self::LIMIT { v.signum() * (Self::LIMIT + (v.abs() - Self::LIMIT) / (1.0 + (v.abs() - Self::LIMIT) / 3000.0)) } else { v };
            *s = v.clamp(-32768.0, 32767.0) as i16;
        }
    }
}

impl Default for Agc {
    fn default() -> Self {
        Self::new()
    }
}

fn db_to_lin(db: f32) -> f32 {
    10f32.powf(db / 20.0)
}

/// How the microphone opens: on voice (default) or while a key is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TalkMode {
    Voice,
    PushToTalk,
}

/// Talk controls and meters shared between the call driver and a user interface (atomics only).
#[derive(Debug, Default)]
pub struct TalkState {
    push_to_talk: AtomicBool,
    key_down: AtomicBool,
    /// Mic level in hundredths of dB.
    level: AtomicI32,
    speaking: AtomicBool,
    speech: AtomicU32,
}

impl TalkState {
    pub fn set_mode(&self, mode: TalkMode) {
        self.push_to_talk.store(mode == TalkMode::PushToTalk, Ordering::Relaxed);
    }
    pub fn mode(&self) -> TalkMode {
        if self.push_to_talk.load(Ordering::Relaxed) {
            TalkMode::PushToTalk
        } else {
            TalkMode::Voice
        }
    }
    /// Push-to-talk key held (the UI decides when it is released).
    pub fn set_key(&self, down: bool) {
        self.key_down.store(down, Ordering::Relaxed);
    }
    pub fn level_db(&self) -> f32 {
        self.level.load(Ordering::Relaxed) as f32 / 100.0
    }
    /// True while our microphone is open and sending.
    pub fn speaking(&self) -> bool {
        self.speaking.load(Ordering::Relaxed)
    }
    pub fn speech_probability(&self) -> f32 {
        f32::from_bits(self.speech.load(Ordering::Relaxed))
    }
}

/// Voice activity gate: opens on speech, stays open 400 ms after it.
struct Gate {
    hold: u32,
}

impl Gate {
    const OPEN: f32 = 0.5;
    const HOLD_CHUNKS: u32 = 20;

    fn open(&mut self, speech: f32) -> bool {
        if speech >= Self::OPEN {
            self.hold = Self::HOLD_CHUNKS;
        } else {
            self.hold = self.hold.saturating_sub(1);
        }
        self.hold > 0
    }
}

enum Job {
    Render([i16; CHUNK]),
    Capture([i16; CHUNK]),
}

/// A [`VoiceProcessor`] on a thread of its own, fed in call order.
pub struct ProcessingThread {
    jobs: Option<mpsc::Sender<Job>>,
    done: mpsc::Receiver<([i16; CHUNK], ChunkInfo)>,
}

impl ProcessingThread {
    pub fn start(stages: Stages) -> Result<Self, ProcessError> {
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let (done_tx, done_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("lowband-voice".into())
            .spawn(move || {
                let mut p = match VoiceProcessor::new(stages) {
                    Ok(p) => {
                        let _ = ready_tx.send(Ok(()));
                        p
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let mut failed = false;
                while let Ok(job) = jobs_rx.recv() {
                    match job {
                        Job::Render(c) => {
                            if !failed && p.render(&c).is_err() {
                                failed = true;
                            }
                        }
                        Job::Capture(mut c) => {
                            // After a failure, pass audio through rather than go silent.
                            let info = if failed { Ok(ChunkInfo { level_db: level_db(&c), ..ChunkInfo::default() }) } else { p.capture(&mut c) };
                            let info = info.unwrap_or_else(|e| {
                                tracing::warn!("voice processing stopped: {e}");
                                failed = true;
                                ChunkInfo::default()
                            });
                            if done_tx.send((c, info)).is_err() {
                                return;
                            }
                        }
                    }
                }
            })
            .map_err(|e| ProcessError::Thread(e.to_string()))?;
        ready_rx.recv().map_err(|e| ProcessError::Thread(e.to_string()))??;
        Ok(ProcessingThread { jobs: Some(jobs_tx), done: done_rx })
    }

    fn send(&self, job: Job) {
        if let Some(j) = &self.jobs {
            let _ = j.send(job);
        }
    }
}

impl Drop for ProcessingThread {
    fn drop(&mut self) {
        self.jobs.take();
    }
}

/// Wraps a sound card (or any [`AudioIo`]) with voice processing and the
/// talk gate: what is played becomes the echo reference; what is captured
/// comes back cleaned, one driver tick later, and is zeroed while the gate
/// is shut (Opus DTX then sends next to nothing).
pub struct Processed<A> {
    inner: A,
    thread: ProcessingThread,
    talk: Arc<TalkState>,
    gate: Gate,
    raw: [i16; CHUNK],
    /// Played steps gathered into the 20 ms chunk the echo canceller takes.
    render: [i16; CHUNK],
    render_len: usize,
}

impl<A: AudioIo> Processed<A> {
    pub fn new(inner: A, stages: Stages, talk: Arc<TalkState>) -> Result<Self, ProcessError> {
        Ok(Processed { inner, thread: ProcessingThread::start(stages)?, talk, gate: Gate { hold: 0 }, raw: [0; CHUNK], render: [0; CHUNK], render_len: 0 })
    }

    pub fn inner(&self) -> &A {
        &self.inner
    }
}

impl<A: AudioIo> AudioIo for Processed<A> {
    fn capture(&mut self, now: Duration, out: &mut [i16]) -> bool {
        while self.inner.capture(now, &mut self.raw) {
            self.thread.send(Job::Capture(self.raw));
        }
        let Ok((chunk, info)) = self.thread.done.try_recv() else {
            return false;
        };
        let open = match self.talk.mode() {
            TalkMode::Voice => self.gate.open(info.speech),
            TalkMode::PushToTalk => self.talk.key_down.load(Ordering::Relaxed),
        };
        self.talk.level.store((info.level_db * 100.0) as i32, Ordering::Relaxed);
        self.talk.speech.store(info.speech.to_bits(), Ordering::Relaxed);
        self.talk.speaking.store(open, Ordering::Relaxed);
        if open {
            out.copy_from_slice(&chunk);
        } else {
            out.fill(0);
        }
        true
    }

    fn wants_playout(&mut self, now: Duration) -> bool {
        self.inner.wants_playout(now)
    }

    fn play(&mut self, step: &[i16]) -> std::io::Result<()> {
        let mut rest = step;
        while !rest.is_empty() {
            let n = rest.len().min(CHUNK - self.render_len);
            self.render[self.render_len..self.render_len + n].copy_from_slice(&rest[..n]);
            self.render_len += n;
            rest = &rest[n..];
            if self.render_len == CHUNK {
                self.thread.send(Job::Render(self.render));
                self.render_len = 0;
            }
        }
        self.inner.play(step)
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.inner.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize, amp: f32) -> Vec<i16> {
        (0..n).map(|i| ((i as f32 * 0.07).sin() * amp) as i16).collect()
    }

    #[test]
    fn the_agc_raises_a_quiet_talker_towards_the_target() {
        let mut agc = Agc::new();
        let x = tone(CHUNK, 800.0); // about −35 dBFS
        let mut last = x.clone();
        for _ in 0..200 {
            last = x.clone();
            agc.process(&mut last, 1.0, false);
        }
        assert!(level_db(&last) > level_db(&x) + 10.0, "{} vs {}", level_db(&last), level_db(&x));
    }

    #[test]
    fn the_agc_does_not_raise_its_gain_while_the_far_end_talks() {
        let mut agc = Agc::new();
        let x = tone(CHUNK, 800.0);
        for _ in 0..200 {
            agc.process(&mut x.clone(), 1.0, true);
        }
        assert!(agc.gain_db <= 0.0, "{}", agc.gain_db);
    }

    #[test]
    fn the_processor_gives_a_chunk_for_every_chunk() {
        let mut p = VoiceProcessor::new(Stages::ALL).unwrap();
        let x = tone(CHUNK, 3000.0);
        for _ in 0..20 {
            p.render(&x).unwrap();
            let mut c = x.clone();
            p.capture(&mut c).unwrap();
        }
    }

    /// A laptop in virtual time: what is played waits in a 60 ms queue (like
    /// the sound card's ring), then comes back to the microphone 40 ms later,
    /// 10 dB down, on top of the near end.
    struct EchoRoom {
        queue: std::collections::VecDeque<i16>,
        played: Vec<f32>,
        mic: Vec<i16>,
        near: Vec<f32>,
        now: Duration,
    }

    impl EchoRoom {
        const DELAY: usize = 640;
    }

    impl AudioIo for EchoRoom {
        fn capture(&mut self, now: Duration, out: &mut [i16]) -> bool {
            while self.now < now {
                self.now += Duration::from_millis(5);
                for _ in 0..80 {
                    let n = self.played.len();
                    self.played.push(f32::from(self.queue.pop_front().unwrap_or(0)));
                    let echo = if n >= Self::DELAY { 0.316 * self.played[n - Self::DELAY] } else { 0.0 };
                    let near = self.near.get(n).copied().unwrap_or(0.0);
                    self.mic.push((echo + near) as i16);
                }
            }
            if self.mic.len() < CHUNK {
                return false;
            }
            out.copy_from_slice(&self.mic[..CHUNK]);
            self.mic.drain(..CHUNK);
            true
        }
        fn wants_playout(&mut self, _now: Duration) -> bool {
            self.queue.len() < 960
        }
        fn play(&mut self, chunk: &[i16]) -> std::io::Result<()> {
            self.queue.extend(chunk);
            Ok(())
        }
        fn finish(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Speech-like test signals: `voiced` = harmonics of a gliding pitch,
    /// otherwise low-passed noise; both in 250 ms syllables.
    fn talker(len: usize, seed: u32, voiced: bool) -> Vec<f32> {
        let mut x = seed;
        let mut lp = 0.0f32;
        (0..len)
            .map(|n| {
                let t = n as f32 / SAMPLE_RATE as f32;
                let syllable = (std::f32::consts::PI * t * 4.0).sin().abs();
                let s = if voiced {
                    let f0 = 140.0 + 20.0 * (t * 1.3).sin();
                    (1..12).map(|k| (2.0 * std::f32::consts::PI * f0 * k as f32 * t).sin() / k as f32).sum::<f32>()
                } else {
                    x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    lp = 0.8 * lp + 0.2 * ((x >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0);
                    4.0 * lp
                };
                3000.0 * syllable * s
            })
            .collect()
    }

    /// Least-squares gain of `said` in `heard` (best lag up to 200 samples), dB.
    fn kept_db(said: &[f32], heard: &[f32]) -> f32 {
        let e: f32 = said.iter().map(|s| s * s).sum();
        let best = (0..200)
            .map(|lag| said.iter().zip(&heard[lag..]).map(|(s, h)| s * h).sum::<f32>() / e)
            .fold(f32::MIN, f32::max);
        20.0 * best.max(1e-6).log10()
    }

    #[test]
    fn echo_through_the_processed_sound_card_is_cancelled_and_the_near_end_passes() {
        // The wiring, not the tuning (aec-report and its test in lowband-tools lock that):
        // the echo reference is the chunk handed to the speaker, in the call driver's order.
        // Far end alone 0-8 s, near end alone 8-10 s, double talk 10-12 s.
        let s = |sec: f32| (sec * SAMPLE_RATE as f32) as usize;
        let mut far = talker(s(12.0), 1, false);
        far[s(8.0)..s(10.0)].fill(0.0);
        let near_speech = talker(s(2.0), 2, true);
        let mut near = vec![0.0; s(12.0)];
        near[s(8.0)..s(10.0)].copy_from_slice(&near_speech);
        near[s(10.0)..].copy_from_slice(&near_speech);
        let room = EchoRoom { queue: Default::default(), played: Vec::new(), mic: Vec::new(), near, now: Duration::ZERO };
        let talk = Arc::new(TalkState::default());
        talk.set_mode(TalkMode::PushToTalk);
        talk.set_key(true);
        let mut p = Processed::new(room, Stages { aec: true, ns: false, agc: false }, talk).unwrap();

        // The call driver's order: capture what is there, then top up the playout.
        let (mut out, mut chunk, mut next_far) = (Vec::new(), [0i16; CHUNK], 0);
        let mut t = Duration::ZERO;
        while out.len() < s(12.0) {
            if t < Duration::from_secs(13) {
                t += Duration::from_millis(5);
            } else {
                std::thread::sleep(Duration::from_millis(1)); // the processing thread catches up
            }
            while p.capture(t, &mut chunk) {
                out.extend(chunk.iter().map(|&x| f32::from(x)));
            }
            while p.wants_playout(t) {
                for (c, f) in chunk.iter_mut().zip(far.iter().chain(std::iter::repeat(&0.0)).skip(next_far)) {
                    *c = *f as i16;
                }
                next_far += CHUNK;
                p.play(&chunk).unwrap();
            }
        }

        let played = &p.inner().played;
        let energy = |x: &[f32]| x.iter().map(|v| v * v).sum::<f32>().max(1.0);
        let echo_db = 10.0 * (0.1 * energy(&played[s(4.0)..s(7.5)])).log10();
        let left_db = 10.0 * energy(&out[s(4.0) + EchoRoom::DELAY..s(7.5) + EchoRoom::DELAY]).log10();
        assert!(echo_db - left_db > 20.0, "echo {echo_db:.1} dB, left {left_db:.1} dB");
        let alone = kept_db(&near_speech, &out[s(8.0)..]);
        let double = kept_db(&near_speech, &out[s(10.0)..]);
        assert!(double > alone - 3.0, "near end kept {double:.1} dB in double talk, {alone:.1} dB alone");
    }

    #[test]
    fn the_voice_gate_holds_open_after_speech_and_then_shuts() {
        let mut g = Gate { hold: 0 };
        assert!(!g.open(0.1));
        assert!(g.open(0.9));
        assert!((0..Gate::HOLD_CHUNKS - 1).all(|_| g.open(0.0)));
        assert!(!g.open(0.0));
    }
}
