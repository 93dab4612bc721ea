//! The call driver: connects to the gateway, trusts it by fingerprint, and
//! pumps bytes and audio between quinn, the sans-IO [`Client`] and an
//! [`AudioIo`] until told to stop. It reads the clock in one place.

use std::future::Future;
use std::net::SocketAddr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use lowband_core::client::{Client, ClientConfig, ClientEvent, ClientStats, LinkStatus, Transmit};
use lowband_core::codec::CHUNK;
use lowband_core::link::record::LinkRecorder;
use lowband_core::wire::audio::AudioPacket;
use lowband_core::wire::{ErrorCode, HostAction, RosterEntry};
use lowband_core::Time;
use lowband_quic::{FingerprintVerifier, WireBytes};
use serde::Serialize;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::audio::AudioIo;
use crate::trust::KnownGateways;

#[derive(Debug, Clone)]
pub struct CallOptions {
    /// `host:port` of the gateway, as the user typed it (also the trust-store key).
    pub gateway: String,
    pub room: String,
    pub name: String,
    pub token: Option<String>,
    /// Pinned fingerprint; without it the trust store decides (trust on first use).
    pub fingerprint: Option<String>,
    pub config_dir: PathBuf,
    /// Leave after this long; `None` runs until the stop future fires.
    pub duration: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error(
        "the gateway {gateway} presented certificate fingerprint\n    {seen}\nbut this computer trusts\n    {trusted}\n\
         for it. This can mean someone is intercepting the connection. Ask the hub operator for the \
         fingerprint (`lowband-gateway fingerprint`); if it is really {seen}, run again with \
         --fingerprint {seen} (or delete its line in {store})."
    )]
    FingerprintChanged { gateway: String, seen: String, trusted: String, store: String },
    #[error("connecting to {0}: {1}")]
    Connect(String, String),
    #[error("{}", refusal(*code, text))]
    Refused { code: ErrorCode, text: String },
    #[error("the gateway broke the protocol: {0}")]
    Protocol(String),
    #[error("audio: {0}")]
    Audio(String),
    #[error("recording the link: {0}")]
    Record(String),
}

/// What a user interface (or a test) asks of a running call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallCommand {
    SetMuted(bool),
    RaiseHand(bool),
    /// Host controls; refused with `NotPermitted` (the call goes on) unless you are a host.
    Host(HostAction),
    /// The operating system reports a new route or address: move the call to a fresh UDP socket.
    Rebind,
    Leave,
}

/// Sent to the user interface after every event, with the state it leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallUpdate {
    pub event: ClientEvent,
    /// One line for people, as the log shows it.
    pub text: String,
    pub you: Option<u32>,
    /// Everyone in the room, by id; raised hands carry their order in `hand`.
    pub roster: Vec<RosterEntry>,
    pub locked: bool,
    /// Link state, current profile, loss, RTT, kbit/s.
    pub link: LinkStatus,
}

/// The two ends a controller holds: send commands, receive updates.
pub struct CallControls {
    pub commands: mpsc::UnboundedReceiver<CallCommand>,
    pub updates: mpsc::UnboundedSender<CallUpdate>,
    /// Roster, speakers and link figures twice a second (see [`crate::status`]).
    pub status: Option<tokio::sync::watch::Sender<crate::status::CallStatus>>,
}

impl CallControls {
    /// Returns the controls to pass to [`run_call_controlled`] and the
    /// controller's ends (command sender, update receiver).
    pub fn pair() -> (CallControls, mpsc::UnboundedSender<CallCommand>, mpsc::UnboundedReceiver<CallUpdate>) {
        let (ctx, crx) = mpsc::unbounded_channel();
        let (utx, urx) = mpsc::unbounded_channel();
        (CallControls { commands: crx, updates: utx, status: None }, ctx, urx)
    }

    /// Also publish [`crate::status::CallStatus`]; returns its receiver.
    pub fn with_status(mut self) -> (Self, tokio::sync::watch::Receiver<crate::status::CallStatus>) {
        let (tx, rx) = tokio::sync::watch::channel(Default::default());
        self.status = Some(tx);
        (self, rx)
    }
}

/// What happened in a call, for people and for tests.
#[derive(Debug, Clone, Serialize)]
pub struct CallReport {
    pub gateway_fingerprint: Option<String>,
    pub you: Option<u32>,
    pub roster: Vec<RosterName>,
    pub seconds: f64,
    /// IPv4 packet bytes (IP + UDP + QUIC + lowband + Opus).
    pub wire_bytes_sent: u64,
    pub wire_bytes_received: u64,
    pub wire_packets_sent: u64,
    pub wire_packets_received: u64,
    pub audio_packets_sent: u64,
    pub audio_packets_received: u64,
    pub concealed_samples: u64,
    pub late_packets: u64,
    pub chunks_audible: u64,
    /// Mean time played audio waited in the jitter buffer, ms.
    pub mean_jitter_buffer_ms: Option<f64>,
    pub events: Vec<String>,
    /// Cumulative wire counters once a second, for rates over any window.
    pub wire_series: Vec<WireSample>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct WireSample {
    pub t_ms: u64,
    pub sent: u64,
    pub received: u64,
    /// quinn's smoothed RTT estimate.
    pub rtt_ms: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RosterName {
    pub id: u32,
    pub name: String,
    pub muted: bool,
}

impl From<&RosterEntry> for RosterName {
    fn from(e: &RosterEntry) -> Self {
        RosterName { id: e.id, name: e.name.clone(), muted: e.muted }
    }
}

struct Connected {
    conn: quinn::Connection,
    endpoint: quinn::Endpoint,
    fingerprint: Option<String>,
}

async fn connect(opts: &CallOptions) -> Result<Connected, CallError> {
    let addr: SocketAddr = tokio::net::lookup_host(&opts.gateway)
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| CallError::Resolve(opts.gateway.clone()))?;
    let known = KnownGateways::in_dir(&opts.config_dir);
    let trusted = opts.fingerprint.clone().or_else(|| known.get(&opts.gateway));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(FingerprintVerifier::new(trusted.clone(), provider.clone()));
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| CallError::Connect(opts.gateway.clone(), e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    tls.alpn_protocols = vec![lowband_quic::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| CallError::Connect(opts.gateway.clone(), e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(lowband_quic::shared_transport());
    let bind: SocketAddr = if addr.is_ipv6() { "[::]:0".parse() } else { "0.0.0.0:0".parse() }.expect("literal");
    let endpoint = lowband_quic::client_endpoint(bind).map_err(|e| CallError::Connect(opts.gateway.clone(), e.to_string()))?;
    let fail = |e: String| match (verifier.seen(), &trusted) {
        (Some(seen), Some(t)) if seen != *t => CallError::FingerprintChanged {
            gateway: opts.gateway.clone(),
            seen,
            trusted: t.clone(),
            store: known.path().display().to_string(),
        },
        _ => CallError::Connect(opts.gateway.clone(), e),
    };
    let conn = endpoint
        .connect_with(config, addr, "lowband-gateway")
        .map_err(|e| fail(e.to_string()))?
        .await
        .map_err(|e| fail(e.to_string()))?;
    let seen = verifier.seen();
    if trusted.is_none() {
        if let Some(fp) = &seen {
            info!(gateway = %opts.gateway, fingerprint = %fp, "trusting this gateway from now on (first use)");
            if let Err(e) = known.remember(&opts.gateway, fp) {
                warn!("could not remember the gateway in {}: {e}", known.path().display());
            }
        }
    }
    Ok(Connected { conn, endpoint, fingerprint: seen })
}

/// Runs one call until `duration`, `stop`, or the gateway ends it.
pub async fn run_call(opts: &CallOptions, audio: &mut (dyn AudioIo + Send), stop: impl Future<Output = ()>) -> Result<CallReport, CallError> {
    run_call_controlled(opts, audio, stop, None).await
}

/// [`run_call`], also taking commands (mute, hand, host actions) from a user
/// interface and reporting every event back to it.
pub async fn run_call_controlled(
    opts: &CallOptions,
    audio: &mut (dyn AudioIo + Send),
    stop: impl Future<Output = ()>,
    controls: Option<CallControls>,
) -> Result<CallReport, CallError> {
    run_call_recording(opts, audio, stop, controls, None).await
}

/// Silence from the gateway (no UDP at all: once joined, reports and ACKs
/// flow every second) this long — or three RTTs on a slow path — means the
/// path may be broken for good (a dead binding after a change of network):
/// rebind to a fresh socket. Not sooner: during a plain outage a new port
/// only costs a path validation when the link returns (measured: audio back
/// 1.22 s after a 10 s outage with a rebind at 1.5 s of silence, 0.88 s
/// without; `lowband-tools handover`). A route change the OS reports
/// rebinds at once ([`CallCommand::Rebind`]); NAT rebindings need nothing.
const SILENT_PATH: Duration = Duration::from_secs(12);
/// While the path stays silent, rebind again this often.
const REBIND_EVERY: Duration = Duration::from_secs(5);
/// One reconnect attempt gives up after this (the handshake resends at ~1.8 s).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause between reconnect attempts: doubles from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// After this long without getting back in, the call ends with an error.
const GIVE_UP: Duration = Duration::from_secs(300);
/// Headless status line on stderr this often (and on every change of link state).
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// The live connection of a call; replaced on reconnect.
struct Live {
    conn: quinn::Connection,
    endpoint: quinn::Endpoint,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    /// UDP datagrams received so far, and when that count last moved.
    rx_datagrams: u64,
    rx_moved: Instant,
    last_rebind: Option<Instant>,
}

impl Live {
    async fn open(c: Connected, opts: &CallOptions) -> Result<Live, CallError> {
        let (send, recv) = c.conn.open_bi().await.map_err(|e| CallError::Connect(opts.gateway.clone(), e.to_string()))?;
        Ok(Live { conn: c.conn, endpoint: c.endpoint, send, recv, rx_datagrams: 0, rx_moved: Instant::now(), last_rebind: None })
    }

    /// A fresh UDP socket under the same connection (QUIC migration).
    fn rebind(&mut self, why: &str) {
        let bind: SocketAddr = if self.conn.remote_address().is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }.parse().expect("literal");
        match std::net::UdpSocket::bind(bind).and_then(|s| self.endpoint.rebind(s)) {
            Ok(()) => info!("rebound to a new UDP port ({why})"),
            Err(e) => warn!("rebinding failed ({why}): {e}"),
        }
        self.last_rebind = Some(Instant::now());
    }

    /// Rebinds when the gateway has been silent too long (at most once per
    /// [`REBIND_EVERY`]: each move costs the peer a path validation).
    fn watch_path(&mut self, rx_datagrams: u64) {
        let now = Instant::now();
        if rx_datagrams != self.rx_datagrams {
            self.rx_datagrams = rx_datagrams;
            self.rx_moved = now;
            return;
        }
        let silent = now.duration_since(self.rx_moved);
        let limit = SILENT_PATH.max(self.conn.rtt() * 3);
        if silent >= limit && self.last_rebind.is_none_or(|t| now.duration_since(t) >= REBIND_EVERY) {
            self.rebind(&format!("nothing from the gateway for {} ms", silent.as_millis()));
        }
    }
}

/// Whether a lost connection is worth reconnecting (not a refusal or a deliberate close).
fn worth_reconnecting(e: &quinn::ConnectionError) -> bool {
    matches!(e, quinn::ConnectionError::TimedOut | quinn::ConnectionError::Reset | quinn::ConnectionError::TransportError(_))
}

async fn read_control(live: &mut Option<Live>, buf: &mut [u8]) -> Result<Option<usize>, quinn::ReadError> {
    match live {
        Some(l) => l.recv.read(buf).await,
        None => std::future::pending().await,
    }
}

async fn read_datagram(conn: Option<&quinn::Connection>) -> Result<Bytes, quinn::ConnectionError> {
    match conn {
        Some(c) => c.read_datagram().await,
        None => std::future::pending().await,
    }
}

/// [`run_call_controlled`], also logging every audio packet to `record_link`
/// (format: `lowband_core::link::record`) so `lowband-tools` can replay the link.
///
/// The call survives a bad link: it rebinds to a new UDP port when the path
/// goes silent (or on [`CallCommand::Rebind`]), and when the connection is
/// lost it reconnects with backoff and joins again under the same name and
/// token; the gateway holds the seat meanwhile. Audio keeps its clock
/// throughout (concealment, then silence, is played while away).
pub async fn run_call_recording(
    opts: &CallOptions,
    audio: &mut (dyn AudioIo + Send),
    stop: impl Future<Output = ()>,
    controls: Option<CallControls>,
    record_link: Option<&Path>,
) -> Result<CallReport, CallError> {
    let mut recorder = match record_link {
        Some(p) => Some(LinkLog::create(p)?),
        None => None,
    };
    let (mut commands, updates, mut status) = match controls {
        Some(c) => (Some(c.commands), Some(c.updates), c.status.map(crate::status::StatusFeed::new)),
        None => (None, None, None),
    };
    let first = connect(opts).await?;
    let fingerprint = first.fingerprint.clone();
    let mut live = Some(Live::open(first, opts).await?);
    let mut config = ClientConfig::new(&opts.name, &opts.room);
    config.token = opts.token.clone();
    // The recorder needs the gateway's word on each uplink packet.
    config.arrival_feedback = recorder.is_some();
    let mut client = Client::new(config).map_err(|e| CallError::Audio(e.to_string()))?;

    let start = Instant::now();
    let now = || Time::from_micros(start.elapsed().as_micros() as u64);
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::pin!(stop);
    let mut buf = vec![0u8; 4096];
    let mut chunk = [0i16; CHUNK];
    let mut step = [0i16; crate::audio::PLAYOUT_STEP];
    let mut events = Vec::new();
    let mut refused = None;
    let mut leaving = false;
    let mut outcome: Result<(), CallError> = Ok(());
    let mut wire_series = Vec::new();
    // Wire counters of connections already replaced.
    let mut wire_before = WireBytes::default();
    let mut next_path = Instant::now();
    let mut next_status = Instant::now() + STATUS_EVERY;
    // While reconnecting: the attempt in flight, when the next may start, how many failed, since when.
    let mut attempt: Option<tokio::task::JoinHandle<Result<Connected, CallError>>> = None;
    let mut next_attempt = Instant::now();
    let mut failures = 0u32;
    let mut lost_at: Option<Instant> = None;

    loop {
        let conn = live.as_ref().map(|l| l.conn.clone());
        tokio::select! {
            r = read_control(&mut live, &mut buf) => match r {
                Ok(Some(n)) => if let Err(e) = client.handle_control(&buf[..n]) {
                    outcome = Err(CallError::Protocol(e.to_string()));
                    break;
                },
                Ok(None) => break,
                Err(e) => {
                    let lost = match &e {
                        quinn::ReadError::ConnectionLost(c) => worth_reconnecting(c),
                        _ => false,
                    };
                    if leaving || !lost {
                        break;
                    }
                    warn!("connection to the gateway lost ({e}); reconnecting");
                    if let Some(l) = live.take() {
                        wire_before = wire_before.plus(WireBytes::of(&l.conn.stats()));
                    }
                    lost_at = Some(Instant::now());
                    failures = 0;
                    next_attempt = Instant::now();
                }
            },
            d = read_datagram(conn.as_ref()) => if let Ok(d) = d {
                let t = now();
                if let Some(r) = recorder.as_mut() {
                    r.down(t, &d);
                }
                client.handle_datagram(t, &d);
            },
            r = async { attempt.as_mut().expect("guarded").await }, if attempt.is_some() => {
                attempt = None;
                match r {
                    Ok(Ok(c)) => match Live::open(c, opts).await {
                        Ok(l) => {
                            info!("reconnected after {:.1} s; joining again", lost_at.map_or(0.0, |t| t.elapsed().as_secs_f64()));
                            live = Some(l);
                            lost_at = None;
                            client.reconnect();
                        }
                        Err(e) => warn!("reconnect attempt failed: {e}"),
                    },
                    Ok(Err(e @ CallError::FingerprintChanged { .. })) => {
                        outcome = Err(e);
                        break;
                    }
                    Ok(Err(e)) => info!("reconnect attempt failed: {e}"),
                    Err(e) => warn!("reconnect attempt panicked: {e}"),
                }
                if live.is_none() {
                    failures += 1;
                    next_attempt = Instant::now() + (BACKOFF_FIRST * 2u32.pow(failures.min(8))).min(BACKOFF_MAX);
                }
            },
            _ = tick.tick() => {
                let t = start.elapsed();
                let wall = Instant::now();
                if t.as_millis() as u64 >= wire_series.len() as u64 * 1000 {
                    let w = wire_before.plus(live.as_ref().map(|l| WireBytes::of(&l.conn.stats())).unwrap_or_default());
                    let rtt_ms = live.as_ref().map_or(0, |l| l.conn.rtt().as_millis() as u64);
                    wire_series.push(WireSample { t_ms: t.as_millis() as u64, sent: w.sent, received: w.received, rtt_ms });
                }
                if let Some(l) = live.as_mut() {
                    if wall >= next_path {
                        next_path = wall + Duration::from_millis(250);
                        // Before the join nothing flows periodically: silence means nothing yet.
                        if client.is_joined() {
                            l.watch_path(l.conn.stats().udp_rx.datagrams);
                        }
                        client.handle_path(now(), lowband_quic::path_stats(&l.conn));
                    }
                } else if let Some(since) = lost_at {
                    if since.elapsed() >= GIVE_UP {
                        outcome = Err(CallError::Connect(opts.gateway.clone(), format!("no way back into the call for {} s", GIVE_UP.as_secs())));
                        break;
                    }
                    if attempt.is_none() && wall >= next_attempt && !leaving {
                        let o = opts.clone();
                        attempt = Some(tokio::spawn(async move {
                            tokio::time::timeout(ATTEMPT_TIMEOUT, connect(&o)).await.unwrap_or_else(|_| Err(CallError::Connect(o.gateway.clone(), "timed out".into())))
                        }));
                    }
                }
                while audio.capture(t, &mut chunk) {
                    client.push_capture(&chunk).map_err(|e| CallError::Audio(e.to_string()))?;
                }
                while audio.wants_playout(t) {
                    client.pull_playout(now(), &mut step);
                    audio.play(&step).map_err(|e| CallError::Audio(e.to_string()))?;
                }
                client.handle_timeout(now());
                if wall >= next_status {
                    next_status = wall + STATUS_EVERY;
                    info!("{}", client.link());
                }
                if let Some(r) = recorder.as_mut() {
                    r.flush()?;
                }
                if let Some(s) = status.as_mut() {
                    s.tick(t, &client, live.as_ref().map(|l| &l.conn));
                }
                if !leaving && opts.duration.is_some_and(|d| t >= d) {
                    leaving = true;
                    client.leave();
                    if live.is_none() {
                        break;
                    }
                }
            },
            _ = &mut stop, if !leaving => {
                leaving = true;
                client.leave();
                if live.is_none() {
                    break;
                }
            },
            Some(cmd) = next_command(&mut commands) => match cmd {
                CallCommand::SetMuted(m) => client.set_muted(m),
                CallCommand::RaiseHand(r) => client.raise_hand(r),
                CallCommand::Host(a) => client.host(a),
                CallCommand::Rebind => if let Some(l) = live.as_mut() {
                    l.rebind("the network changed");
                },
                CallCommand::Leave => if !leaving {
                    leaving = true;
                    client.leave();
                    if live.is_none() {
                        break;
                    }
                },
            },
        }
        if let Some(l) = live.as_mut() {
            while let Some(t) = client.poll_transmit() {
                match t {
                    Transmit::Datagram(d) => {
                        if let Some(r) = recorder.as_mut() {
                            r.up(now(), &d);
                        }
                        let _ = l.conn.send_datagram(Bytes::from(d));
                    }
                    Transmit::Control(c) => {
                        // A stream write only waits for flow control: tiny messages never block long.
                        if l.send.write_all(&c).await.is_err() {
                            break;
                        }
                    }
                }
            }
        } else {
            // Away: audio is dropped (it would be stale); control waits for the rejoin.
            while client.poll_transmit().is_some() {}
        }
        while let Some(a) = client.poll_arrivals() {
            if let Some(r) = recorder.as_mut() {
                r.recorder.on_up_arrivals(&a);
            }
        }
        while let Some(ev) = client.poll_event() {
            let line = describe(&ev, &client);
            info!("{line}");
            if let Some(u) = &updates {
                let roster = client.roster().cloned().collect();
                let _ = u.send(CallUpdate {
                    event: ev.clone(),
                    text: line.clone(),
                    you: client.you(),
                    roster,
                    locked: client.is_locked(),
                    link: client.link().clone(),
                });
            }
            events.push(line);
            match ev {
                ClientEvent::Refused { code, text } if code.closes_connection() => refused = Some(CallError::Refused { code, text }),
                _ => {}
            }
        }
    }
    if let Some(a) = attempt {
        a.abort();
    }
    if let Some(r) = recorder.as_mut() {
        r.finish()?;
    }
    let mut wire = wire_before;
    if let Some(mut l) = live {
        let _ = l.send.finish();
        let _ = tokio::time::timeout(Duration::from_secs(1), l.conn.closed()).await;
        l.conn.close(quinn::VarInt::from_u32(0), b"bye");
        wire = wire.plus(WireBytes::of(&l.conn.stats()));
        audio.finish().map_err(|e| CallError::Audio(e.to_string()))?;
        l.endpoint.wait_idle().await;
    } else {
        audio.finish().map_err(|e| CallError::Audio(e.to_string()))?;
    }
    if let Some(e) = refused {
        return Err(e);
    }
    outcome?;
    let mut r = report(&client, client.stats(), wire, fingerprint, start.elapsed(), events);
    r.wire_series = wire_series;
    Ok(r)
}

async fn next_command(commands: &mut Option<mpsc::UnboundedReceiver<CallCommand>>) -> Option<CallCommand> {
    match commands {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn report(client: &Client, s: ClientStats, wire: WireBytes, fingerprint: Option<String>, elapsed: Duration, events: Vec<String>) -> CallReport {
    CallReport {
        gateway_fingerprint: fingerprint,
        you: client.you(),
        roster: client.roster().map(RosterName::from).collect(),
        seconds: elapsed.as_secs_f64(),
        wire_bytes_sent: wire.sent,
        wire_bytes_received: wire.received,
        wire_packets_sent: wire.packets_sent,
        wire_packets_received: wire.packets_received,
        audio_packets_sent: s.send.packets,
        audio_packets_received: s.receive.jitter.received,
        concealed_samples: s.receive.jitter.concealed_samples,
        late_packets: s.receive.jitter.late,
        chunks_audible: s.chunks_audible,
        mean_jitter_buffer_ms: (s.receive.jitter.emitted > 0).then(|| s.receive.jitter.delay_us as f64 / s.receive.jitter.emitted as f64 / 1000.0),
        events,
        wire_series: Vec::new(),
    }
}

fn describe(ev: &ClientEvent, client: &Client) -> String {
    match ev {
        ClientEvent::Welcome { gateway } => format!("connected to {gateway}"),
        ClientEvent::Joined { you } => {
            let others: Vec<String> = client.roster().filter(|e| e.id != *you).map(|e| e.name.clone()).collect();
            format!("joined as #{you}; in the room: {}", if others.is_empty() { "nobody else yet".into() } else { others.join(", ") })
        }
        ClientEvent::PeerJoined(e) => format!("{} joined", e.name),
        ClientEvent::PeerLeft(e) => format!("{} left", e.name),
        ClientEvent::PeerMuted(e) => format!("{} {}", e.name, if e.muted { "muted" } else { "unmuted" }),
        ClientEvent::Refused { code, text } => format!("gateway refused: {text} ({code:?})"),
        ClientEvent::HandChanged(e) => match e.hand {
            Some(_) => format!("{} raised a hand", e.name),
            None => format!("{} lowered a hand", e.name),
        },
        ClientEvent::RoleChanged(e) => format!("{} is now {:?}", e.name, e.role),
        ClientEvent::RoomLocked { locked } => format!("the room is {}", if *locked { "locked" } else { "unlocked" }),
        ClientEvent::FloorGranted(e) => format!("{} has the floor", e.name),
        ClientEvent::Link(l) => l.to_string(),
        ClientEvent::PeerReconnecting { entry, reconnecting: true } => format!("{} is reconnecting", entry.name),
        ClientEvent::PeerReconnecting { entry, reconnecting: false } => format!("{} is back", entry.name),
    }
}

/// The `--record-link` file: what the link did to each audio packet.
struct LinkLog {
    recorder: LinkRecorder,
    file: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
}

impl LinkLog {
    fn create(path: &Path) -> Result<Self, CallError> {
        let file = std::fs::File::create(path).map_err(|e| CallError::Record(format!("{}: {e}", path.display())))?;
        Ok(LinkLog { recorder: LinkRecorder::new(), file: std::io::BufWriter::new(file), path: path.to_path_buf() })
    }

    fn down(&mut self, now: Time, d: &[u8]) {
        if let Ok(p) = AudioPacket::decode(d) {
            self.recorder.on_down(now, p.header.seq, p.header.ts, d.len());
        }
    }

    fn up(&mut self, now: Time, d: &[u8]) {
        if let Ok(p) = AudioPacket::decode(d) {
            self.recorder.on_up(now, p.header.seq, p.header.ts, d.len());
        }
    }

    /// Called every tick (5 ms): buffered, so this is cheap and off the audio path.
    fn flush(&mut self) -> Result<(), CallError> {
        let text = self.recorder.take();
        self.write(&text)
    }

    /// The call is over: uplink packets without feedback are written as unobserved.
    fn finish(&mut self) -> Result<(), CallError> {
        let text = self.recorder.finish();
        self.write(&text)
    }

    fn write(&mut self, text: &str) -> Result<(), CallError> {
        self.file
            .write_all(text.as_bytes())
            .and_then(|_| self.file.flush())
            .map_err(|e| CallError::Record(format!("{}: {e}", self.path.display())))
    }
}

/// A refusal as a person should read it: what happened, then what to do.
fn refusal(code: ErrorCode, text: &str) -> String {
    let what = match code {
        ErrorCode::Unauthorized => "not admitted",
        ErrorCode::RoomLocked => "the room is locked",
        ErrorCode::RoomFull => "the room is full",
        ErrorCode::Removed => "removed from the room",
        ErrorCode::UnsupportedVersion => "incompatible versions",
        ErrorCode::InvalidName => "invalid name",
        ErrorCode::NotPermitted => "not permitted",
        ErrorCode::BadRequest | ErrorCode::Malformed => "protocol error",
    };
    format!("the gateway refused the call ({what}): {text}")
}
