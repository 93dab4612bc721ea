//! Streaming mono sample-rate conversion with rubato's FFT resampler (fixed
//! ratio, anti-aliased): sound card rate ↔ 16 kHz, and 16 ↔ 48 kHz around
//! the noise suppressor. Buffers are sized once; `process` only grows them
//! the first time a caller hands it more than before.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

#[derive(Debug, thiserror::Error)]
#[error("resampler {from} Hz → {to} Hz: {msg}")]
pub struct ResampleError {
    from: u32,
    to: u32,
    msg: String,
}

/// Rate conversion for a continuous mono stream, keeping phase across calls.
pub struct Stream {
    inner: Option<Fft<f32>>,
    from: u32,
    to: u32,
    fifo: Vec<f32>,
    out: Vec<f32>,
}

impl Stream {
    /// A converter from `from_hz` to `to_hz` working on 10 ms blocks (pass-through when equal).
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self, ResampleError> {
        let err = |e: &dyn std::fmt::Display| ResampleError { from: from_hz, to: to_hz, msg: e.to_string() };
        let inner = if from_hz == to_hz {
            None
        } else {
            let chunk = (from_hz / 100).max(1) as usize;
            Some(Fft::<f32>::new(from_hz as usize, to_hz as usize, chunk, 1, FixedSync::Input).map_err(|e| err(&e))?)
        };
        Ok(Stream { inner, from: from_hz, to: to_hz, fifo: Vec::new(), out: Vec::new() })
    }

    /// Output samples lagging the input, from the filter (for alignment in reports).
    pub fn delay(&self) -> usize {
        self.inner.as_ref().map_or(0, |r| r.output_delay())
    }

    /// Converts `input`, appending whatever output is complete to `out`.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), ResampleError> {
        let Some(r) = self.inner.as_mut() else {
            out.extend_from_slice(input);
            return Ok(());
        };
        self.fifo.extend_from_slice(input);
        let mut used = 0;
        loop {
            let need = r.input_frames_next();
            if self.fifo.len() - used < need {
                break;
            }
            let produce = r.output_frames_next();
            self.out.resize(produce, 0.0);
            let (from, to) = (self.from, self.to);
            let err = |e: &dyn std::fmt::Display| ResampleError { from, to, msg: e.to_string() };
            let inp = InterleavedSlice::new(&self.fifo[used..used + need], 1, need).map_err(|e| err(&e))?;
            let mut outp = InterleavedSlice::new_mut(&mut self.out[..], 1, produce).map_err(|e| err(&e))?;
            let (read, written) = r.process_into_buffer(&inp, &mut outp, None).map_err(|e| err(&e))?;
            used += read;
            out.extend_from_slice(&self.out[..written]);
        }
        self.fifo.drain(..used);
        Ok(())
    }
}

/// Converts a whole recording (offline: WAV files of other rates).
pub fn convert(input: &[f32], from_hz: u32, to_hz: u32) -> Result<Vec<f32>, ResampleError> {
    let mut s = Stream::new(from_hz, to_hz)?;
    let delay = s.delay();
    let mut out = Vec::with_capacity(input.len() * to_hz as usize / from_hz as usize + 1024);
    s.process(input, &mut out)?;
    // Flush the filter's tail, then drop its leading delay.
    s.process(&vec![0.0; from_hz as usize / 10], &mut out)?;
    let want = (input.len() as u64 * u64::from(to_hz) / u64::from(from_hz)) as usize;
    Ok(out.into_iter().skip(delay).take(want).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_count_follows_the_rate_ratio() {
        let out = convert(&vec![0.5; 48_000], 48_000, 16_000).unwrap();
        assert_eq!(out.len(), 16_000);
        assert!(out[1000..15_000].iter().all(|&s| (s - 0.5).abs() < 1e-3));
    }

    #[test]
    fn a_tone_survives_a_round_trip_through_48_khz() {
        let tone: Vec<f32> = (0..16_000).map(|i| (i as f32 * 2.0 * std::f32::consts::PI * 440.0 / 16_000.0).sin() * 0.5).collect();
        let up = convert(&tone, 16_000, 48_000).unwrap();
        let back = convert(&up, 48_000, 16_000).unwrap();
        let err: f32 = tone[2000..14_000].iter().zip(&back[2000..14_000]).map(|(a, b)| (a - b).powi(2)).sum::<f32>() / 12_000.0;
        assert!(err < 1e-5, "mean squared error {err}");
    }
}
