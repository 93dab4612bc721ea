//! Mix-minus: everyone hears the sum of everyone else, computed once as a
//! total from which each listener's own voice is subtracted.

use crate::codec::CHUNK;

/// Running sum of one 20 ms chunk across the room's talkers.
pub struct Mix {
    total: [i32; CHUNK],
}

impl Default for Mix {
    fn default() -> Self {
        Mix { total: [0; CHUNK] }
    }
}

impl Mix {
    pub fn clear(&mut self) {
        self.total.fill(0);
    }

    pub fn add(&mut self, pcm: &[i16]) {
        for (t, &s) in self.total.iter_mut().zip(pcm) {
            *t += i32::from(s);
        }
    }

    /// Everyone but `own` (pass `None` for a listener who did not contribute), clipped to i16.
    pub fn minus(&self, own: Option<&[i16]>, out: &mut [i16]) {
        match own {
            Some(own) => {
                for ((o, &t), &s) in out.iter_mut().zip(&self.total).zip(own) {
                    *o = (t - i32::from(s)).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
                }
            }
            None => {
                for (o, &t) in out.iter_mut().zip(&self.total) {
                    *o = t.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_never_hears_itself() {
        let a = [1000i16; CHUNK];
        let b = [-300i16; CHUNK];
        let mut mix = Mix::default();
        mix.add(&a);
        mix.add(&b);
        let mut out = [0i16; CHUNK];
        mix.minus(Some(&a), &mut out);
        assert_eq!(out, b);
        mix.minus(None, &mut out);
        assert_eq!(out, [700i16; CHUNK]);
    }

    #[test]
    fn loud_sums_clip_instead_of_wrapping() {
        let mut mix = Mix::default();
        for _ in 0..3 {
            mix.add(&[30_000i16; CHUNK]);
        }
        let mut out = [0i16; CHUNK];
        mix.minus(None, &mut out);
        assert_eq!(out[0], i16::MAX);
    }
}
