//! The client's logic, sans-IO: it speaks the control protocol, encodes
//! captured 20 ms chunks into datagrams and decodes the gateway's mix into
//! 10 ms steps of playout ([`PLAYOUT_STEP`]). The shell feeds it stream bytes, datagrams and
//! audio, and drains [`Client::poll_transmit`] and [`Client::poll_event`].

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::adapt::{AdaptConfig, Decision, PathSignal, RateAdapter};
use crate::codec::{CodecError, CHUNK};
use crate::feedback::{residual_loss, LinkQuality, PathStats, ReportBuilder, REPORT_INTERVAL};
use crate::profile::Profile;
use crate::jitter::JitterConfig;
use crate::stream::{ChunkKind, ReceiveStats, ReceiveStream, SendStats, SendStream};
use crate::time::Time;
use crate::wire::arrivals::Arrivals;
use crate::wire::control::{encode_frame, FrameReader, PROTOCOL_VERSION};
use crate::wire::{ClientMsg, ErrorCode, HostAction, ParticipantId, ReceiverReport, Role, RosterEntry, RosterUpdate, ServerMsg, WireError};

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub name: String,
    pub room: String,
    pub token: Option<String>,
    /// Uplink profiles, richest first. With `adapt`, the client moves among
    /// them from the gateway's reports; without, it stays on `start_rung`.
    pub ladder: Vec<Profile>,
    pub start_rung: usize,
    pub adapt: Option<AdaptConfig>,
    /// Start delay of the adaptive receive buffer (it adapts from there).
    pub jitter_target: Duration,
    /// Ask the gateway for per-packet arrival feedback on the uplink (for the
    /// link recorder; costs the downlink a byte or two per uplink packet).
    pub arrival_feedback: bool,
}

impl ClientConfig {
    pub fn new(name: impl Into<String>, room: impl Into<String>) -> Self {
        ClientConfig {
            name: name.into(),
            room: room.into(),
            token: None,
            ladder: crate::adapt::ladder(),
            // "3g": safe on most links; one lossy report moves it down within a second.
            start_rung: 1,
            adapt: Some(AdaptConfig::default()),
            jitter_target: Duration::from_millis(80),
            arrival_feedback: false,
        }
    }

    /// Stays on one profile (no adaptation).
    pub fn fixed(mut self, profile: Profile) -> Self {
        self.ladder = vec![profile];
        self.start_rung = 0;
        self.adapt = None;
        self
    }
}

/// What the client shows about its link (issue #7): one line in a status bar.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkStatus {
    pub quality: LinkQuality,
    /// Name of the uplink profile in use.
    pub profile: String,
    /// Even the leanest profile did not get through: only listening for now.
    pub receive_only: bool,
    /// Residual loss (after redundancy, incl. late) of the gateway's mix as heard here.
    pub down_loss: f64,
    /// Residual loss of this client's audio as the gateway last reported it.
    pub up_loss: f64,
    pub rtt: Option<Duration>,
    pub jitter_ms: u16,
    /// Audio datagram bytes per second each way, as kbit/s (no QUIC/UDP/IP).
    pub up_kbps: f64,
    pub down_kbps: f64,
}

// The floats are ratios and rates computed from counters: never NaN.
impl Eq for LinkStatus {}

impl Default for LinkStatus {
    fn default() -> Self {
        LinkStatus {
            quality: LinkQuality::Good,
            profile: String::new(),
            receive_only: false,
            down_loss: 0.0,
            up_loss: 0.0,
            rtt: None,
            jitter_ms: 0,
            up_kbps: 0.0,
            down_kbps: 0.0,
        }
    }
}

impl std::fmt::Display for LinkStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rtt = self.rtt.map_or("?".to_string(), |r| format!("{}", r.as_millis()));
        write!(
            f,
            "link {} | profile {}{} | loss down {:.1} % up {:.1} % | rtt {rtt} ms | jitter {} ms | {:.1} kbit/s up, {:.1} down",
            self.quality.as_str(),
            self.profile,
            if self.receive_only { " (receive only)" } else { "" },
            self.down_loss * 100.0,
            self.up_loss * 100.0,
            self.jitter_ms,
            self.up_kbps,
            self.down_kbps
        )
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
    /// The link's quality, the uplink profile or receive-only changed.
    Link(LinkStatus),
    /// Someone's connection dropped; the gateway holds their seat while they reconnect
    /// (`reconnecting: false` when they are back).
    PeerReconnecting { entry: RosterEntry, reconnecting: bool },
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
    /// Playout pulled, and the part of it that was not silence, in 20 ms chunks.
    pub chunks_played: u64,
    pub chunks_audible: u64,
    /// Times the uplink profile changed (rate adaptation).
    pub profile_changes: u64,
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
    /// Playout pulled so far, and how much of it was not silence.
    played_samples: u64,
    audible_samples: u64,
    /// Who the gateway says is speaking (for indicators).
    talkers: Vec<ParticipantId>,
    config: ClientConfig,
    /// Latest time handed in, for inputs that carry none (control bytes).
    now: Time,
    feedback: ReportBuilder,
    next_report: Option<Time>,
    adapter: Option<RateAdapter>,
    rung: usize,
    receive_only: bool,
    profile_changes: u64,
    path: Option<PathStats>,
    last_up_report: Option<ReceiverReport>,
    /// Uplink protection from the gateway's reports, smoothed.
    protection: crate::protect::ProtectionSizer,
    last_down_report: Option<ReceiverReport>,
    sent_bytes_at_report: u64,
    down_bytes: u64,
    link: LinkStatus,
    reconnecting: std::collections::BTreeSet<ParticipantId>,
    /// Set by [`Client::reconnect`] until the gateway answers the new join.
    rejoining: bool,
    /// Arrival feedback not yet polled (bounded: the oldest go first).
    arrivals: VecDeque<Arrivals>,
}

/// Arrival messages kept for a shell that polls late: about a minute.
const MAX_ARRIVALS_QUEUED: usize = 64;

/// Playout is pulled in 10 ms steps (NetEq's GetAudio), not 20 ms chunks: a
/// packet's deadline is the pull its first sample plays in, so finer pulls let
/// playout sit up to a step closer to the target.
pub const PLAYOUT_STEP_MS: u32 = 10;
pub const PLAYOUT_STEP: usize = PLAYOUT_STEP_MS as usize * crate::codec::SAMPLES_PER_MS;

/// The client's receive buffer: adaptive, pulled every [`PLAYOUT_STEP_MS`].
/// (A floor of one pull under the target steadied the loopback call test but
/// cost the Norway car trace its lead over the fixed buffer: not set.)
pub fn downlink_jitter(initial_target: Duration) -> JitterConfig {
    JitterConfig { initial_target, pull: Duration::from_millis(PLAYOUT_STEP_MS.into()), ..JitterConfig::adaptive() }
}

/// What the clinician hears through: the adaptive buffer, starting at the configured delay.
fn downlink_stream(profile: &Profile, config: &ClientConfig) -> Result<ReceiveStream, CodecError> {
    ReceiveStream::with_config(profile.decoder_complexity, downlink_jitter(config.jitter_target))
}

impl Client {
    /// Queues Hello and Join: the first transmits are ready at once.
    pub fn new(config: ClientConfig) -> Result<Self, CodecError> {
        let mut config = config;
        if config.ladder.is_empty() {
            config.ladder = crate::adapt::ladder();
        }
        let rung = config.start_rung.min(config.ladder.len() - 1);
        let profile = config.ladder[rung].clone();
        let mut c = Client {
            reader: FrameReader::default(),
            you: None,
            roster: BTreeMap::new(),
            uplink: SendStream::new(profile.clone(), None, true)?,
            downlink: downlink_stream(&profile, &config)?,
            muted: false,
            locked: false,
            out: VecDeque::new(),
            events: VecDeque::new(),
            played_samples: 0,
            audible_samples: 0,
            talkers: Vec::new(),
            adapter: config.adapt.clone().map(|a| RateAdapter::new(a, config.ladder.len(), rung)),
            link: LinkStatus { profile: profile.name.clone(), ..LinkStatus::default() },
            config,
            now: Time::ZERO,
            feedback: ReportBuilder::default(),
            next_report: None,
            rung,
            receive_only: false,
            profile_changes: 0,
            path: None,
            last_up_report: None,
            protection: crate::protect::ProtectionSizer::default(),
            last_down_report: None,
            sent_bytes_at_report: 0,
            down_bytes: 0,
            reconnecting: Default::default(),
            rejoining: false,
            arrivals: VecDeque::new(),
        };
        c.hello();
        Ok(c)
    }

    fn hello(&mut self) {
        self.control(&ClientMsg::Hello { version: PROTOCOL_VERSION, name: self.config.name.clone(), token: self.config.token.clone() });
        self.control(&ClientMsg::Codec { libopus: crate::codec::libopus_version().into() });
        self.control(&ClientMsg::Join { room: self.config.room.clone() });
        // After Join: a multi-engine gateway routes the connection by the Join, read among the first messages.
        if self.config.arrival_feedback {
            self.control(&ClientMsg::WantArrivals);
        }
    }

    /// The connection was lost and a new one is up: say Hello and Join again
    /// with the same identity. Streams continue if the gateway kept the seat.
    pub fn reconnect(&mut self) {
        self.reader = FrameReader::default();
        self.out.retain(|t| matches!(t, Transmit::Datagram(_)));
        self.rejoining = true;
        self.hello();
    }

    /// The link as people should see it.
    pub fn link(&self) -> &LinkStatus {
        &self.link
    }

    /// The profile the uplink is sending with.
    pub fn profile(&self) -> &Profile {
        &self.config.ladder[self.rung]
    }

    /// Whether the gateway holds this participant's seat while they reconnect.
    pub fn is_reconnecting(&self, id: ParticipantId) -> bool {
        self.reconnecting.contains(&id)
    }

    /// QUIC's view of the path, from the shell (e.g. once a second).
    pub fn handle_path(&mut self, now: Time, path: PathStats) {
        self.now = self.now.max(now);
        self.path = Some(path);
    }

    /// When [`Client::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.you.map(|_| self.next_report.unwrap_or(self.now))
    }

    /// Periodic work: the receiver report to the gateway, the adapter's
    /// silence and probe timers, and the link state. Call at least every 20 ms or at `poll_timeout`.
    pub fn handle_timeout(&mut self, now: Time) {
        self.now = self.now.max(now);
        if self.you.is_none() {
            return;
        }
        let due = *self.next_report.get_or_insert(now + REPORT_INTERVAL);
        if now < due {
            return;
        }
        self.next_report = Some(now + REPORT_INTERVAL);
        if let Some(r) = self.feedback.take(now, &self.downlink.stats().jitter) {
            let secs = f64::from(r.interval_ms.max(1)) / 1000.0;
            self.link.down_kbps = self.down_bytes as f64 * 8.0 / 1000.0 / secs;
            let sent = self.uplink.stats().bytes;
            self.link.up_kbps = (sent - self.sent_bytes_at_report) as f64 * 8.0 / 1000.0 / secs;
            self.sent_bytes_at_report = sent;
            self.down_bytes = 0;
            self.last_down_report = Some(r);
            self.control(&ClientMsg::Report(r));
        }
        if let Some(d) = self.adapter.as_mut().and_then(|a| a.tick(now)) {
            self.apply(d);
        }
        self.update_link();
    }

    fn apply(&mut self, d: Decision) {
        match d {
            Decision::Rung(r) => {
                self.receive_only = false;
                if r != self.rung {
                    self.rung = r;
                    self.profile_changes += 1;
                    self.uplink.set_profile(self.config.ladder[r].clone());
                }
            }
            Decision::ReceiveOnly => self.receive_only = true,
        }
        self.update_link();
    }

    fn update_link(&mut self) {
        let down = self.last_down_report.as_ref();
        let up = self.last_up_report.as_ref();
        let (down_loss, up_loss) = (down.map_or(0.0, residual_loss), up.map_or(0.0, residual_loss));
        let jitter = down.map_or(0, |r| r.jitter_ms);
        let rtt = self.path.map(|p| p.rtt);
        let mut quality = LinkQuality::classify(down_loss.max(up_loss), rtt, jitter);
        if self.receive_only {
            quality = LinkQuality::Bad;
        }
        let changed = quality != self.link.quality || self.receive_only != self.link.receive_only || self.config.ladder[self.rung].name != self.link.profile;
        self.link = LinkStatus {
            quality,
            profile: self.config.ladder[self.rung].name.clone(),
            receive_only: self.receive_only,
            down_loss,
            up_loss,
            rtt,
            jitter_ms: jitter,
            up_kbps: self.link.up_kbps,
            down_kbps: self.link.down_kbps,
        };
        if changed {
            self.events.push_back(ClientEvent::Link(self.link.clone()));
        }
    }

    /// The gateway's report on this client's uplink.
    fn on_report(&mut self, r: ReceiverReport) {
        self.last_up_report = Some(r);
        if r.expected > 0 {
            // Redundancy sized by the loss the gateway sees (issue #3's protection),
            // held through a clean second or two of a lossy spell.
            let level = self.protection.on_report(&r);
            self.uplink.set_protection(level);
        }
        let signal = PathSignal { rtt: self.path.map(|p| p.rtt), window_starved: self.window_starved() };
        let now = self.now;
        if let Some(d) = self.adapter.as_mut().and_then(|a| a.on_report(now, &r, signal)) {
            self.apply(d);
        } else {
            self.update_link();
        }
    }

    /// True when the congestion window cannot carry one RTT of this rung's packets.
    fn window_starved(&self) -> bool {
        let Some(p) = self.path else { return false };
        let prof = self.profile();
        let per_sec = f64::from(prof.bitrate_bps) / 8.0 + 70.0 * 1000.0 / f64::from(prof.frame_ms.max(1));
        p.cwnd > 0 && (p.cwnd as f64) < per_sec * p.rtt.as_secs_f64()
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
            chunks_played: self.played_samples / CHUNK as u64,
            chunks_audible: self.audible_samples / CHUNK as u64,
            profile_changes: self.profile_changes,
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
                if std::mem::take(&mut self.rejoining) && self.you != Some(you) {
                    // A new seat: the gateway's streams start afresh.
                    let dred = self.downlink.dred_enabled();
                    self.downlink = downlink_stream(self.profile(), &self.config).map_err(|_| ClientError::Protocol("a join the decoder cannot follow"))?;
                    if dred {
                        self.downlink.enable_dred().map_err(|_| ClientError::Protocol("a DRED decoder could not be made"))?;
                    }
                    self.feedback = ReportBuilder::default();
                }
                self.reconnecting.clear();
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
                    RosterUpdate::Left { id } => {
                        self.reconnecting.remove(&id);
                        self.roster.remove(&id).map(ClientEvent::PeerLeft)
                    }
                    RosterUpdate::Reconnecting { id, reconnecting } => {
                        if reconnecting {
                            self.reconnecting.insert(id);
                        } else {
                            self.reconnecting.remove(&id);
                        }
                        self.roster.get(&id).cloned().map(|entry| ClientEvent::PeerReconnecting { entry, reconnecting })
                    }
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
            ServerMsg::Report(r) => self.on_report(r),
            ServerMsg::Codec { libopus } => {
                let same = crate::protect::dred_compatible(&libopus);
                self.uplink.set_dred(same);
                // The gateway puts DRED in our mix only if we run its libopus too.
                if same {
                    self.downlink.enable_dred().map_err(|_| ClientError::Protocol("a DRED decoder could not be made"))?;
                }
            }
            ServerMsg::Arrivals(a) => {
                if self.arrivals.len() == MAX_ARRIVALS_QUEUED {
                    self.arrivals.pop_front();
                }
                self.arrivals.push_back(a);
            }
        }
        Ok(())
    }

    pub fn handle_datagram(&mut self, now: Time, data: &[u8]) {
        self.now = self.now.max(now);
        if let Some(h) = self.downlink.insert_datagram(now, data) {
            self.feedback.on_packet(now, &h);
            self.down_bytes += data.len() as u64;
        }
    }

    /// One captured 20 ms chunk (16 kHz mono). Sent only once joined and while unmuted.
    pub fn push_capture(&mut self, pcm: &[i16]) -> Result<(), CodecError> {
        if self.you.is_none() || self.muted || self.receive_only {
            self.uplink.skip_chunk();
            return Ok(());
        }
        if let Some(d) = self.uplink.push_chunk(pcm)? {
            self.out.push_back(Transmit::Datagram(d));
        }
        Ok(())
    }

    /// The next step of playout: call every [`PLAYOUT_STEP_MS`] with
    /// [`PLAYOUT_STEP`] samples (a 20 ms chunk every 20 ms works too, with
    /// coarser deadlines).
    pub fn pull_playout(&mut self, now: Time, out: &mut [i16]) -> ChunkKind {
        let kind = self.downlink.pull_chunk(now, out);
        self.played_samples += out.len() as u64;
        if kind != ChunkKind::Silence {
            self.audible_samples += out.len() as u64;
        }
        kind
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    /// The gateway's next per-packet feedback on the uplink (with `arrival_feedback`).
    pub fn poll_arrivals(&mut self) -> Option<Arrivals> {
        self.arrivals.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }
}
