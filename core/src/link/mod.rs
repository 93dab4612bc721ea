//! Network link models for simulation and emulation (sans-IO, seeded).

pub mod mahimahi;
