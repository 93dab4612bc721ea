//! Network link models for simulation and emulation (sans-IO, seeded).

pub mod atc;
pub mod mahimahi;
pub mod model;
pub mod record;

pub use model::{Capacity, Link, LinkConfig, LinkStats, LossSpec, Outage, QueueLimit};
