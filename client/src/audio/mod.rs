//! Where the call's audio comes from and goes to: the sound card ([`device`])
//! or WAV files paced in real time ([`wav`]). Both hand the call driver the
//! same thing: 20 ms chunks of 16 kHz mono.

pub mod device;
pub mod process;
pub mod resample;
pub mod wav;

use std::time::Duration;

/// A source and sink of 20 ms chunks, polled by the call driver every few ms.
pub trait AudioIo {
    /// Fills `out` with the next captured chunk if one is ready at `now` (time since the call started).
    fn capture(&mut self, now: Duration, out: &mut [i16]) -> bool;
    /// True while the output wants another chunk at `now`.
    fn wants_playout(&mut self, now: Duration) -> bool;
    fn play(&mut self, chunk: &[i16]) -> std::io::Result<()>;
    /// Flushes whatever was played; called once at the end.
    fn finish(&mut self) -> std::io::Result<()>;
}
