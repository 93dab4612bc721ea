//! Where the call's audio comes from and goes to: the sound card ([`device`])
//! or WAV files paced in real time ([`wav`]). Both hand the call driver the
//! same thing: 16 kHz mono, captured in 20 ms chunks and played in steps of
//! [`PLAYOUT_STEP`] (the client pulls its receive buffer that finely).

pub mod device;
pub mod process;
pub mod resample;
pub mod wav;

use std::time::Duration;

pub use lowband_core::client::{PLAYOUT_STEP, PLAYOUT_STEP_MS};

/// A source of 20 ms chunks and sink of playout steps, polled by the call driver every few ms.
pub trait AudioIo {
    /// Fills `out` with the next captured chunk if one is ready at `now` (time since the call started).
    fn capture(&mut self, now: Duration, out: &mut [i16]) -> bool;
    /// True while the output wants another step of [`PLAYOUT_STEP`] samples at `now`.
    fn wants_playout(&mut self, now: Duration) -> bool;
    /// Plays one step (any length works; the driver hands [`PLAYOUT_STEP`]).
    fn play(&mut self, step: &[i16]) -> std::io::Result<()>;
    /// Flushes whatever was played; called once at the end.
    fn finish(&mut self) -> std::io::Result<()>;
}
