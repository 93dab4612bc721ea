//! The gateway's logic, sans-IO: connections feed control bytes and datagrams
//! in, a mixer tick every 20 ms per room produces each participant's
//! mix-minus, and everything to send is drained from [`Gateway::poll_output`].
//!
//! Contract for the IO shell: after every `handle_*` call, drain
//! `poll_output` until `None`, then sleep until `poll_timeout` and call
//! `handle_timeout` with the current time.

mod floor;
mod link;
mod room;
mod seats;

pub use floor::{AttendanceEvent, Presence};
use room::{MixConfig, Participant, Room};

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use crate::codec::{CodecError, CHUNK, CHUNK_MS};
use crate::jitter::JitterConfig;
use crate::profile::Profile;
use crate::stream::ReceiveStream;
use crate::time::Time;
use crate::token::{self, TokenError};
use crate::wire::control::{encode_frame, is_valid_name, FrameReader, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};
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
    /// Downlink tiers, richest first: each listener hears one, chosen by
    /// [`Gateway::set_downlink_tier`]; each tier costs one shared encode per room.
    pub tiers: Vec<Profile>,
    /// Index into `tiers` of the tier a new participant starts on.
    pub default_tier: usize,
    /// Most talkers mixed at once (the presenter takes one of the slots).
    pub max_talkers: usize,
    /// A talker stays selected this long after their last speech packet.
    pub talker_hangover: Duration,
    /// Decoder complexity for talkers' uplinks: ≥ 5 deep PLC, 6 LACE, 7
    /// NoLACE. The neural stages are a large share of a busy gateway's CPU.
    pub uplink_decoder_complexity: u8,
    /// Start delay of each talker's adaptive uplink buffer (it adapts from there).
    pub jitter_target: Duration,
    pub max_room_size: usize,
    /// Signs join tokens; with it, a token given at join is checked (and its role used).
    pub token_key: Option<TokenKey>,
    /// Refuse joins without a valid token. Without it, rooms are open: the
    /// first person in an empty room becomes its host (for quick tests).
    pub require_tokens: bool,
    /// Unix time in ms at `Time::ZERO`, so token expiry and attendance get wall-clock times.
    pub unix_ms_at_zero: u64,
    /// Emit each room's full mix as [`Output::Recording`].
    pub record: bool,
    /// Each listener's reports move it among the `tiers` (issue #7); off, tiers are set by hand only.
    pub adapt_downlink: bool,
    /// How long a lost connection's seat is held for a reconnect (zero: none).
    pub seat_grace: Duration,
    /// Delay of the first receiver report past one interval: where the 1 s report
    /// grid falls (a real gateway's is wherever its start puts it; `sim` varies it).
    pub report_phase: Duration,
    /// Rooms tick on the 20 ms grid through this time instead of 20 ms after
    /// their first join: `sim` puts them on its clients' audio grid, so the
    /// mixer and the clients' audio steps can run side by side.
    pub tick_grid: Option<Time>,
}

/// The built-in downlink tiers: the link profile ladder (`2g`, `edge`, `3g`,
/// `good`, leanest first; see [`Profile::named`]). The mixer's encoders use a
/// tier's Opus settings (frame length, bitrate, in-band FEC); the ladder's
/// RED copies and DRED are not added to shared mixes.
pub fn default_tiers() -> Vec<Profile> {
    Profile::ladder()
}

/// The tier a new listener starts on when nothing says otherwise.
pub const DEFAULT_TIER: &str = "3g";

/// [`Gateway::set_downlink_tier`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TierError {
    #[error("no downlink tier named {0:?}")]
    UnknownTier(String),
    #[error("connection {0} is not in a room")]
    NotJoined(ConnId),
}

/// The HMAC key for join tokens (redacted in debug output).
#[derive(Clone)]
pub struct TokenKey(pub Vec<u8>);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            server_name: format!("lowband-gateway {}", env!("CARGO_PKG_VERSION")),
            tiers: default_tiers(),
            default_tier: default_tiers().iter().position(|p| p.name == DEFAULT_TIER).unwrap_or(0),
            max_talkers: 3,
            talker_hangover: Duration::from_millis(600),
            uplink_decoder_complexity: 5,
            jitter_target: Duration::from_millis(80),
            max_room_size: 500,
            token_key: None,
            require_tokens: false,
            unix_ms_at_zero: 0,
            record: false,
            adapt_downlink: true,
            seat_grace: Duration::from_secs(60),
            report_phase: Duration::ZERO,
            tick_grid: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Datagram { conn: ConnId, data: Vec<u8> },
    Control { conn: ConnId, data: Vec<u8> },
    /// Close the connection after flushing its control stream.
    Close { conn: ConnId, reason: String },
    /// Someone joined or left a room: the shell appends it to the attendance journal.
    Attendance(AttendanceEvent),
    /// 20 ms of a room's full mix (everyone who talks), when recording is on.
    Recording { room: String, pcm: Vec<i16> },
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
    Greeted { name: String, token: Option<String> },
    Joined { room: String, id: ParticipantId },
    Closed,
}

struct Conn {
    reader: FrameReader,
    state: ConnState,
    /// The client runs our libopus, so its uplink may carry DRED.
    dred: bool,
    /// The client asked for per-packet arrival feedback on its uplink.
    arrivals: bool,
}

pub struct Gateway {
    config: GatewayConfig,
    conns: HashMap<ConnId, Conn>,
    rooms: BTreeMap<String, Room>,
    out: VecDeque<Output>,
    stats: GatewayStats,
    /// Latest time handed in: stamps events from calls that carry no time (disconnects).
    last_now: Time,
    links: link::Links,
    held: BTreeMap<(String, ParticipantId), seats::Held>,
}

impl Gateway {
    pub fn new(mut config: GatewayConfig) -> Self {
        if config.tiers.is_empty() {
            config.tiers = default_tiers();
        }
        config.default_tier = config.default_tier.min(config.tiers.len() - 1);
        Gateway {
            config,
            conns: HashMap::new(),
            rooms: BTreeMap::new(),
            out: VecDeque::new(),
            stats: GatewayStats::default(),
            last_now: Time::ZERO,
            links: link::Links::default(),
            held: BTreeMap::new(),
        }
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
        self.conns.insert(conn, Conn { reader: FrameReader::default(), state: ConnState::AwaitHello, dred: false, arrivals: false });
    }

    /// Bytes read from the connection's control stream, split anywhere.
    pub fn handle_control(&mut self, now: Time, conn: ConnId, bytes: &[u8]) {
        self.last_now = self.last_now.max(now);
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
        self.last_now = self.last_now.max(now);
        let Some(Conn { state: ConnState::Joined { room, id }, .. }) = self.conns.get(&conn) else { return };
        let Some(p) = self.rooms.get_mut(room).and_then(|r| r.participants.get_mut(id)) else { return };
        match p.uplink.insert_datagram(now, data) {
            Some(header) => {
                p.heard(now, &header);
                self.link_on_datagram(now, conn, &header);
            }
            None => self.stats.bad_datagrams += 1,
        }
    }

    /// The connection is gone (closed, timed out, or lost).
    pub fn handle_disconnect(&mut self, conn: ConnId) {
        self.links.by_conn.remove(&conn);
        if let Some(c) = self.conns.remove(&conn) {
            if let ConnState::Joined { room, id } = c.state {
                self.hold_seat(&room, id);
            }
        }
    }

    /// When the next mixer tick is due.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.rooms.values().map(|r| r.next_tick).min()
    }

    pub fn handle_timeout(&mut self, now: Time) {
        self.last_now = self.last_now.max(now);
        let mut failed = Vec::new();
        let mut talkers = Vec::new();
        let mix = MixConfig { tiers: &self.config.tiers, max_talkers: self.config.max_talkers, hangover: self.config.talker_hangover };
        for (name, room) in self.rooms.iter_mut() {
            let mut ticks = 0;
            while room.next_tick <= now {
                if ticks == MAX_CATCH_UP_TICKS {
                    let behind = (now - room.next_tick).as_millis() as u64 / u64::from(CHUNK_MS) + 1;
                    self.stats.skipped_ticks += behind;
                    room.next_tick = room.next_tick + TICK * behind as u32;
                    room.skip_chunks(behind);
                    break;
                }
                let outcome = room.tick(room.next_tick, &mix, &mut self.out, &mut self.stats);
                failed.extend(outcome.failed);
                if let Some(ids) = outcome.talkers {
                    talkers.push((name.clone(), ids));
                }
                if self.config.record {
                    // The full mix: everyone who talked this tick, nobody minus.
                    let mut pcm = vec![0; CHUNK];
                    room.mix.minus(None, &mut pcm);
                    self.out.push_back(Output::Recording { room: name.clone(), pcm });
                }
                room.next_tick = room.next_tick + TICK;
                ticks += 1;
            }
        }
        for conn in failed {
            self.refuse(conn, ErrorCode::Malformed, "audio codec failure");
        }
        for (room, ids) in talkers {
            self.broadcast(&room, None, &ServerMsg::ActiveTalkers { ids });
        }
        self.link_timeout(now);
        self.expire_seats(now);
    }

    /// The downlink tiers' names, richest first.
    pub fn downlink_tiers(&self) -> impl Iterator<Item = &str> {
        self.config.tiers.iter().map(|p| p.name.as_str())
    }

    /// The tier a connection hears (or will hear, after a pending switch).
    pub fn downlink_tier(&self, conn: ConnId) -> Option<&str> {
        let Some(Conn { state: ConnState::Joined { room, id }, .. }) = self.conns.get(&conn) else { return None };
        let p = self.rooms.get(room)?.participants.get(id)?;
        Some(self.config.tiers[p.tier()].name.as_str())
    }

    /// Moves a listener to another downlink tier mid-call. The switch lands
    /// at the next frame boundary the two tiers share (at most 120 ms later),
    /// so no frame is cut; a talker's own encoder is reconfigured, keeping its state.
    pub fn set_downlink_tier(&mut self, conn: ConnId, tier: &str) -> Result<(), TierError> {
        let index = self.config.tiers.iter().position(|p| p.name == tier).ok_or_else(|| TierError::UnknownTier(tier.to_string()))?;
        let Some(Conn { state: ConnState::Joined { room, id }, .. }) = self.conns.get(&conn) else { return Err(TierError::NotJoined(conn)) };
        let p = self.rooms.get_mut(room).and_then(|r| r.participants.get_mut(id)).ok_or(TierError::NotJoined(conn))?;
        p.set_tier(index);
        Ok(())
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        loop {
            let out = self.out.pop_front()?;
            // A listener whose downlink breaker tripped gets no audio until a probe.
            if !matches!(&out, Output::Datagram { conn, .. } if self.link_paused(*conn)) {
                return Some(out);
            }
        }
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
                self.remove_participant(&room, id, Presence::Dropped);
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
            (ConnState::AwaitHello, ClientMsg::Hello { version, name, token }) => {
                if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&version) {
                    let text = format!("gateway speaks protocol {MIN_PROTOCOL_VERSION}-{PROTOCOL_VERSION}, client {version}: update the client");
                    return self.refuse(conn, ErrorCode::UnsupportedVersion, &text);
                }
                if !is_valid_name(&name) {
                    return self.refuse(conn, ErrorCode::InvalidName, "name must be 1-64 printable characters");
                }
                self.conns.get_mut(&conn).expect("present").state = ConnState::Greeted { name, token };
                let welcome = ServerMsg::Welcome { version: PROTOCOL_VERSION, gateway: self.config.server_name.clone() };
                self.send(conn, &welcome);
                self.send(conn, &ServerMsg::Codec { libopus: crate::codec::libopus_version().into() });
            }
            (ConnState::Greeted { name, token }, ClientMsg::Join { room }) => {
                let (name, token) = (name.clone(), token.clone());
                self.join(now, conn, name, token, room);
            }
            (ConnState::Joined { room, id }, ClientMsg::SetMuted { muted }) => {
                let (room, id) = (room.clone(), *id);
                self.self_mute(conn, &room, id, muted);
            }
            (ConnState::Joined { room, id }, ClientMsg::RaiseHand { raised }) => {
                let (room, id) = (room.clone(), *id);
                self.raise_hand(&room, id, raised);
            }
            (ConnState::Joined { room, id }, ClientMsg::Host(action)) => {
                let (room, id) = (room.clone(), *id);
                self.host_action(now, conn, &room, id, action);
            }
            (ConnState::Joined { room, id }, ClientMsg::Report(r)) => {
                let (room, id) = (room.clone(), *id);
                if let Some(p) = self.rooms.get_mut(&room).and_then(|r| r.participants.get_mut(&id)) {
                    p.set_downlink_loss((u32::from(r.lost) * 100 / u32::from(r.expected.max(1))).min(100) as u8);
                }
                self.link_on_report(now, conn, &r)
            }
            (ConnState::Greeted { .. }, ClientMsg::Codec { libopus }) => {
                self.conns.get_mut(&conn).expect("present").dred = crate::protect::dred_compatible(&libopus);
            }
            (ConnState::Greeted { .. } | ConnState::Joined { .. }, ClientMsg::WantArrivals) => {
                self.conns.get_mut(&conn).expect("present").arrivals = true;
                self.link_want_arrivals(conn);
            }
            (ConnState::Joined { room, id }, ClientMsg::Leave) => {
                let (room, id) = (room.clone(), *id);
                self.conns.get_mut(&conn).expect("present").state = ConnState::Closed;
                self.remove_participant(&room, id, Presence::Left);
                self.out.push_back(Output::Close { conn, reason: "left".into() });
            }
            (_, msg) => {
                let text = format!("unexpected {} in this state", message_name(&msg));
                self.refuse(conn, ErrorCode::BadRequest, &text);
            }
        }
    }

    /// Unix seconds at `now`, for token expiry.
    fn unix_secs(&self, now: Time) -> u64 {
        (self.config.unix_ms_at_zero + now.as_micros() / 1000) / 1000
    }

    /// The name and role a join gets: from a valid token, or open-room defaults.
    fn admit(&self, now: Time, name: String, token: Option<&str>, room: &str) -> Result<(String, Option<Role>), TokenError> {
        let key = self.config.token_key.as_ref();
        match (token, key) {
            (Some(t), Some(key)) => token::verify(&key.0, t, room, self.unix_secs(now)).map(|c| (c.name, Some(c.role))),
            (None, _) if self.config.require_tokens => Err(TokenError::Missing),
            (Some(_), None) if self.config.require_tokens => Err(TokenError::BadSignature),
            _ => Ok((name, None)),
        }
    }

    fn join(&mut self, now: Time, conn: ConnId, name: String, token: Option<String>, room_name: String) {
        if !is_valid_name(&room_name) {
            return self.refuse(conn, ErrorCode::InvalidName, "room name must be 1-64 printable characters");
        }
        let (name, token_role) = match self.admit(now, name, token.as_deref(), &room_name) {
            Ok(v) => v,
            Err(e) => return self.refuse(conn, ErrorCode::Unauthorized, &e.to_string()),
        };
        if let Some(id) = self.reclaimable_seat(now, &room_name, &name, token_role.is_some()) {
            return self.reclaim_seat(now, conn, &room_name, id);
        }
        let cfg = &self.config;
        if let Some(r) = self.rooms.get(&room_name) {
            if r.floor.removed.contains(&name) {
                return self.refuse(conn, ErrorCode::Removed, "a host removed you from this room");
            }
            if r.floor.locked && token_role != Some(Role::Host) {
                return self.refuse(conn, ErrorCode::RoomLocked, "the room is locked: the host is not letting anyone else in");
            }
        }
        let tiers = cfg.tiers.len();
        let start_rung = self.rung_of_tier(cfg.default_tier.min(tiers.saturating_sub(1)));
        let cfg = &self.config;
        let first_tick = match cfg.tick_grid {
            Some(grid) if grid > now => grid,
            Some(grid) => grid + TICK * ((now - grid).as_micros() / TICK.as_micros() + 1) as u32,
            None => now + TICK,
        };
        let room = self.rooms.entry(room_name.clone()).or_insert_with(|| Room::new(first_tick, tiers));
        if room.participants.len() >= cfg.max_room_size {
            let empty = room.participants.is_empty();
            if empty {
                self.rooms.remove(&room_name);
            }
            return self.refuse(conn, ErrorCode::RoomFull, "the room is full");
        }
        // Open rooms: whoever opens the room runs it.
        let role = token_role.unwrap_or(if room.participants.is_empty() { Role::Host } else { Role::Participant });
        let id = room.next_id;
        let tier = cfg.default_tier.min(cfg.tiers.len().saturating_sub(1));
        let jitter = JitterConfig { initial_target: cfg.jitter_target, ..JitterConfig::adaptive() };
        let dred = self.conns.get(&conn).is_some_and(|c| c.dred);
        let uplink = match ReceiveStream::with_config(cfg.uplink_decoder_complexity, jitter).and_then(|mut s| {
            // The mix takes speech only (room.rs), so comfort noise need not be concealed.
            s.drop_comfort_noise();
            if dred {
                s.enable_dred()?;
            }
            Ok(s)
        }) {
            Ok(s) => s,
            Err(e) => return self.codec_failure(conn, &room_name, e),
        };
        room.next_id += 1;
        if cfg.adapt_downlink {
            let mut l = link::SeatLink::new(cfg.tiers.len(), start_rung);
            l.last_heard = now;
            if self.conns.get(&conn).is_some_and(|c| c.arrivals) {
                l.arrivals = Some(Default::default());
            }
            self.links.by_conn.insert(conn, l);
        }
        let entry = RosterEntry { id, name, role, muted: false, hand: None };
        room.participants.insert(id, Participant::new(conn, entry.clone(), uplink, tier, dred));
        let roster = room.participants.values().map(|p| p.entry.clone()).collect();
        self.conns.get_mut(&conn).expect("present").state = ConnState::Joined { room: room_name.clone(), id };
        self.send(conn, &ServerMsg::Joined { room: room_name.clone(), you: id, roster });
        if self.rooms.get(&room_name).is_some_and(|r| r.floor.locked) {
            self.send(conn, &ServerMsg::Roster(RosterUpdate::RoomLocked { locked: true }));
        }
        self.attendance(now, &room_name, &entry, Presence::Joined);
        self.broadcast(&room_name, Some(id), &ServerMsg::Roster(RosterUpdate::Joined(entry)));
    }

    fn codec_failure(&mut self, conn: ConnId, room: &str, e: CodecError) {
        if self.rooms.get(room).is_some_and(|r| r.participants.is_empty()) {
            self.rooms.remove(room);
        }
        self.refuse(conn, ErrorCode::Malformed, &format!("gateway codec error: {e}"));
    }

    fn remove_participant(&mut self, room: &str, id: ParticipantId, why: Presence) {
        let Some(entry) = self.rooms.get(room).and_then(|r| r.participants.get(&id)).map(|p| p.entry.clone()) else { return };
        let now = self.last_now;
        self.attendance(now, room, &entry, why);
        self.unseat(room, id);
    }

    /// Takes the seat out of the room and tells everyone (no attendance record).
    fn unseat(&mut self, room: &str, id: ParticipantId) {
        self.held.remove(&(room.to_string(), id));
        let Some(r) = self.rooms.get_mut(room) else { return };
        let Some(p) = r.remove(id) else { return };
        r.floor.host_muted.remove(&id);
        self.links.by_conn.remove(&p.conn);
        let Some(r) = self.rooms.get(room) else { return };
        if r.participants.is_empty() {
            self.rooms.remove(room);
        } else {
            self.broadcast(room, None, &ServerMsg::Roster(RosterUpdate::Left { id }));
            self.keep_a_host(room);
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
        ClientMsg::Codec { .. } => "Codec",
        ClientMsg::WantArrivals => "WantArrivals",
    }
}
