//! The operator surface on its own TCP port: `/metrics` (Prometheus text
//! format) and `/health`. A minimal HTTP/1.1 responder: GET only, one request
//! per connection, small bounded reads — nothing here can stall the mixer.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lowband_core::gateway::GatewayStats;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The engine is called stalled when it has not reported for this long.
const STALL: Duration = Duration::from_secs(5);

/// Totals over every connection, open and closed, from quinn's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireTotals {
    pub udp_bytes_in: u64,
    pub udp_bytes_out: u64,
    pub packets_sent: u64,
    pub packets_lost: u64,
}

impl std::ops::AddAssign for WireTotals {
    fn add_assign(&mut self, o: Self) {
        self.udp_bytes_in += o.udp_bytes_in;
        self.udp_bytes_out += o.udp_bytes_out;
        self.packets_sent += o.packets_sent;
        self.packets_lost += o.packets_lost;
    }
}

impl WireTotals {
    pub fn of(conn: &quinn::Connection) -> WireTotals {
        let s = conn.stats();
        WireTotals { udp_bytes_in: s.udp_rx.bytes, udp_bytes_out: s.udp_tx.bytes, packets_sent: s.path.sent_packets, packets_lost: s.path.lost_packets }
    }
}

/// What the engine publishes about once a second.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    pub gateway: GatewayStats,
    pub connections: usize,
    pub wire: WireTotals,
    pub updated: Instant,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot { gateway: GatewayStats::default(), connections: 0, wire: WireTotals::default(), updated: Instant::now() }
    }
}

pub type SharedSnapshot = Arc<Mutex<Snapshot>>;

/// Process CPU time (user + system), from /proc (Linux reports it in 1/100 s).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

pub fn render_metrics(s: &Snapshot) -> String {
    let g = &s.gateway;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    };
    metric("lowband_rooms", "gauge", "Rooms with at least one participant.", g.rooms as f64);
    metric("lowband_participants", "gauge", "Participants joined to a room.", g.participants as f64);
    metric("lowband_connections", "gauge", "Open QUIC connections (joined or not).", s.connections as f64);
    metric("lowband_audio_datagrams_received_total", "counter", "Audio datagrams received from spokes.", g.datagrams_in as f64);
    metric("lowband_audio_datagrams_sent_total", "counter", "Mix datagrams sent to spokes.", g.datagrams_out as f64);
    metric("lowband_bad_datagrams_total", "counter", "Datagrams that did not parse.", g.bad_datagrams as f64);
    metric("lowband_wire_received_bytes_total", "counter", "UDP payload bytes received (all connections).", s.wire.udp_bytes_in as f64);
    metric("lowband_wire_sent_bytes_total", "counter", "UDP payload bytes sent (all connections).", s.wire.udp_bytes_out as f64);
    metric("lowband_wire_sent_packets_total", "counter", "QUIC packets sent.", s.wire.packets_sent as f64);
    metric("lowband_wire_lost_packets_total", "counter", "QUIC packets sent and detected lost.", s.wire.packets_lost as f64);
    let loss = if s.wire.packets_sent > 0 { s.wire.packets_lost as f64 / s.wire.packets_sent as f64 } else { 0.0 };
    metric("lowband_wire_loss_ratio", "gauge", "Lost / sent QUIC packets since start.", loss);
    metric("lowband_mixer_ticks_total", "counter", "20 ms mixer steps run (summed over rooms).", g.ticks as f64);
    metric("lowband_mixer_skipped_ticks_total", "counter", "Mixer steps skipped because the gateway fell behind.", g.skipped_ticks as f64);
    if let Some(cpu) = cpu_seconds() {
        metric("process_cpu_seconds_total", "counter", "User and system CPU time of the gateway process.", cpu);
    }
    out
}

/// Serves until the task is aborted.
pub async fn serve(listener: TcpListener, snapshot: SharedSnapshot) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let snapshot = snapshot.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), respond(stream, snapshot)).await;
        });
    }
}

pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

async fn respond(mut stream: TcpStream, snapshot: SharedSnapshot) -> std::io::Result<()> {
    let mut req = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 8192 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        req.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(req.split(|&b| b == b'\r' || b == b'\n').next().unwrap_or_default()).into_owned();
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let snap = *snapshot.lock().unwrap_or_else(|e| e.into_inner());
    let (status, ctype, body) = match (method, path.split('?').next().unwrap_or("")) {
        ("GET", "/metrics") => ("200 OK", "text/plain; version=0.0.4", render_metrics(&snap)),
        ("GET", "/health") if snap.updated.elapsed() < STALL => ("200 OK", "text/plain", "ok\n".to_string()),
        ("GET", "/health") => ("503 Service Unavailable", "text/plain", format!("mixer stalled for {:.0} s\n", snap.updated.elapsed().as_secs_f64())),
        ("GET", _) => ("404 Not Found", "text/plain", "try /metrics or /health\n".to_string()),
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".to_string()),
    };
    let head = format!("HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
