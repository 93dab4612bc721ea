//! # lowband-gateway
//!
//! The hub's audio mixer: a QUIC server (quinn + tokio) that gives every
//! spoke one mix of everyone else. All decisions live in
//! [`lowband_core::gateway`]; this crate only moves bytes and reads the clock.

pub mod archive;
pub mod attendance;
pub mod cert;
pub mod cli;
pub mod config;
pub mod keys;
pub mod ogg;
pub mod ops;
pub mod recorder;
pub mod server;

pub use config::Config;
pub use server::{Server, ServerError};
