//! The IO shell: quinn endpoint, one task per connection, and engine tasks
//! (one per core by default) that each own a sans-IO [`Gateway`] and are the
//! only places the clock is read. A connection goes to the engine of the room
//! its Join names, so a room lives on one engine and rooms spread over cores.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use lowband_core::gateway::{ConnId, Gateway, GatewayConfig, GatewayStats, Output, TokenKey};
use lowband_core::Time;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::archive::{self, ArchiveConfig, ArchiveMsg};
use crate::cert::{self, CertError};
use crate::config::{Config, ConfigError};
use crate::ops::{self, SharedSnapshot, Snapshot, WireTotals};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
    #[error("QUIC setup: {0}")]
    Quic(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("starting the attendance/recording thread: {0}")]
    Archive(std::io::Error),
}

/// Control messages waiting for one slow client; past this it is disconnected.
const CONTROL_QUEUE: usize = 256;
/// A connection must open its control stream this soon after the handshake.
const CONTROL_STREAM_DEADLINE: Duration = Duration::from_secs(10);

enum Event {
    Connected { id: ConnId, conn: quinn::Connection, writer: mpsc::Sender<Write> },
    Control(ConnId, Bytes),
    Datagram(ConnId, Bytes),
    Disconnected(ConnId),
}

enum Write {
    Data(Vec<u8>),
    Close(String),
}

/// A running gateway. Dropping it does not stop it; call [`Server::shutdown`].
pub struct Server {
    endpoint: quinn::Endpoint,
    local_addr: SocketAddr,
    fingerprint: String,
    snapshot: SharedSnapshot,
    metrics_addr: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
    archive: std::thread::JoinHandle<()>,
}

impl Server {
    /// Loads or creates the certificate, binds, and starts serving.
    pub async fn start(config: &Config) -> Result<Server, ServerError> {
        let identity = cert::load_or_create(&config.state_dir)?;
        if identity.created {
            info!(dir = %config.state_dir.display(), "created a new gateway certificate");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(vec![identity.cert], identity.key)?;
        tls.alpn_protocols = vec![lowband_quic::ALPN.to_vec()];
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| ServerError::Quic(e.to_string()))?;
        let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server_config.transport_config(lowband_quic::shared_transport());
        let endpoint = lowband_quic::server_endpoint(server_config, config.listen)
            .map_err(|source| ServerError::Bind { addr: config.listen, source })?;
        let local_addr = endpoint.local_addr().map_err(|source| ServerError::Bind { addr: config.listen, source })?;

        let key = crate::keys::load_or_create(&config.state_dir)?;
        let start = Instant::now();
        let (tiers, default_tier) = config.tier_profiles()?;
        let engine_config = GatewayConfig {
            tiers,
            default_tier,
            max_talkers: config.max_talkers,
            talker_hangover: Duration::from_millis(config.talker_hangover_ms),
            uplink_decoder_complexity: config.decoder_complexity,
            jitter_target: config.jitter_target(),
            max_room_size: config.max_room_size,
            token_key: Some(TokenKey(key)),
            require_tokens: config.require_tokens,
            unix_ms_at_zero: archive::unix_ms_now(),
            record: config.record_dir.is_some(),
            ..GatewayConfig::default()
        };
        let (archive_tx, archive) = archive::spawn(ArchiveConfig {
            attendance_dir: config.attendance_dir(),
            record_dir: config.record_dir.clone(),
            session_gap: Duration::from_secs(config.session_gap_secs),
        })
        .map_err(ServerError::Archive)?;
        let snapshot = SharedSnapshot::default();
        let mut tasks = Vec::new();
        let mut engines = Vec::new();
        let mut parts = Vec::new();
        for _ in 0..config.engine_count() {
            let (events_tx, events_rx) = mpsc::channel(4096);
            let part = SharedSnapshot::default();
            tasks.push(tokio::spawn(run_engine(Gateway::new(engine_config.clone()), start, events_rx, part.clone(), archive_tx.clone())));
            engines.push(events_tx);
            parts.push(part);
        }
        drop(archive_tx);
        tasks.push(tokio::spawn(sum_snapshots(parts, snapshot.clone())));
        tasks.push(tokio::spawn(accept_loop(endpoint.clone(), engines.into())));
        let mut metrics_addr = None;
        if let Some(addr) = config.metrics_listen {
            let listener = ops::bind(addr).await.map_err(|source| ServerError::Bind { addr, source })?;
            metrics_addr = Some(listener.local_addr().map_err(|source| ServerError::Bind { addr, source })?);
            tasks.push(tokio::spawn(ops::serve(listener, snapshot.clone())));
        }
        Ok(Server { endpoint, local_addr, fingerprint: identity.fingerprint, snapshot, metrics_addr, tasks, archive })
    }

    /// Where `/metrics` and `/health` are served, if configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// SHA-256 of the gateway certificate, hex: what clients pin.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn stats(&self) -> GatewayStats {
        self.snapshot.lock().unwrap_or_else(|e| e.into_inner()).gateway
    }

    /// Closes every connection, ends every session (attendance, recordings) and stops.
    pub async fn shutdown(self) {
        self.endpoint.close(quinn::VarInt::from_u32(0), b"gateway shutting down");
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
        // The engine is gone, so the archive's channel is closed: it finishes the files.
        let archive = self.archive;
        let _ = tokio::task::spawn_blocking(move || archive.join()).await;
        self.endpoint.wait_idle().await;
    }
}

/// Adds the engines' snapshots into the one `/metrics` serves.
async fn sum_snapshots(parts: Vec<SharedSnapshot>, total: SharedSnapshot) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        every.tick().await;
        let mut sum = Snapshot::default();
        let mut oldest = Instant::now();
        for p in &parts {
            let s = *p.lock().unwrap_or_else(|e| e.into_inner());
            let (a, b) = (&mut sum.gateway, s.gateway);
            a.rooms += b.rooms;
            a.participants += b.participants;
            a.datagrams_in += b.datagrams_in;
            a.datagrams_out += b.datagrams_out;
            a.bad_datagrams += b.bad_datagrams;
            a.ticks += b.ticks;
            a.skipped_ticks += b.skipped_ticks;
            sum.connections += s.connections;
            sum.wire += s.wire;
            oldest = oldest.min(s.updated);
        }
        // A stalled engine makes the whole gateway look stalled to /health.
        sum.updated = oldest;
        *total.lock().unwrap_or_else(|e| e.into_inner()) = sum;
    }
}

async fn accept_loop(endpoint: quinn::Endpoint, engines: Arc<[mpsc::Sender<Event>]>) {
    let mut next_id: ConnId = 1;
    while let Some(incoming) = endpoint.accept().await {
        let id = next_id;
        next_id += 1;
        tokio::spawn(serve_connection(id, incoming, engines.clone()));
    }
}

/// Reads the control stream up to the Join to learn the room, so the
/// connection goes to that room's engine. Returns the engine and the bytes read.
async fn route(id: ConnId, recv: &mut quinn::RecvStream, engines: usize) -> (usize, Vec<u8>) {
    use lowband_core::wire::control::FrameReader;
    use lowband_core::wire::ClientMsg;
    let mut seen = Vec::new();
    if engines == 1 {
        return (0, seen);
    }
    let fallback = (id as usize) % engines;
    let mut reader = FrameReader::default();
    let mut buf = [0u8; 1024];
    let mut messages = 0;
    loop {
        let Ok(Ok(Some(n))) = tokio::time::timeout(CONTROL_STREAM_DEADLINE, recv.read(&mut buf)).await else { return (fallback, seen) };
        seen.extend_from_slice(&buf[..n]);
        reader.push(&buf[..n]);
        loop {
            match reader.next::<ClientMsg>() {
                Ok(Some(ClientMsg::Join { room })) => {
                    let mut h = std::hash::DefaultHasher::new();
                    std::hash::Hash::hash(&room, &mut h);
                    return ((std::hash::Hasher::finish(&h) % engines as u64) as usize, seen);
                }
                // Hello and Codec come first; a few more are tolerated, so an older router keeps working with newer clients.
                Ok(Some(_)) if messages < 4 => messages += 1,
                Ok(None) => break,
                // Anything else: the engine will answer it.
                _ => return (fallback, seen),
            }
        }
    }
}

async fn serve_connection(id: ConnId, incoming: quinn::Incoming, engines: Arc<[mpsc::Sender<Event>]>) {
    let remote = incoming.remote_address();
    let conn = match incoming.await {
        Ok(c) => c,
        Err(e) => return debug!(%remote, "handshake failed: {e}"),
    };
    let (send, mut recv) = match tokio::time::timeout(CONTROL_STREAM_DEADLINE, conn.accept_bi()).await {
        Ok(Ok(s)) => s,
        _ => return conn.close(quinn::VarInt::from_u32(1), b"no control stream"),
    };
    info!(conn = id, %remote, "connected");
    let (engine, seen) = route(id, &mut recv, engines.len()).await;
    let events = engines[engine].clone();
    let (writer_tx, writer_rx) = mpsc::channel(CONTROL_QUEUE);
    if events.send(Event::Connected { id, conn: conn.clone(), writer: writer_tx }).await.is_err() {
        return;
    }
    if !seen.is_empty() && events.send(Event::Control(id, Bytes::from(seen))).await.is_err() {
        return;
    }
    let writer = tokio::spawn(write_control(conn.clone(), send, writer_rx));
    let control = async {
        let mut buf = vec![0u8; 4096];
        while let Ok(Some(n)) = recv.read(&mut buf).await {
            if events.send(Event::Control(id, Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                break;
            }
        }
    };
    let datagrams = async {
        while let Ok(d) = conn.read_datagram().await {
            if events.send(Event::Datagram(id, d)).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        _ = control => {},
        _ = datagrams => {},
    }
    let _ = events.send(Event::Disconnected(id)).await;
    // Give a requested close time to flush the reason, then make sure it is closed.
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    conn.close(quinn::VarInt::from_u32(0), b"closed");
    info!(conn = id, %remote, "disconnected");
}

async fn write_control(conn: quinn::Connection, mut send: quinn::SendStream, mut rx: mpsc::Receiver<Write>) {
    while let Some(w) = rx.recv().await {
        match w {
            Write::Data(d) => {
                if send.write_all(&d).await.is_err() {
                    break;
                }
            }
            Write::Close(reason) => {
                let _ = send.finish();
                // Let the peer read the error before the connection goes.
                let _ = tokio::time::timeout(Duration::from_secs(1), send.stopped()).await;
                conn.close(quinn::VarInt::from_u32(0), reason.as_bytes());
                break;
            }
        }
    }
}

async fn run_engine(mut gw: Gateway, start: Instant, mut events: mpsc::Receiver<Event>, snapshot: SharedSnapshot, archive: std::sync::mpsc::Sender<ArchiveMsg>) {
    let now = || Time::from_micros(start.elapsed().as_micros() as u64);
    let mut conns: HashMap<ConnId, (quinn::Connection, mpsc::Sender<Write>)> = HashMap::new();
    let mut closed_wire = WireTotals::default();
    let mut publish = tokio::time::interval(Duration::from_secs(1));
    publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let deadline = gw.poll_timeout().map(|t| start + Duration::from_micros(t.as_micros()));
        tokio::select! {
            ev = events.recv() => match ev {
                None => break,
                Some(Event::Connected { id, conn, writer }) => {
                    conns.insert(id, (conn, writer));
                    gw.handle_connect(id);
                }
                Some(Event::Control(id, b)) => gw.handle_control(now(), id, &b),
                Some(Event::Datagram(id, d)) => gw.handle_datagram(now(), id, &d),
                Some(Event::Disconnected(id)) => {
                    if let Some((c, _)) = conns.remove(&id) {
                        closed_wire += WireTotals::of(&c);
                    }
                    gw.handle_disconnect(id);
                }
            },
            _ = sleep_until(deadline) => gw.handle_timeout(now()),
            _ = publish.tick() => {
                let mut wire = closed_wire;
                for (id, (c, _)) in &conns {
                    wire += WireTotals::of(c);
                    gw.handle_path(*id, lowband_quic::path_stats(c));
                }
                let s = Snapshot { gateway: gw.stats(), connections: conns.len(), wire, updated: Instant::now() };
                *snapshot.lock().unwrap_or_else(|e| e.into_inner()) = s;
            }
        }
        while let Some(out) = gw.poll_output() {
            dispatch(out, &conns, &archive);
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

fn dispatch(out: Output, conns: &HashMap<ConnId, (quinn::Connection, mpsc::Sender<Write>)>, archive: &std::sync::mpsc::Sender<ArchiveMsg>) {
    match out {
        Output::Attendance(ev) => {
            info!(room = %ev.room, name = %ev.name, id = ev.id, "{}", ev.presence.as_str());
            let _ = archive.send(ArchiveMsg::Attendance(ev));
        }
        Output::Recording { room, pcm } => {
            let _ = archive.send(ArchiveMsg::Recording { room, pcm });
        }
        Output::Datagram { conn, data } => {
            if let Some((c, _)) = conns.get(&conn) {
                // Never blocks; a full queue drops the oldest (stale) audio.
                let _ = c.send_datagram(Bytes::from(data));
            }
        }
        Output::Control { conn, data } => {
            if let Some((c, w)) = conns.get(&conn) {
                if w.try_send(Write::Data(data)).is_err() {
                    warn!(conn, "control queue full: disconnecting a client that does not read");
                    c.close(quinn::VarInt::from_u32(2), b"control stream stalled");
                }
            }
        }
        Output::Close { conn, reason } => {
            if let Some((c, w)) = conns.get(&conn) {
                if w.try_send(Write::Close(reason.clone())).is_err() {
                    c.close(quinn::VarInt::from_u32(0), reason.as_bytes());
                }
            }
        }
    }
}
