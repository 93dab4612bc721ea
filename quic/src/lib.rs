//! # lowband-quic
//!
//! The QUIC settings and trust model the gateway and the client share, so
//! the two ends can never drift apart:
//! - [`transport_config`]: quinn tuned for 2G/3G links (see `../shared/design/FACTS.md`);
//! - [`client_endpoint`]: zero-length client connection ids;
//! - [`FingerprintVerifier`]: the client trusts a gateway's self-signed
//!   certificate by its SHA-256 fingerprint, not by a CA;
//! - [`MediaFloor`]: congestion control that never starves a small audio flow;
//! - [`WireBytes`]: bytes as IPv4 packets on the wire, from quinn's counters.

mod congestion;
mod trust;
mod tuning;

pub use congestion::{MediaFloor, MediaFloorConfig};
pub use trust::{fingerprint, parse_fingerprint, FingerprintError, FingerprintVerifier};
pub use tuning::{client_endpoint, server_endpoint, GATEWAY_CID_LEN, path_stats, shared_transport, transport_config, WireBytes, ALPN, IPV4_UDP_OVERHEAD};
