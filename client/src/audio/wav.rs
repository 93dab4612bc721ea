//! Headless audio: speak a WAV file, record what is heard to a WAV file,
//! paced in real time so the call behaves exactly as with a sound card.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::time::Duration;

use lowband_core::codec::{CHUNK, CHUNK_MS, SAMPLE_RATE};

use super::resample::convert;
use super::{AudioIo, PLAYOUT_STEP_MS};

#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("{path}: {source}")]
    Hound { path: String, source: hound::Error },
    #[error("{path}: {source}")]
    Resample { path: String, source: super::resample::ResampleError },
}

/// Reads any PCM WAV as 16 kHz mono i16 (channels averaged, rate converted).
pub fn read_16k_mono(path: &Path) -> Result<Vec<i16>, WavError> {
    let err = |source| WavError::Hound { path: path.display().to_string(), source };
    let mut r = hound::WavReader::open(path).map_err(err)?;
    let spec = r.spec();
    let scale = match spec.sample_format {
        hound::SampleFormat::Float => 1.0,
        hound::SampleFormat::Int => 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32,
    };
    let samples: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => r.samples::<f32>().collect::<Result<_, _>>().map_err(err)?,
        hound::SampleFormat::Int => r.samples::<i32>().map(|s| s.map(|v| v as f32 * scale)).collect::<Result<_, _>>().map_err(err)?,
    };
    let channels = usize::from(spec.channels.max(1));
    let mono: Vec<f32> = samples.chunks(channels).map(|f| f.iter().sum::<f32>() / channels as f32).collect();
    let mono = if spec.sample_rate == SAMPLE_RATE {
        mono
    } else {
        convert(&mono, spec.sample_rate, SAMPLE_RATE).map_err(|source| WavError::Resample { path: path.display().to_string(), source })?
    };
    Ok(mono.iter().map(|&s| (s * 32767.0).clamp(-32768.0, 32767.0) as i16).collect())
}

pub fn spec_16k_mono() -> hound::WavSpec {
    hound::WavSpec { channels: 1, sample_rate: SAMPLE_RATE, bits_per_sample: 16, sample_format: hound::SampleFormat::Int }
}

pub struct WavAudio {
    input: Vec<i16>,
    speak_at: u64,
    captured: u64,
    /// Playout steps played.
    played: u64,
    writer: Option<hound::WavWriter<BufWriter<File>>>,
}

impl WavAudio {
    /// Speaks `input` starting `speak_at` into the call (silence before and after);
    /// records what is heard to `output` if given.
    pub fn new(input: Vec<i16>, speak_at: Duration, output: Option<&Path>) -> Result<Self, WavError> {
        let writer = output
            .map(|p| hound::WavWriter::create(p, spec_16k_mono()).map_err(|source| WavError::Hound { path: p.display().to_string(), source }))
            .transpose()?;
        Ok(WavAudio { input, speak_at: speak_at.as_millis() as u64 / u64::from(CHUNK_MS), captured: 0, played: 0, writer })
    }

    /// How long until the input has been spoken in full.
    pub fn speech_end(&self) -> Duration {
        let chunks = self.speak_at + self.input.len().div_ceil(CHUNK) as u64;
        Duration::from_millis(chunks * u64::from(CHUNK_MS))
    }

    fn due(now: Duration) -> u64 {
        now.as_millis() as u64 / u64::from(CHUNK_MS)
    }
}

impl AudioIo for WavAudio {
    fn capture(&mut self, now: Duration, out: &mut [i16]) -> bool {
        if self.captured >= Self::due(now) {
            return false;
        }
        out.fill(0);
        if let Some(i) = self.captured.checked_sub(self.speak_at) {
            let start = (i as usize).saturating_mul(CHUNK).min(self.input.len());
            let end = (start + CHUNK).min(self.input.len());
            out[..end - start].copy_from_slice(&self.input[start..end]);
        }
        self.captured += 1;
        true
    }

    fn wants_playout(&mut self, now: Duration) -> bool {
        self.played < now.as_millis() as u64 / u64::from(PLAYOUT_STEP_MS)
    }

    fn play(&mut self, step: &[i16]) -> std::io::Result<()> {
        self.played += 1;
        let Some(w) = &mut self.writer else { return Ok(()) };
        for &s in step {
            w.write_sample(s).map_err(std::io::Error::other)?;
        }
        // Keep the header current once a second: a crash leaves a playable file.
        if self.played % (1000 / u64::from(PLAYOUT_STEP_MS)) == 0 {
            w.flush().map_err(std::io::Error::other)?;
        }
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<()> {
        match self.writer.take() {
            Some(w) => w.finalize().map_err(std::io::Error::other),
            None => Ok(()),
        }
    }
}
