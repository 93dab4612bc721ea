//! # lowband-core
//!
//! Everything lowband decides, with no IO: the wire protocol, Opus codec
//! profiles, receive buffers, the mix-minus mixer and the gateway's and
//! client's state machines. No sockets, threads, clocks or devices: time is
//! passed in as a [`Time`], and whatever must be sent is polled out. The same
//! code runs in the real gateway and client, and in virtual time in the
//! simulator, where an hour of call takes seconds and a seed fixes every byte.
//!
//! The driving contract, for both [`gateway::Gateway`] and [`client::Client`]:
//! feed every input through a `handle_*` call, then drain the `poll_*`
//! methods until they return `None`; for the gateway, call
//! `handle_timeout(now)` once `now` reaches `poll_timeout()`.
//!
//! All audio is 16 kHz mono `i16`, moved in 20 ms chunks ([`codec::CHUNK`]).

pub mod adapt;
pub mod client;
pub mod codec;
pub mod feedback;
pub mod gateway;
pub mod invite;
pub mod jitter;
pub mod link;
pub mod loss;
pub mod mixer;
pub mod profile;
pub mod protect;
pub mod rng;
pub mod stream;
pub mod stretch;
pub mod time;
pub mod token;
pub mod wire;

pub use time::Time;
