//! # lowband-tools
//!
//! Tools for testers and operators, driving the real binaries or the same
//! sans-IO core: `demo` runs a call on loopback and says who heard whom;
//! `sim` runs a call in virtual time over link models; `netem` is a real-time
//! UDP proxy applying the same link models between real clients and a gateway;
//! `load` runs hundreds of synthetic clients against a gateway and measures it;
//! `aec-report` / `ns-report` measure the client's voice processing.

pub mod compare;
pub mod demo;
pub mod handover;
pub mod jitter_report;
pub mod linkargs;
pub mod load;
pub mod netem;
pub mod procs;
pub mod progress;
pub mod quic_model;
pub mod report;
pub mod sim;
pub mod sim_cli;
pub mod voice_report;
pub mod wire;
