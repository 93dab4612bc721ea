//! The sound card through cpal. Real-time rule: the capture and playback
//! callbacks only copy samples into or out of lock-free ring buffers — no
//! allocation, no lock, no logging, no blocking. Format and rate conversion
//! happen on the call driver's side of the rings.
//!
//! cpal streams may not move between threads, so one plain thread opens
//! them, hands back the ring ends, and keeps them alive until stopped; it
//! reopens them when a device fails (unplugged) or falls silent, retrying
//! every second, while the call goes on in silence. Devices are chosen by
//! part of their name (`lowband devices` lists them).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{SampleFormat, StreamConfig};
use lowband_core::codec::{CHUNK, CHUNK_MS, SAMPLE_RATE};
use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

use super::resample::Stream;
use super::{AudioIo, PLAYOUT_STEP_MS};

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("no {0} sound device found")]
    NoDevice(&'static str),
    #[error("no {0} named like {1:?} (see `lowband devices`)")]
    NotFound(&'static str, String),
    #[error(transparent)]
    Resample(#[from] super::resample::ResampleError),
    #[error("{0}: {1}")]
    Cpal(&'static str, String),
    #[error("sample format {0:?} is not supported (need f32 or i16)")]
    Format(SampleFormat),
}

const CHUNK_TIME: Duration = Duration::from_millis(CHUNK_MS as u64);
const STEP_TIME: Duration = Duration::from_millis(PLAYOUT_STEP_MS as u64);

/// How much playback audio to keep queued in the ring ahead of the card.
const PLAYOUT_AHEAD: Duration = Duration::from_millis(60);
/// Ring capacity: plenty for scheduling hiccups of the driver task.
const RING: Duration = Duration::from_millis(500);

struct Opened {
    capture: HeapCons<f32>,
    playback: HeapProd<f32>,
    in_rate: u32,
    in_channels: usize,
    out_rate: u32,
    out_channels: usize,
}

pub struct DeviceAudio {
    opened: Option<Opened>,
    /// Replacement streams from the audio thread after a failure.
    reopened: mpsc::Receiver<Opened>,
    control: mpsc::Sender<Ctl>,
    failed: Arc<AtomicBool>,
    down: Stream,
    up: Stream,
    raw: Vec<f32>,
    mono: Vec<f32>,
    pending: Vec<f32>,
    out: Vec<f32>,
    /// While no device works: media time paced by the clock, so the call goes on in silence.
    gap_capture: Duration,
    gap_playout: Duration,
    /// Last time the microphone delivered samples (a silent stall counts as a failure).
    last_input: Duration,
}

enum Ctl {
    Reopen,
    Stop,
}

/// How long a microphone may deliver nothing before it is reopened.
const STALL: Duration = Duration::from_secs(2);
/// How often to try again while no device can be opened.
const RETRY: Duration = Duration::from_secs(1);

/// A config at 16 kHz if the device offers one (no conversion), else its default.
fn pick_config(ranges: Vec<cpal::SupportedStreamConfigRange>, default: cpal::SupportedStreamConfig) -> (StreamConfig, SampleFormat) {
    let usable = |f: SampleFormat| matches!(f, SampleFormat::F32 | SampleFormat::I16);
    let native = ranges.into_iter().filter(|r| usable(r.sample_format()) && r.channels() == 1).find_map(|r| {
        (r.min_sample_rate().0 <= SAMPLE_RATE && SAMPLE_RATE <= r.max_sample_rate().0).then(|| r.with_sample_rate(cpal::SampleRate(SAMPLE_RATE)))
    });
    let c = native.unwrap_or(default);
    (c.config(), c.sample_format())
}

/// Which devices to use: part of a name each (case-insensitive), or the system default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceChoice {
    pub mic: Option<String>,
    pub speaker: Option<String>,
}

fn find(devices: impl Iterator<Item = cpal::Device>, want: &str) -> Option<cpal::Device> {
    let want = want.to_lowercase();
    devices.into_iter().find(|d| d.name().is_ok_and(|n| n.to_lowercase().contains(&want)))
}

/// One line per device, `input:`/`output:`, the defaults marked.
pub fn list_devices() -> Result<Vec<String>, DeviceError> {
    let host = cpal::default_host();
    let di = host.default_input_device().and_then(|d| d.name().ok());
    let dout = host.default_output_device().and_then(|d| d.name().ok());
    let mut lines = Vec::new();
    let e = |x: cpal::DevicesError| DeviceError::Cpal("listing devices", x.to_string());
    for d in host.input_devices().map_err(e)? {
        let n = d.name().unwrap_or_default();
        lines.push(format!("input:  {n}{}", if Some(&n) == di.as_ref() { "  (default)" } else { "" }));
    }
    for d in host.output_devices().map_err(e)? {
        let n = d.name().unwrap_or_default();
        lines.push(format!("output: {n}{}", if Some(&n) == dout.as_ref() { "  (default)" } else { "" }));
    }
    Ok(lines)
}

fn open(choice: &DeviceChoice, failed: Arc<AtomicBool>) -> Result<(Opened, cpal::Stream, cpal::Stream), DeviceError> {
    let host = cpal::default_host();
    let input = match &choice.mic {
        Some(n) => host.input_devices().ok().and_then(|d| find(d, n)).ok_or_else(|| DeviceError::NotFound("microphone", n.clone()))?,
        None => host.default_input_device().ok_or(DeviceError::NoDevice("input"))?,
    };
    let output = match &choice.speaker {
        Some(n) => host.output_devices().ok().and_then(|d| find(d, n)).ok_or_else(|| DeviceError::NotFound("speaker", n.clone()))?,
        None => host.default_output_device().ok_or(DeviceError::NoDevice("output"))?,
    };
    let e = |what: &'static str| move |err: &dyn std::fmt::Display| DeviceError::Cpal(what, err.to_string());

    let in_ranges = input.supported_input_configs().map_err(|x| e("input configs")(&x))?.collect();
    let in_default = input.default_input_config().map_err(|x| e("input config")(&x))?;
    let (in_cfg, in_fmt) = pick_config(in_ranges, in_default);
    let out_ranges = output.supported_output_configs().map_err(|x| e("output configs")(&x))?.collect();
    let out_default = output.default_output_config().map_err(|x| e("output config")(&x))?;
    let (out_cfg, out_fmt) = pick_config(out_ranges, out_default);

    let ring_len = |cfg: &StreamConfig| (cfg.sample_rate.0 as usize * usize::from(cfg.channels)) * RING.as_millis() as usize / 1000;
    let (mut cap_prod, cap_cons) = HeapRb::<f32>::new(ring_len(&in_cfg)).split();
    let (play_prod, mut play_cons) = HeapRb::<f32>::new(ring_len(&out_cfg)).split();

    let f1 = failed.clone();
    let on_err = move |_err: cpal::StreamError| f1.store(true, Ordering::Relaxed);
    let in_stream = match in_fmt {
        SampleFormat::F32 => input.build_input_stream(
            &in_cfg,
            move |data: &[f32], _: &cpal::InputCallbackInfo| {
                cap_prod.push_slice(data);
            },
            on_err.clone(),
            None,
        ),
        SampleFormat::I16 => input.build_input_stream(
            &in_cfg,
            move |data: &[i16], _: &cpal::InputCallbackInfo| {
                for &s in data {
                    if cap_prod.try_push(f32::from(s) / 32768.0).is_err() {
                        break;
                    }
                }
            },
            on_err.clone(),
            None,
        ),
        f => return Err(DeviceError::Format(f)),
    }
    .map_err(|x| e("opening input")(&x))?;
    let out_stream = match out_fmt {
        SampleFormat::F32 => output.build_output_stream(
            &out_cfg,
            move |data: &mut [f32], _: &cpal::OutputCallbackInfo| {
                let n = play_cons.pop_slice(data);
                data[n..].fill(0.0);
            },
            on_err,
            None,
        ),
        SampleFormat::I16 => output.build_output_stream(
            &out_cfg,
            move |data: &mut [i16], _: &cpal::OutputCallbackInfo| {
                for s in data.iter_mut() {
                    *s = play_cons.try_pop().map_or(0, |v| (v * 32767.0).clamp(-32768.0, 32767.0) as i16);
                }
            },
            on_err,
            None,
        ),
        f => return Err(DeviceError::Format(f)),
    }
    .map_err(|x| e("opening output")(&x))?;
    in_stream.play().map_err(|x| e("starting input")(&x))?;
    out_stream.play().map_err(|x| e("starting output")(&x))?;
    let opened = Opened {
        capture: cap_cons,
        playback: play_prod,
        in_rate: in_cfg.sample_rate.0,
        in_channels: usize::from(in_cfg.channels),
        out_rate: out_cfg.sample_rate.0,
        out_channels: usize::from(out_cfg.channels),
    };
    Ok((opened, in_stream, out_stream))
}

impl DeviceAudio {
    /// Opens the default input and output devices.
    pub fn open_default() -> Result<Self, DeviceError> {
        Self::open(DeviceChoice::default())
    }

    /// Opens the chosen devices. If one fails later (unplugged), the audio
    /// thread closes both and retries every second until they open again;
    /// the call meanwhile goes on in silence.
    pub fn open(choice: DeviceChoice) -> Result<Self, DeviceError> {
        let failed = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let (ctl_tx, ctl_rx) = mpsc::channel::<Ctl>();
        let f = failed.clone();
        std::thread::Builder::new()
            .name("lowband-audio".into())
            .spawn(move || audio_thread(choice, f, ready_tx, ctl_rx))
            .map_err(|e| DeviceError::Cpal("audio thread", e.to_string()))?;
        let opened = ready_rx.recv().map_err(|e| DeviceError::Cpal("audio thread", e.to_string()))??;
        let (reopened_tx, reopened_rx) = mpsc::channel();
        // The first answer came through `ready`; later ones through `reopened`.
        std::thread::Builder::new()
            .name("lowband-audio-relay".into())
            .spawn(move || {
                while let Ok(r) = ready_rx.recv() {
                    if let Ok(o) = r {
                        if reopened_tx.send(o).is_err() {
                            return;
                        }
                    }
                }
            })
            .map_err(|e| DeviceError::Cpal("audio thread", e.to_string()))?;
        Ok(DeviceAudio {
            down: Stream::new(opened.in_rate, SAMPLE_RATE)?,
            up: Stream::new(SAMPLE_RATE, opened.out_rate)?,
            opened: Some(opened),
            reopened: reopened_rx,
            control: ctl_tx,
            failed,
            raw: Vec::new(),
            mono: Vec::new(),
            pending: Vec::new(),
            out: Vec::new(),
            gap_capture: Duration::ZERO,
            gap_playout: Duration::ZERO,
            last_input: Duration::ZERO,
        })
    }

    /// True while no working device is open (e.g. unplugged, waiting for it to return).
    pub fn has_failed(&self) -> bool {
        self.opened.is_none()
    }

    /// Notices failures and picks up reopened devices; called from every capture poll.
    fn check(&mut self, now: Duration) {
        if self.opened.is_some() && (self.failed.load(Ordering::Relaxed) || now.saturating_sub(self.last_input) > STALL) {
            tracing::warn!("sound device failed or went silent; reopening");
            self.opened = None;
            self.gap_capture = now;
            self.gap_playout = now;
            let _ = self.control.send(Ctl::Reopen);
        }
        if self.opened.is_none() {
            if let Ok(o) = self.reopened.try_recv() {
                self.failed.store(false, Ordering::Relaxed);
                match (Stream::new(o.in_rate, SAMPLE_RATE), Stream::new(SAMPLE_RATE, o.out_rate)) {
                    (Ok(d), Ok(u)) => {
                        tracing::info!("sound devices back");
                        self.down = d;
                        self.up = u;
                        self.pending.clear();
                        self.last_input = now;
                        self.opened = Some(o);
                    }
                    _ => {
                        let _ = self.control.send(Ctl::Reopen);
                    }
                }
            }
        }
    }
}

/// Owns the cpal streams (they may not move between threads): opens them,
/// hands the ring ends over, and reopens on request until stopped.
fn audio_thread(choice: DeviceChoice, failed: Arc<AtomicBool>, ready: mpsc::Sender<Result<Opened, DeviceError>>, ctl: mpsc::Receiver<Ctl>) {
    let mut first = true;
    loop {
        match open(&choice, failed.clone()) {
            Ok((opened, _in, _out)) => {
                tracing::info!(
                    input = %format!("{} Hz × {}", opened.in_rate, opened.in_channels),
                    output = %format!("{} Hz × {}", opened.out_rate, opened.out_channels),
                    "sound devices open"
                );
                if ready.send(Ok(opened)).is_err() {
                    return;
                }
                first = false;
                match ctl.recv() {
                    Ok(Ctl::Reopen) => continue,
                    Ok(Ctl::Stop) | Err(_) => return,
                }
            }
            Err(e) if first => {
                let _ = ready.send(Err(e));
                return;
            }
            Err(e) => {
                tracing::debug!("sound devices still unavailable: {e}");
                match ctl.recv_timeout(RETRY) {
                    Ok(Ctl::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    _ => {}
                }
            }
        }
    }
}

impl AudioIo for DeviceAudio {
    fn capture(&mut self, now: Duration, out: &mut [i16]) -> bool {
        self.check(now);
        let Some(o) = self.opened.as_mut() else {
            // No device: silence at the pace of the clock.
            if now < self.gap_capture + CHUNK_TIME {
                return false;
            }
            self.gap_capture += CHUNK_TIME;
            out.fill(0);
            return true;
        };
        let avail = o.capture.occupied_len();
        if avail > 0 {
            self.last_input = now;
            self.raw.resize(avail, 0.0);
            let n = o.capture.pop_slice(&mut self.raw);
            self.mono.clear();
            self.mono.extend(self.raw[..n].chunks(o.in_channels).map(|f| f.iter().sum::<f32>() / f.len() as f32));
            if self.down.process(&self.mono, &mut self.pending).is_err() {
                self.failed.store(true, Ordering::Relaxed);
            }
        }
        if self.pending.len() < CHUNK {
            return false;
        }
        for (o, s) in out.iter_mut().zip(self.pending.drain(..CHUNK)) {
            *o = (s * 32767.0).clamp(-32768.0, 32767.0) as i16;
        }
        true
    }

    fn wants_playout(&mut self, now: Duration) -> bool {
        match &self.opened {
            Some(o) => {
                let ahead = o.out_rate as usize * o.out_channels * PLAYOUT_AHEAD.as_millis() as usize / 1000;
                o.playback.occupied_len() < ahead
            }
            None if now >= self.gap_playout + STEP_TIME => {
                self.gap_playout += STEP_TIME;
                true
            }
            None => false,
        }
    }

    fn play(&mut self, step: &[i16]) -> std::io::Result<()> {
        let Some(o) = self.opened.as_mut() else { return Ok(()) };
        self.mono.clear();
        self.mono.extend(step.iter().map(|&s| f32::from(s) / 32768.0));
        self.out.clear();
        if self.up.process(&self.mono, &mut self.out).is_err() {
            self.failed.store(true, Ordering::Relaxed);
        }
        let ch = o.out_channels;
        for &s in &self.out {
            for _ in 0..ch {
                let _ = o.playback.try_push(s);
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<()> {
        let _ = self.control.send(Ctl::Stop);
        Ok(())
    }
}

impl Drop for DeviceAudio {
    fn drop(&mut self) {
        let _ = self.control.send(Ctl::Stop);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs a sound server: `LOWBAND_DEVICE_TESTS=1 scripts/deps.sh`, then
    /// `eval "$(../shared/tools/virtual-soundcard start /tmp/lb-sc)"` and
    /// `cargo test -p lowband-client -- --ignored`.
    #[test]
    #[ignore = "needs a sound card or the virtual one; see the comment"]
    fn a_named_device_opens_and_delivers_chunks() {
        let mut d = DeviceAudio::open(DeviceChoice { mic: Some("pulse".into()), speaker: Some("pulse".into()) }).expect("open");
        let start = std::time::Instant::now();
        let mut chunk = [0i16; CHUNK];
        let mut got = 0;
        while start.elapsed() < Duration::from_secs(2) {
            while d.capture(start.elapsed(), &mut chunk) {
                got += 1;
            }
            while d.wants_playout(start.elapsed()) {
                d.play(&[0; CHUNK]).unwrap();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(got > 50, "{got} chunks in 2 s");
    }

    /// Same setup as above (cpal must be able to list devices).
    #[test]
    #[ignore = "needs a sound card or the virtual one"]
    fn an_unknown_device_name_is_an_error_naming_it() {
        let e = DeviceAudio::open(DeviceChoice { mic: Some("no such mic 1234".into()), speaker: None }).err().expect("error");
        assert!(e.to_string().contains("no such mic 1234"), "{e}");
    }
}
