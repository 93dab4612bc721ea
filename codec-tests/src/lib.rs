//! # lowband-codec-tests
//!
//! How lowband's audio holds up: finding the shared test material, aligning
//! what a listener heard with what a talker said, and scoring it with
//! PESQ-WB (ITU-T P.862.2, the `pesq` crate's `pesq_wb`).

pub mod data;
pub mod score;
