//! # lowband-codec-tests
//!
//! How lowband's audio holds up: finding the shared test material, aligning
//! what a listener heard with what a talker said, scoring it with PESQ-WB
//! (ITU-T P.862.2, the `pesq` crate's `pesq_wb`) and ViSQOL (`visqol-rs`),
//! and the `codec-report` command: link profiles × loss patterns through real
//! Opus, real datagrams and the real receiver.

pub mod channel;
pub mod data;
pub mod plot;
pub mod report;
pub mod score;
