//! Control messages, v3: one reliable bidirectional QUIC stream per connection
//! carries frames of `varint length` + a postcard-encoded message. The client
//! opens with [`ClientMsg::Hello`] carrying its protocol version; the gateway
//! answers [`ServerMsg::Welcome`] or an [`ErrorCode::UnsupportedVersion`] error.
//! New variants are only ever appended, so older peers fail cleanly on them.
//! v2 added `Codec` both ways (libopus versions, so DRED is used only between
//! identical builds): a v1 peer is refused by version before it could see one.
//! v3 added `loss_runs` to [`ReceiverReport`] (the mean burst sizes protection).
//! v4 added per-packet uplink arrival feedback (`ClientMsg::WantArrivals`,
//! `ServerMsg::Arrivals`), sent only on request: a v4 gateway still admits v3
//! clients, which never ask for it.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::{varint, WireError};

pub const PROTOCOL_VERSION: u16 = 4;
/// Oldest client protocol the gateway still admits (v3 changed `ReceiverReport`).
pub const MIN_PROTOCOL_VERSION: u16 = 3;
/// Largest control frame either side accepts (a 150-person roster is ~8 KiB).
pub const MAX_FRAME: usize = 64 * 1024;
/// Longest participant name and room name, in bytes of UTF-8.
pub const MAX_NAME: usize = 64;

/// Room-local participant id; also the stream id of that participant's audio.
pub type ParticipantId = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Role {
    Host,
    Presenter,
    #[default]
    Participant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterEntry {
    pub id: ParticipantId,
    pub name: String,
    pub role: Role,
    pub muted: bool,
    /// Set while the hand is up: a room-wide counter, so lower was raised earlier.
    pub hand: Option<u32>,
}

/// What a host may do to the room (issue #8 implements them in the gateway).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostAction {
    Mute { id: ParticipantId, muted: bool },
    /// Mutes everyone but the presenter (and hosts).
    MuteAllButPresenter,
    Lock { locked: bool },
    Remove { id: ParticipantId },
    SetPresenter { id: ParticipantId },
    /// Lowers the hand and unmutes the participant.
    GrantFloor { id: ParticipantId },
}

/// What a receiver saw of one audio stream over the last interval: sent
/// periodically by each side about the stream it receives, so the sender can
/// adapt protection, bitrate and packetization (issues #3, #7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ReceiverReport {
    pub interval_ms: u16,
    /// Packets the sequence numbers say were sent in the interval.
    pub expected: u16,
    /// Never arrived.
    pub lost: u16,
    /// Arrived too late to play.
    pub late: u16,
    /// Missing primaries rebuilt from redundancy.
    pub recovered: u16,
    /// Longest run of consecutive losses.
    pub max_burst: u16,
    /// Interarrival jitter, ms.
    pub jitter_ms: u16,
    /// Slope of one-way delay over the interval, ms per second (queues building: > 0).
    pub delay_trend: i16,
    /// Runs of consecutive losses: `lost / loss_runs` is the mean burst, which
    /// sizes burst protection (the longest run alone overstates it on random loss).
    pub loss_runs: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMsg {
    Hello { version: u16, name: String, token: Option<String> },
    Join { room: String },
    SetMuted { muted: bool },
    Leave,
    RaiseHand { raised: bool },
    Host(HostAction),
    Report(ReceiverReport),
    /// The sender's libopus version, after Hello: deep redundancy (DRED) is
    /// an experimental extension, used only between identical builds.
    Codec { libopus: String },
    /// v4: send me [`ServerMsg::Arrivals`] on my uplink (for the link recorder).
    WantArrivals,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RosterUpdate {
    Joined(RosterEntry),
    Left { id: ParticipantId },
    Muted { id: ParticipantId, muted: bool },
    Hand { id: ParticipantId, hand: Option<u32> },
    Role { id: ParticipantId, role: Role },
    RoomLocked { locked: bool },
    FloorGranted { id: ParticipantId },
    /// Their connection dropped and the gateway holds the seat for a grace
    /// period (`true`), or they are back (`false`). A seat not reclaimed in time becomes `Left`.
    Reconnecting { id: ParticipantId, reconnecting: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The peer speaks a protocol version this side does not.
    UnsupportedVersion,
    /// A message arrived that makes no sense in this state (e.g. Join before Hello).
    BadRequest,
    /// Name or room is empty, too long or not printable.
    InvalidName,
    /// Token missing, expired, forged or for another room.
    Unauthorized,
    RoomFull,
    RoomLocked,
    /// The control stream carried bytes that do not parse.
    Malformed,
    /// Only a host may do that.
    NotPermitted,
    /// A host removed this participant.
    Removed,
}

impl ErrorCode {
    /// False for refusals of one request (the call goes on), true when the gateway closes.
    pub fn closes_connection(self) -> bool {
        !matches!(self, ErrorCode::NotPermitted)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerMsg {
    Welcome { version: u16, gateway: String },
    Joined { room: String, you: ParticipantId, roster: Vec<RosterEntry> },
    Roster(RosterUpdate),
    Error { code: ErrorCode, text: String },
    Report(ReceiverReport),
    /// Who is being mixed right now (for speaking indicators), sent on change.
    ActiveTalkers { ids: Vec<ParticipantId> },
    /// The gateway's libopus version, after Welcome (see `ClientMsg::Codec`).
    Codec { libopus: String },
    /// v4, on request: which of the client's uplink packets arrived, and when.
    Arrivals(super::arrivals::Arrivals),
}

/// Encodes one message as a length-prefixed frame.
pub fn encode_frame<M: Serialize>(msg: &M) -> Vec<u8> {
    let body = postcard::to_stdvec(msg).expect("control messages always serialize");
    debug_assert!(body.len() <= MAX_FRAME, "control message over MAX_FRAME");
    let mut out = Vec::with_capacity(body.len() + 4);
    varint::put(&mut out, body.len() as u64);
    out.extend_from_slice(&body);
    out
}

/// Reassembles frames from stream bytes, however they were split.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, `None` if more bytes are needed. After an
    /// error the stream is unusable: the caller closes it.
    pub fn next<M: DeserializeOwned>(&mut self) -> Result<Option<M>, WireError> {
        let (len, rest) = match varint::get(&self.buf) {
            Ok(v) => v,
            Err(WireError::Truncated) => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = usize::try_from(len).map_err(|_| WireError::Oversize(usize::MAX))?;
        if len > MAX_FRAME {
            return Err(WireError::Oversize(len));
        }
        if rest.len() < len {
            return Ok(None);
        }
        let msg = decode_body(&rest[..len])?;
        let used = self.buf.len() - rest.len() + len;
        self.buf.drain(..used);
        Ok(Some(msg))
    }
}

/// Decodes exactly one message body; trailing bytes are an error.
pub fn decode_body<M: DeserializeOwned>(body: &[u8]) -> Result<M, WireError> {
    let (msg, rest) = postcard::take_from_bytes(body).map_err(|_| WireError::Malformed)?;
    if !rest.is_empty() {
        return Err(WireError::TrailingBytes);
    }
    Ok(msg)
}

/// True for a name or room a person could type: 1..=MAX_NAME bytes, no control characters.
pub fn is_valid_name(s: &str) -> bool {
    !s.trim().is_empty() && s.len() <= MAX_NAME && !s.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<ServerMsg> {
        let entry = RosterEntry { id: 3, name: "Dr. Ama".into(), role: Role::Host, muted: false, hand: Some(2) };
        vec![
            ServerMsg::Welcome { version: PROTOCOL_VERSION, gateway: "lowband 0.1".into() },
            ServerMsg::Joined { room: "echo-hiv".into(), you: 4, roster: vec![entry.clone()] },
            ServerMsg::Roster(RosterUpdate::Joined(entry)),
            ServerMsg::Roster(RosterUpdate::Muted { id: 3, muted: true }),
            ServerMsg::Roster(RosterUpdate::Left { id: 3 }),
            ServerMsg::Error { code: ErrorCode::RoomLocked, text: "locked".into() },
            ServerMsg::Report(ReceiverReport { interval_ms: 1000, expected: 25, lost: 3, max_burst: 2, delay_trend: -4, ..Default::default() }),
            ServerMsg::ActiveTalkers { ids: vec![3, 9] },
        ]
    }

    #[test]
    fn frames_survive_being_split_at_every_byte() {
        let stream: Vec<u8> = samples().iter().flat_map(encode_frame).collect();
        for split in 0..stream.len() {
            let mut r = FrameReader::default();
            let mut got = Vec::new();
            for part in [&stream[..split], &stream[split..]] {
                r.push(part);
                while let Some(m) = r.next::<ServerMsg>().unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got, samples());
        }
    }

    #[test]
    fn an_oversize_length_is_refused_before_buffering() {
        let mut r = FrameReader::default();
        let mut hdr = Vec::new();
        varint::put(&mut hdr, (MAX_FRAME + 1) as u64);
        r.push(&hdr);
        assert_eq!(r.next::<ClientMsg>(), Err(WireError::Oversize(MAX_FRAME + 1)));
    }

    #[test]
    fn trailing_bytes_in_a_frame_are_refused() {
        let mut body = postcard::to_stdvec(&ClientMsg::Leave).unwrap();
        body.push(0);
        assert_eq!(decode_body::<ClientMsg>(&body), Err(WireError::TrailingBytes));
    }

    #[test]
    fn names_must_be_printable_and_short() {
        assert!(is_valid_name("Clinic 7 — Dr. Bùi"));
        assert!(!is_valid_name(" "));
        assert!(!is_valid_name("a\u{7}b"));
        assert!(!is_valid_name(&"x".repeat(MAX_NAME + 1)));
    }
}
