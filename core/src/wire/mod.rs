//! Wire protocol v4: audio in QUIC DATAGRAMs ([`audio`]), control on one
//! reliable stream ([`control`]). Every decoder is total: bad input is an
//! error, never a panic (see `tests/wire_fuzz.rs`).

pub mod arrivals;
pub mod audio;
pub mod control;
pub mod varint;

pub use audio::{AudioHeader, AudioLevel, AudioPacket, Redundant};
pub use control::{ClientMsg, ErrorCode, HostAction, ParticipantId, ReceiverReport, Role, RosterEntry, RosterUpdate, ServerMsg};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("input ends before the field it announced")]
    Truncated,
    #[error("unknown wire version {0}")]
    UnknownVersion(u8),
    #[error("reserved header bits are set")]
    ReservedBits,
    #[error("a field is out of its allowed range")]
    OutOfRange,
    #[error("frame of {0} bytes exceeds the limit")]
    Oversize(usize),
    #[error("message does not parse")]
    Malformed,
    #[error("bytes left over after the message")]
    TrailingBytes,
}
