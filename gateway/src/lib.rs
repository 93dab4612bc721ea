//! # lowband-gateway
//!
//! The hub's audio mixer: a QUIC server (quinn + tokio) that gives every
//! spoke one mix of everyone else. All decisions live in
//! [`lowband_core::gateway`]; this crate only moves bytes and reads the clock.

pub mod cert;
pub mod cli;
pub mod config;
pub mod server;

pub use config::Config;
pub use server::{Server, ServerError};
