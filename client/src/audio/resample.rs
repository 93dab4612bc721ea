//! Streaming linear resampler for mono f32, used only between a sound card's
//! own rate and lowband's 16 kHz when the device cannot open at 16 kHz.

pub struct Linear {
    step: f64,
    pos: f64,
    prev: f32,
}

impl Linear {
    pub fn new(from_hz: u32, to_hz: u32) -> Self {
        Linear { step: f64::from(from_hz) / f64::from(to_hz), pos: 0.0, prev: 0.0 }
    }

    /// Resamples `input`, appending to `out`; keeps phase across calls.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        // pos is measured from `prev` (index -1 relative to input[0]).
        for &x in input {
            while self.pos <= 1.0 {
                out.push(self.prev + (x - self.prev) * self.pos as f32);
                self.pos += self.step;
            }
            self.pos -= 1.0;
            self.prev = x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_count_follows_the_rate_ratio() {
        let mut r = Linear::new(48_000, 16_000);
        let mut out = Vec::new();
        for _ in 0..100 {
            r.process(&[0.5; 480], &mut out);
        }
        assert!((out.len() as i64 - 16_000).abs() <= 1, "{}", out.len());
        assert!(out[10..].iter().all(|&s| (s - 0.5).abs() < 1e-6));
    }
}
