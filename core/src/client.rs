//! The client's logic, sans-IO: it speaks the control protocol, encodes
//! captured 20 ms chunks into datagrams and decodes the gateway's mix into
//! 20 ms chunks for playout. The shell feeds it stream bytes, datagrams and
//! audio, and drains [`Client::poll_transmit`] and [`Client::poll_event`].

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::codec::{CodecError, CHUNK};
use crate::profile::Profile;
use crate::jitter::JitterConfig;
use crate::stream::{ChunkKind, ReceiveStats, ReceiveStream, SendStats, SendStream};
use crate::time::Time;
use crate::wire::control::{encode_frame, FrameReader, PROTOCOL_VERSION};
use crate::wire::{ClientMsg, ErrorCode, HostAction, ParticipantId, Role, RosterEntry, RosterUpdate, ServerMsg, WireError};

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub name: String,
    pub room: String,
    pub token: Option<String>,
    pub profile: Profile,
    /// Start delay of the adaptive receive buffer (it adapts from there).
    pub jitter_target: Duration,
}

impl ClientConfig {
    pub fn new(name: impl Into<String>, room: impl Into<String>) -> Self {
        ClientConfig { name: name.into(), room: room.into(), token: None, profile: Profile::default(), jitter_target: Duration::from_millis(80) }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    Datagram(Vec<u8>),
    Control(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    Welcome { gateway: String },
    Joined { you: ParticipantId },
    PeerJoined(RosterEntry),
    PeerLeft(RosterEntry),
    /// Someone's mute state changed (the entry is already updated). When it is
    /// you (a host muted or unmuted you), your microphone follows.
    PeerMuted(RosterEntry),
    /// The gateway refused something; if `code.closes_connection()` the call is over.
    Refused { code: ErrorCode, text: String },
    /// A hand went up (`hand: Some`) or down. See [`Client::hands`] for the queue.
    HandChanged(RosterEntry),
    /// A host changed someone's role (e.g. made them the presenter).
    RoleChanged(RosterEntry),
    RoomLocked { locked: bool },
    /// A host gave this person the floor (hand lowered, unmuted).
    FloorGranted(RosterEntry),
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("gateway sent a malformed control message: {0}")]
    Wire(#[from] WireError),
    #[error("gateway sent {0} before it was expected")]
    Protocol(&'static str),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    pub send: SendStats,
    pub receive: ReceiveStats,
    pub chunks_played: u64,
    pub chunks_audible: u64,
}

pub struct Client {
    reader: FrameReader,
    you: Option<ParticipantId>,
    roster: BTreeMap<ParticipantId, RosterEntry>,
    uplink: SendStream,
    downlink: ReceiveStream,
    muted: bool,
    locked: bool,
    out: VecDeque<Transmit>,
    events: VecDeque<ClientEvent>,
    chunks_played: u64,
    chunks_audible: u64,
    /// Who the gateway says is speaking (for indicators).
    talkers: Vec<ParticipantId>,
}

impl Client {
    /// Queues Hello and Join: the first transmits are ready at once.
    pub fn new(config: ClientConfig) -> Result<Self, CodecError> {
        let mut c = Client {
            reader: FrameReader::default(),
            you: None,
            roster: BTreeMap::new(),
            uplink: SendStream::new(config.profile.clone(), None, true)?,
            downlink: ReceiveStream::with_config(config.profile.decoder_complexity, JitterConfig { initial_target: config.jitter_target, ..JitterConfig::adaptive() })?,
            muted: false,
            locked: false,
            out: VecDeque::new(),
            events: VecDeque::new(),
            chunks_played: 0,
            chunks_audible: 0,
            talkers: Vec::new(),
        };
        c.control(&ClientMsg::Hello { version: PROTOCOL_VERSION, name: config.name, token: config.token });
        c.control(&ClientMsg::Join { room: config.room });
        Ok(c)
    }

    fn control(&mut self, msg: &ClientMsg) {
        self.out.push_back(Transmit::Control(encode_frame(msg)));
    }

    pub fn you(&self) -> Option<ParticipantId> {
        self.you
    }

    pub fn is_joined(&self) -> bool {
        self.you.is_some()
    }

    pub fn roster(&self) -> impl Iterator<Item = &RosterEntry> {
        self.roster.values()
    }

    pub fn stats(&self) -> ClientStats {
        ClientStats {
            send: self.uplink.stats(),
            receive: self.downlink.stats(),
            chunks_played: self.chunks_played,
            chunks_audible: self.chunks_audible,
        }
    }

    /// Participants the gateway is mixing with audible speech right now.
    pub fn talkers(&self) -> &[ParticipantId] {
        &self.talkers
    }

    pub fn is_muted(&self) -> bool {
        self.muted
    }

    /// Mutes locally (nothing is sent) and tells the room.
    pub fn set_muted(&mut self, muted: bool) {
        if self.muted != muted {
            self.muted = muted;
            self.control(&ClientMsg::SetMuted { muted });
        }
    }

    pub fn leave(&mut self) {
        self.control(&ClientMsg::Leave);
    }

    /// Your own roster entry, once joined.
    pub fn me(&self) -> Option<&RosterEntry> {
        self.you.and_then(|id| self.roster.get(&id))
    }

    pub fn entry(&self, id: ParticipantId) -> Option<&RosterEntry> {
        self.roster.get(&id)
    }

    pub fn is_host(&self) -> bool {
        self.me().is_some_and(|e| e.role == Role::Host)
    }

    pub fn is_locked(&self) -> bool {
        self.locked
    }

    /// Raised hands, earliest first: the queue a host grants the floor from.
    pub fn hands(&self) -> Vec<&RosterEntry> {
        let mut h: Vec<&RosterEntry> = self.roster.values().filter(|e| e.hand.is_some()).collect();
        h.sort_by_key(|e| e.hand);
        h
    }

    /// Raises (or lowers) your hand; anyone may.
    pub fn raise_hand(&mut self, raised: bool) {
        self.control(&ClientMsg::RaiseHand { raised });
    }

    /// Sends a host action. The gateway refuses it with `NotPermitted` unless
    /// you are a host; the outcome arrives as roster events for everyone.
    pub fn host(&mut self, action: HostAction) {
        self.control(&ClientMsg::Host(action));
    }

    /// Host: mute or unmute someone (a host mute cannot be lifted by its target).
    pub fn mute_participant(&mut self, id: ParticipantId, muted: bool) {
        self.host(HostAction::Mute { id, muted });
    }

    /// Host: mute everyone except hosts and the presenter.
    pub fn mute_all_but_presenter(&mut self) {
        self.host(HostAction::MuteAllButPresenter);
    }

    /// Host: refuse (or again accept) new joins; hosts with a token still get in.
    pub fn lock_room(&mut self, locked: bool) {
        self.host(HostAction::Lock { locked });
    }

    /// Host: disconnect someone; they cannot rejoin this room while it lasts.
    pub fn remove_participant(&mut self, id: ParticipantId) {
        self.host(HostAction::Remove { id });
    }

    pub fn set_presenter(&mut self, id: ParticipantId) {
        self.host(HostAction::SetPresenter { id });
    }

    /// Host: lower their hand and unmute them.
    pub fn grant_floor(&mut self, id: ParticipantId) {
        self.host(HostAction::GrantFloor { id });
    }

    pub fn handle_control(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.reader.push(bytes);
        while let Some(msg) = self.reader.next::<ServerMsg>()? {
            self.on_message(msg)?;
        }
        Ok(())
    }

    fn on_message(&mut self, msg: ServerMsg) -> Result<(), ClientError> {
        match msg {
            ServerMsg::Welcome { gateway, .. } => self.events.push_back(ClientEvent::Welcome { gateway }),
            ServerMsg::Joined { you, roster, .. } => {
                self.you = Some(you);
                self.roster = roster.into_iter().map(|e| (e.id, e)).collect();
                self.events.push_back(ClientEvent::Joined { you });
            }
            ServerMsg::Roster(update) => {
                if self.you.is_none() {
                    return Err(ClientError::Protocol("a roster update"));
                }
                let event = match update {
                    RosterUpdate::Joined(e) => {
                        self.roster.insert(e.id, e.clone());
                        Some(ClientEvent::PeerJoined(e))
                    }
                    RosterUpdate::Left { id } => self.roster.remove(&id).map(ClientEvent::PeerLeft),
                    RosterUpdate::Muted { id, muted } => {
                        if Some(id) == self.you {
                            // The gateway's roster is the truth: a host mute stops our uplink too.
                            self.muted = muted;
                        }
                        self.roster.get_mut(&id).map(|e| {
                            e.muted = muted;
                            ClientEvent::PeerMuted(e.clone())
                        })
                    }
                    RosterUpdate::Hand { id, hand } => self.roster.get_mut(&id).map(|e| {
                        e.hand = hand;
                        ClientEvent::HandChanged(e.clone())
                    }),
                    RosterUpdate::Role { id, role } => self.roster.get_mut(&id).map(|e| {
                        e.role = role;
                        ClientEvent::RoleChanged(e.clone())
                    }),
                    RosterUpdate::RoomLocked { locked } => {
                        self.locked = locked;
                        Some(ClientEvent::RoomLocked { locked })
                    }
                    RosterUpdate::FloorGranted { id } => self.roster.get(&id).cloned().map(ClientEvent::FloorGranted),
                };
                self.events.extend(event);
            }
            ServerMsg::Error { code, text } => self.events.push_back(ClientEvent::Refused { code, text }),
            ServerMsg::ActiveTalkers { ids } => self.talkers = ids,
            // Issues #3/#7 act on reports.
            ServerMsg::Report(_) => {}
        }
        Ok(())
    }

    pub fn handle_datagram(&mut self, now: Time, data: &[u8]) {
        self.downlink.insert_datagram(now, data);
    }

    /// One captured 20 ms chunk (16 kHz mono). Sent only once joined and while unmuted.
    pub fn push_capture(&mut self, pcm: &[i16]) -> Result<(), CodecError> {
        if self.you.is_none() || self.muted {
            self.uplink.skip_chunk();
            return Ok(());
        }
        if let Some(d) = self.uplink.push_chunk(pcm)? {
            self.out.push_back(Transmit::Datagram(d));
        }
        Ok(())
    }

    /// The next 20 ms chunk to play.
    pub fn pull_playout(&mut self, now: Time, out: &mut [i16]) -> ChunkKind {
        debug_assert_eq!(out.len(), CHUNK);
        let kind = self.downlink.pull_chunk(now, out);
        self.chunks_played += 1;
        if kind != ChunkKind::Silence {
            self.chunks_audible += 1;
        }
        kind
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }
}
