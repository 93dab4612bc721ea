//! # lowband-client
//!
//! The clinician's app: joins a room on a lowband gateway over QUIC and
//! talks through the sound card, or headless through WAV files (tests and
//! testers). The protocol and media logic live in [`lowband_core::client`];
//! this crate is IO: quinn, cpal with lock-free rings, hound.

pub mod audio;
pub mod call;
pub mod cli;
pub mod invite;
pub mod status;
pub mod tui;
pub mod trust;

pub use call::{run_call, run_call_controlled, CallCommand, CallControls, CallError, CallOptions, CallReport, CallUpdate};
