//! # lowband-tools
//!
//! Tools for testers and operators, driving the real binaries or the same
//! sans-IO core: `demo` runs a call on loopback and says who heard whom.

pub mod demo;
pub mod procs;
pub mod wire;
