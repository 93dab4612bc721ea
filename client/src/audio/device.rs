//! The sound card through cpal. Real-time rule: the capture and playback
//! callbacks only copy samples into or out of lock-free ring buffers — no
//! allocation, no lock, no logging, no blocking. Format and rate conversion
//! happen on the call driver's side of the rings.
//!
//! cpal streams may not move between threads, so one plain thread opens
//! them, hands back the ring ends, and keeps them alive until stopped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{SampleFormat, StreamConfig};
use lowband_core::codec::{CHUNK, SAMPLE_RATE};
use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

use super::resample::Linear;
use super::AudioIo;

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("no {0} sound device found")]
    NoDevice(&'static str),
    #[error("{0}: {1}")]
    Cpal(&'static str, String),
    #[error("sample format {0:?} is not supported (need f32 or i16)")]
    Format(SampleFormat),
}

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
    opened: Opened,
    stop: Option<mpsc::Sender<()>>,
    failed: Arc<AtomicBool>,
    down: Linear,
    up: Linear,
    raw: Vec<f32>,
    mono: Vec<f32>,
    pending: Vec<f32>,
    out: Vec<f32>,
}

/// A config at 16 kHz if the device offers one (no conversion), else its default.
fn pick_config(ranges: Vec<cpal::SupportedStreamConfigRange>, default: cpal::SupportedStreamConfig) -> (StreamConfig, SampleFormat) {
    let usable = |f: SampleFormat| matches!(f, SampleFormat::F32 | SampleFormat::I16);
    let native = ranges.into_iter().filter(|r| usable(r.sample_format()) && r.channels() == 1).find_map(|r| {
        (r.min_sample_rate().0 <= SAMPLE_RATE && SAMPLE_RATE <= r.max_sample_rate().0).then(|| r.with_sample_rate(cpal::SampleRate(SAMPLE_RATE)))
    });
    let c = native.unwrap_or(default);
    (c.config(), c.sample_format())
}

fn open(failed: Arc<AtomicBool>) -> Result<(Opened, cpal::Stream, cpal::Stream), DeviceError> {
    let host = cpal::default_host();
    let input = host.default_input_device().ok_or(DeviceError::NoDevice("input"))?;
    let output = host.default_output_device().ok_or(DeviceError::NoDevice("output"))?;
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
        let failed = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let f = failed.clone();
        std::thread::Builder::new()
            .name("lowband-audio".into())
            .spawn(move || match open(f) {
                Ok((opened, _in, _out)) => {
                    let _ = ready_tx.send(Ok(opened));
                    let _ = stop_rx.recv();
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| DeviceError::Cpal("audio thread", e.to_string()))?;
        let opened = ready_rx.recv().map_err(|e| DeviceError::Cpal("audio thread", e.to_string()))??;
        tracing::info!(
            input = %format!("{} Hz × {}", opened.in_rate, opened.in_channels),
            output = %format!("{} Hz × {}", opened.out_rate, opened.out_channels),
            "sound devices open"
        );
        Ok(DeviceAudio {
            down: Linear::new(opened.in_rate, SAMPLE_RATE),
            up: Linear::new(SAMPLE_RATE, opened.out_rate),
            opened,
            stop: Some(stop_tx),
            failed,
            raw: Vec::new(),
            mono: Vec::new(),
            pending: Vec::new(),
            out: Vec::new(),
        })
    }

    /// True once a device reported an error (e.g. it was unplugged).
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }
}

impl AudioIo for DeviceAudio {
    fn capture(&mut self, _now: Duration, out: &mut [i16]) -> bool {
        let o = &mut self.opened;
        let avail = o.capture.occupied_len();
        if avail > 0 {
            self.raw.resize(avail, 0.0);
            let n = o.capture.pop_slice(&mut self.raw);
            self.mono.clear();
            self.mono.extend(self.raw[..n].chunks(o.in_channels).map(|f| f.iter().sum::<f32>() / f.len() as f32));
            self.down.process(&self.mono, &mut self.pending);
        }
        if self.pending.len() < CHUNK {
            return false;
        }
        for (o, s) in out.iter_mut().zip(self.pending.drain(..CHUNK)) {
            *o = (s * 32767.0).clamp(-32768.0, 32767.0) as i16;
        }
        true
    }

    fn wants_playout(&mut self, _now: Duration) -> bool {
        let o = &self.opened;
        let ahead = o.out_rate as usize * o.out_channels * PLAYOUT_AHEAD.as_millis() as usize / 1000;
        o.playback.occupied_len() < ahead
    }

    fn play(&mut self, chunk: &[i16]) -> std::io::Result<()> {
        self.mono.clear();
        self.mono.extend(chunk.iter().map(|&s| f32::from(s) / 32768.0));
        self.out.clear();
        self.up.process(&self.mono, &mut self.out);
        let ch = self.opened.out_channels;
        for &s in &self.out {
            for _ in 0..ch {
                let _ = self.opened.playback.try_push(s);
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.stop.take();
        Ok(())
    }
}

impl Drop for DeviceAudio {
    fn drop(&mut self) {
        self.stop.take();
    }
}
