//! The gateway's logic, sans-IO: connections feed control bytes and datagrams
//! in, a mixer tick every 20 ms per room produces each participant's
//! mix-minus, and everything to send is drained from [`Gateway::poll_output`].
//!
//! Contract for the IO shell: after every `handle_*` call, drain
//! `poll_output` until `None`, then sleep until `poll_timeout` and call
//! `handle_timeout` with the current time.

mod room;

use room::{Participant, Room};

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use crate::codec::{CodecError, CHUNK, CHUNK_MS};
use crate::mixer::Mix;
use crate::profile::Profile;
use crate::stream::{ReceiveStream, SendStream};
use crate::time::Time;
use crate::wire::control::{encode_frame, is_valid_name, FrameReader, PROTOCOL_VERSION};
use crate::wire::{ClientMsg, ErrorCode, ParticipantId, Role, RosterEntry, RosterUpdate, ServerMsg};

/// The shell's handle for one connection.
pub type ConnId = u64;

const TICK: Duration = Duration::from_millis(CHUNK_MS as u64);
/// A room this many ticks behind skips ahead rather than bursting.
const MAX_CATCH_UP_TICKS: u32 = 5;

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Sent in Welcome, e.g. "lowband-gateway 0.1.0".
    pub server_name: String,
    /// Profile of every downlink mix.
    pub profile: Profile,
    /// Receive buffer delay for each talker's uplink.
    pub jitter_target: Duration,
    pub max_room_size: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            server_name: format!("lowband-gateway {}", env!("CARGO_PKG_VERSION")),
            profile: Profile::default(),
            jitter_target: Duration::from_millis(80),
            max_room_size: 500,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Datagram { conn: ConnId, data: Vec<u8> },
    Control { conn: ConnId, data: Vec<u8> },
    /// Close the connection after flushing its control stream.
    Close { conn: ConnId, reason: String },
}

/// Counters for operators and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GatewayStats {
    pub rooms: usize,
    pub participants: usize,
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    pub bad_datagrams: u64,
    pub ticks: u64,
    pub skipped_ticks: u64,
}

enum ConnState {
    AwaitHello,
    Greeted { name: String },
    Joined { room: String, id: ParticipantId },
    Closed,
}

struct Conn {
    reader: FrameReader,
    state: ConnState,
}

pub struct Gateway {
    config: GatewayConfig,
    conns: HashMap<ConnId, Conn>,
    rooms: BTreeMap<String, Room>,
    out: VecDeque<Output>,
    stats: GatewayStats,
}

impl Gateway {
    pub fn new(config: GatewayConfig) -> Self {
        Gateway { config, conns: HashMap::new(), rooms: BTreeMap::new(), out: VecDeque::new(), stats: GatewayStats::default() }
    }

    pub fn stats(&self) -> GatewayStats {
        GatewayStats {
            rooms: self.rooms.len(),
            participants: self.rooms.values().map(|r| r.participants.len()).sum(),
            ..self.stats
        }
    }

    /// The roster of a room, for operators and tests.
    pub fn roster(&self, room: &str) -> Vec<RosterEntry> {
        self.rooms.get(room).map(|r| r.participants.values().map(|p| p.entry.clone()).collect()).unwrap_or_default()
    }

    pub fn handle_connect(&mut self, conn: ConnId) {
        self.conns.insert(conn, Conn { reader: FrameReader::default(), state: ConnState::AwaitHello });
    }

    /// Bytes read from the connection's control stream, split anywhere.
    pub fn handle_control(&mut self, now: Time, conn: ConnId, bytes: &[u8]) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        c.reader.push(bytes);
        loop {
            let Some(c) = self.conns.get_mut(&conn) else { return };
            if matches!(c.state, ConnState::Closed) {
                return;
            }
            match c.reader.next::<ClientMsg>() {
                Ok(Some(msg)) => self.on_message(now, conn, msg),
                Ok(None) => return,
                Err(e) => return self.refuse(conn, ErrorCode::Malformed, &format!("control stream: {e}")),
            }
        }
    }

    pub fn handle_datagram(&mut self, now: Time, conn: ConnId, data: &[u8]) {
        self.stats.datagrams_in += 1;
        let Some(Conn { state: ConnState::Joined { room, id }, .. }) = self.conns.get(&conn) else { return };
        let Some(p) = self.rooms.get_mut(room).and_then(|r| r.participants.get_mut(id)) else { return };
        if p.uplink.insert_datagram(now, data).is_none() {
            self.stats.bad_datagrams += 1;
        }
    }

    /// The connection is gone (closed, timed out, or lost).
    pub fn handle_disconnect(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            if let ConnState::Joined { room, id } = c.state {
                self.remove_participant(&room, id);
            }
        }
    }

    /// When the next mixer tick is due.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.rooms.values().map(|r| r.next_tick).min()
    }

    pub fn handle_timeout(&mut self, now: Time) {
        let mut failed = Vec::new();
        for room in self.rooms.values_mut() {
            let mut ticks = 0;
            while room.next_tick <= now {
                if ticks == MAX_CATCH_UP_TICKS {
                    let behind = (now - room.next_tick).as_millis() as u64 / u64::from(CHUNK_MS) + 1;
                    self.stats.skipped_ticks += behind;
                    room.next_tick = room.next_tick + TICK * behind as u32;
                    break;
                }
                failed.extend(room.tick(room.next_tick, &mut self.out, &mut self.stats));
                room.next_tick = room.next_tick + TICK;
                ticks += 1;
            }
        }
        for conn in failed {
            self.refuse(conn, ErrorCode::Malformed, "audio codec failure");
        }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn send(&mut self, conn: ConnId, msg: &ServerMsg) {
        self.out.push_back(Output::Control { conn, data: encode_frame(msg) });
    }

    /// Tells the peer why, then closes it.
    fn refuse(&mut self, conn: ConnId, code: ErrorCode, text: &str) {
        self.send(conn, &ServerMsg::Error { code, text: text.to_string() });
        self.out.push_back(Output::Close { conn, reason: text.to_string() });
        if let Some(c) = self.conns.get_mut(&conn) {
            if let ConnState::Joined { room, id } = std::mem::replace(&mut c.state, ConnState::Closed) {
                self.remove_participant(&room, id);
            }
        }
    }

    fn broadcast(&mut self, room: &str, except: Option<ParticipantId>, msg: &ServerMsg) {
        let Some(r) = self.rooms.get(room) else { return };
        let data = encode_frame(msg);
        for (id, p) in &r.participants {
            if Some(*id) != except {
                self.out.push_back(Output::Control { conn: p.conn, data: data.clone() });
            }
        }
    }

    fn on_message(&mut self, now: Time, conn: ConnId, msg: ClientMsg) {
        let state = &self.conns[&conn].state;
        match (state, msg) {
            (ConnState::AwaitHello, ClientMsg::Hello { version, name, token: _ }) => {
                if version != PROTOCOL_VERSION {
                    let text = format!("gateway speaks protocol {PROTOCOL_VERSION}, client {version}: update the client");
                    return self.refuse(conn, ErrorCode::UnsupportedVersion, &text);
                }
                if !is_valid_name(&name) {
                    return self.refuse(conn, ErrorCode::InvalidName, "name must be 1-64 printable characters");
                }
                self.conns.get_mut(&conn).expect("present").state = ConnState::Greeted { name };
                let welcome = ServerMsg::Welcome { version: PROTOCOL_VERSION, gateway: self.config.server_name.clone() };
                self.send(conn, &welcome);
            }
            (ConnState::Greeted { name }, ClientMsg::Join { room }) => {
                let name = name.clone();
                self.join(now, conn, name, room);
            }
            (ConnState::Joined { room, id }, ClientMsg::SetMuted { muted }) => {
                let (room, id) = (room.clone(), *id);
                if let Some(p) = self.rooms.get_mut(&room).and_then(|r| r.participants.get_mut(&id)) {
                    if p.entry.muted != muted {
                        p.entry.muted = muted;
                        self.broadcast(&room, None, &ServerMsg::Roster(RosterUpdate::Muted { id, muted }));
                    }
                }
            }
            (ConnState::Joined { room, id }, ClientMsg::Leave) => {
                let (room, id) = (room.clone(), *id);
                self.conns.get_mut(&conn).expect("present").state = ConnState::Closed;
                self.remove_participant(&room, id);
                self.out.push_back(Output::Close { conn, reason: "left".into() });
            }
            (_, msg) => {
                let text = format!("unexpected {} in this state", message_name(&msg));
                self.refuse(conn, ErrorCode::BadRequest, &text);
            }
        }
    }

    fn join(&mut self, now: Time, conn: ConnId, name: String, room_name: String) {
        if !is_valid_name(&room_name) {
            return self.refuse(conn, ErrorCode::InvalidName, "room name must be 1-64 printable characters");
        }
        let cfg = &self.config;
        let room = self.rooms.entry(room_name.clone()).or_insert_with(|| Room {
            participants: BTreeMap::new(),
            next_id: 1,
            next_tick: now + TICK,
            mix: Mix::default(),
        });
        if room.participants.len() >= cfg.max_room_size {
            let empty = room.participants.is_empty();
            if empty {
                self.rooms.remove(&room_name);
            }
            return self.refuse(conn, ErrorCode::RoomFull, "the room is full");
        }
        let id = room.next_id;
        let streams = ReceiveStream::new(cfg.profile.decoder_complexity, cfg.jitter_target)
            .and_then(|up| Ok((up, SendStream::new(cfg.profile.clone(), None, false)?)));
        let (uplink, downlink) = match streams {
            Ok(s) => s,
            Err(e) => return self.codec_failure(conn, &room_name, e),
        };
        room.next_id += 1;
        let entry = RosterEntry { id, name, role: Role::Participant, muted: false, hand: None };
        room.participants.insert(id, Participant { conn, entry: entry.clone(), uplink, downlink, chunk: [0; CHUNK], talking: false });
        let roster = room.participants.values().map(|p| p.entry.clone()).collect();
        self.conns.get_mut(&conn).expect("present").state = ConnState::Joined { room: room_name.clone(), id };
        self.send(conn, &ServerMsg::Joined { room: room_name.clone(), you: id, roster });
        self.broadcast(&room_name, Some(id), &ServerMsg::Roster(RosterUpdate::Joined(entry)));
    }

    fn codec_failure(&mut self, conn: ConnId, room: &str, e: CodecError) {
        if self.rooms.get(room).is_some_and(|r| r.participants.is_empty()) {
            self.rooms.remove(room);
        }
        self.refuse(conn, ErrorCode::Malformed, &format!("gateway codec error: {e}"));
    }

    fn remove_participant(&mut self, room: &str, id: ParticipantId) {
        let Some(r) = self.rooms.get_mut(room) else { return };
        if r.participants.remove(&id).is_none() {
            return;
        }
        if r.participants.is_empty() {
            self.rooms.remove(room);
        } else {
            self.broadcast(room, None, &ServerMsg::Roster(RosterUpdate::Left { id }));
        }
    }
}

fn message_name(m: &ClientMsg) -> &'static str {
    match m {
        ClientMsg::Hello { .. } => "Hello",
        ClientMsg::Join { .. } => "Join",
        ClientMsg::SetMuted { .. } => "SetMuted",
        ClientMsg::Leave => "Leave",
        ClientMsg::RaiseHand { .. } => "RaiseHand",
        ClientMsg::Host(_) => "Host",
        ClientMsg::Report(_) => "Report",
    }
}
