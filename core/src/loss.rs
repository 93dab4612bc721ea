//! Seeded packet-loss models: each answers "is the next packet lost?".
//! Deterministic for a given seed (see [`crate::rng`]), so a lossy run replays exactly.

use crate::rng::Rng;

pub trait LossModel {
    /// Decides the fate of the next packet.
    fn lose_next(&mut self) -> bool;
}

/// Independent losses with probability `p`.
#[derive(Debug, Clone)]
pub struct Bernoulli {
    p: f64,
    rng: Rng,
}

impl Bernoulli {
    pub fn new(p: f64, seed: u64) -> Self {
        Bernoulli { p: p.clamp(0.0, 1.0), rng: Rng::new(seed) }
    }
}

impl LossModel for Bernoulli {
    fn lose_next(&mut self) -> bool {
        self.rng.chance(self.p)
    }
}

/// Gilbert-Elliott: a two-state Markov chain. `p` = P(good → bad), `r` =
/// P(bad → good); in the bad state packets are lost with `loss_bad`, in the
/// good state with `loss_good`. Mean burst length is about 1/r.
#[derive(Debug, Clone)]
pub struct GilbertElliott {
    pub p: f64,
    pub r: f64,
    pub loss_bad: f64,
    pub loss_good: f64,
    bad: bool,
    rng: Rng,
}

impl GilbertElliott {
    pub fn new(p: f64, r: f64, loss_bad: f64, loss_good: f64, seed: u64) -> Self {
        GilbertElliott { p, r, loss_bad, loss_good, bad: false, rng: Rng::new(seed) }
    }

    /// The simple Gilbert model with a given mean loss rate and mean burst
    /// length (in packets): every packet in the bad state is lost.
    pub fn with_mean(loss_rate: f64, mean_burst: f64, seed: u64) -> Self {
        let loss_rate = loss_rate.clamp(0.0, 0.99);
        let r = 1.0 / mean_burst.max(1.0);
        // Stationary P(bad) = p / (p + r) = loss_rate.
        let p = r * loss_rate / (1.0 - loss_rate);
        GilbertElliott::new(p, r, 1.0, 0.0, seed)
    }

    /// Long-run fraction of packets lost.
    pub fn mean_loss(&self) -> f64 {
        let pb = self.p / (self.p + self.r);
        pb * self.loss_bad + (1.0 - pb) * self.loss_good
    }
}

impl LossModel for GilbertElliott {
    fn lose_next(&mut self) -> bool {
        self.bad = if self.bad { !self.rng.chance(self.r) } else { self.rng.chance(self.p) };
        self.rng.chance(if self.bad { self.loss_bad } else { self.loss_good })
    }
}

/// Replays a recorded loss sequence (true = lost), looping.
#[derive(Debug, Clone)]
pub struct Replay {
    pattern: Vec<bool>,
    next: usize,
}

impl Replay {
    pub fn new(pattern: Vec<bool>) -> Self {
        Replay { pattern, next: 0 }
    }
}

impl LossModel for Replay {
    fn lose_next(&mut self) -> bool {
        if self.pattern.is_empty() {
            return false;
        }
        let lost = self.pattern[self.next];
        self.next = (self.next + 1) % self.pattern.len();
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(m: &mut dyn LossModel, n: usize) -> Vec<bool> {
        (0..n).map(|_| m.lose_next()).collect()
    }

    #[test]
    fn gilbert_elliott_hits_its_mean_loss_and_burst_length() {
        let mut ge = GilbertElliott::with_mean(0.2, 3.0, 11);
        let seq = run(&mut ge, 200_000);
        let lost = seq.iter().filter(|&&l| l).count() as f64 / seq.len() as f64;
        let bursts = seq.windows(2).filter(|w| !w[0] && w[1]).count() as f64;
        let mean_burst = seq.iter().filter(|&&l| l).count() as f64 / bursts;
        assert!((lost - 0.2).abs() < 0.01, "loss {lost}");
        assert!((mean_burst - 3.0).abs() < 0.2, "burst {mean_burst}");
    }

    #[test]
    fn the_same_seed_loses_the_same_packets() {
        let a = run(&mut Bernoulli::new(0.1, 5), 1000);
        let b = run(&mut Bernoulli::new(0.1, 5), 1000);
        assert_eq!(a, b);
        assert_ne!(a, run(&mut Bernoulli::new(0.1, 6), 1000));
    }

    #[test]
    fn a_replay_loops_its_pattern() {
        let mut r = Replay::new(vec![true, false, false]);
        assert_eq!(run(&mut r, 6), vec![true, false, false, true, false, false]);
    }
}
