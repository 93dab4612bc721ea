//! `lowband-tools sim`: a call in virtual time. The core's gateway and N
//! clients run exactly as in the real shells, but datagrams cross seeded
//! [`Link`] models instead of sockets and no clock is read, so a 15-minute
//! call takes seconds and a seed fixes every byte of what each client hears.
//!
//! Simplifications, on purpose: control messages (join, roster) cross an
//! idealised reliable channel with the link's base delay, not the lossy link;
//! QUIC's ACKs and retransmissions are not modelled, so on-wire bitrate is
//! the audio datagrams plus a fixed per-packet overhead ([`UP_OVERHEAD`],
//! [`DOWN_OVERHEAD`]).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use lowband_core::adapt::ladder;
use lowband_core::client::{Client, ClientConfig, Transmit};
use lowband_core::profile::Profile;
use lowband_core::codec::CHUNK;
use lowband_core::gateway::{Gateway, GatewayConfig, Output};
use lowband_core::link::{Link, LinkConfig, LinkStats};
use lowband_core::Time;
use serde::Serialize;

use crate::linkargs::LinkPair;

/// IPv4 bytes around each uplink audio datagram: IP + UDP (28), QUIC short
/// header flags (1), the gateway's 8-byte connection id, packet number (1),
/// DATAGRAM frame type and length (2), AEAD tag (16). See quic/src/tuning.rs.
pub const UP_OVERHEAD: usize = 56;
/// Downlink: the same without a connection id (clients use zero-length ones).
pub const DOWN_OVERHEAD: usize = 48;
pub const RATE: usize = 16_000;
const TICK: Duration = Duration::from_millis(20);

/// One stretch of speech by one client.
#[derive(Debug, Clone)]
pub struct Turn {
    pub client: usize,
    /// Seconds into the call.
    pub start: f64,
    pub speech: Vec<i16>,
}

impl Turn {
    pub fn start_sample(&self) -> usize {
        (self.start * RATE as f64).round() as usize
    }
}

pub struct SimSpec {
    pub names: Vec<String>,
    /// One per client.
    pub links: Vec<LinkPair>,
    pub turns: Vec<Turn>,
    pub seconds: f64,
    pub seed: u64,
    pub progress: bool,
    /// Every stream on this one profile; `None`: rate adaptation over the link ladder.
    pub profile: Option<Profile>,
}

/// The gateway and client configs for a fixed profile or for adaptation.
pub fn configs(profile: Option<&Profile>) -> (GatewayConfig, ClientConfig) {
    let client = ClientConfig::new("", "sim-room");
    match profile {
        Some(p) => (
            GatewayConfig { server_name: "lowband-sim".into(), tiers: vec![p.clone()], default_tier: 0, adapt_downlink: false, ..Default::default() },
            client.fixed(p.clone()),
        ),
        // Adaptive: the downlink walks the same ladder as the uplink, from the same start.
        None => (GatewayConfig { server_name: "lowband-sim".into(), tiers: ladder(), default_tier: client.start_rung, ..Default::default() }, client),
    }
}

/// One second of one client's call.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Second {
    pub client: String,
    pub second: u64,
    pub up_kbps: f64,
    pub down_kbps: f64,
    pub up_loss_pct: f64,
    pub down_loss_pct: f64,
    pub up_delay_ms: Option<f64>,
    pub down_delay_ms: Option<f64>,
    /// Up plus down one-way delay of the audio packets in this second.
    pub rtt_ms: Option<f64>,
    /// Share of the played audio that was concealment.
    pub concealed_pct: f64,
    /// The client's uplink profile at the end of the second.
    pub profile: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LinkTotals {
    pub client: String,
    pub up_packets: u64,
    pub up_lost: u64,
    pub down_packets: u64,
    pub down_lost: u64,
    pub up_loss_pct: f64,
    pub down_loss_pct: f64,
}

pub struct SimOutcome {
    pub series: Vec<Second>,
    pub totals: Vec<LinkTotals>,
    pub heard: Vec<PathBuf>,
    pub wall_seconds: f64,
}

#[derive(Clone)]
struct Pkt {
    data: Vec<u8>,
    sent: Time,
}

/// Per client, the counters of the second in progress.
#[derive(Default, Clone)]
struct Acc {
    up_bytes: u64,
    down_bytes: u64,
    up_delay: (f64, u32),
    down_delay: (f64, u32),
    up_stats: LinkStats,
    down_stats: LinkStats,
    concealed: u64,
}

struct Node {
    client: Client,
    up: Link<Pkt>,
    down: Link<Pkt>,
    ctrl_up: VecDeque<(Time, Vec<u8>)>,
    ctrl_down: VecDeque<(Time, Vec<u8>)>,
    turns: Vec<Turn>,
    heard: hound::WavWriter<std::io::BufWriter<std::fs::File>>,
    acc: Acc,
}

fn seed_for(seed: u64, client: usize, dir: u64) -> u64 {
    seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ ((client as u64) << 8 | dir)
}

/// Fills `out` with what `turns` say at sample `at` (silence elsewhere).
fn fill_capture(turns: &[Turn], at: usize, out: &mut [i16]) {
    out.fill(0);
    for t in turns {
        let s = t.start_sample();
        let e = s + t.speech.len();
        if e <= at || s >= at + out.len() {
            continue;
        }
        for (i, o) in out.iter_mut().enumerate() {
            let n = at + i;
            if n >= s && n < e {
                *o = t.speech[n - s];
            }
        }
    }
}

fn mean(x: (f64, u32)) -> Option<f64> {
    (x.1 > 0).then(|| x.0 / f64::from(x.1))
}

fn loss_pct(now: LinkStats, before: LinkStats) -> f64 {
    let sent = now.packets_in - before.packets_in;
    if sent == 0 {
        0.0
    } else {
        (now.lost() - before.lost()) as f64 * 100.0 / sent as f64
    }
}

/// Runs the call; writes `<name>-heard.wav` for each client into `out`.
pub fn run(spec: &SimSpec, out: &Path) -> anyhow::Result<SimOutcome> {
    std::fs::create_dir_all(out)?;
    let wall = std::time::Instant::now();
    let wav = hound::WavSpec { channels: 1, sample_rate: RATE as u32, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let (gw_config, client_config) = configs(spec.profile.as_ref());
    let mut gateway = Gateway::new(gw_config);
    let mut nodes = Vec::new();
    let mut heard_paths = Vec::new();
    for (k, (name, link)) in spec.names.iter().zip(&spec.links).enumerate() {
        let path = out.join(format!("{name}-heard.wav"));
        let mut client = Client::new(ClientConfig { name: name.clone(), ..client_config.clone() }).context("client codec")?;
        let mut ctrl_up = VecDeque::new();
        while let Some(t) = client.poll_transmit() {
            if let Transmit::Control(c) = t {
                ctrl_up.push_back((Time::ZERO + link.up.delay, c));
            }
        }
        gateway.handle_connect(k as u64);
        nodes.push(Node {
            client,
            up: Link::new(link.up.clone(), seed_for(spec.seed, k, 1)),
            down: Link::new(link.down.clone(), seed_for(spec.seed, k, 2)),
            ctrl_up,
            ctrl_down: VecDeque::new(),
            turns: spec.turns.iter().filter(|t| t.client == k).cloned().collect(),
            heard: hound::WavWriter::create(&path, wav).with_context(|| format!("creating {}", path.display()))?,
            acc: Acc::default(),
        });
        heard_paths.push(path);
    }
    let end = Time::from_micros((spec.seconds * 1e6) as u64);
    let bar = crate::progress::bar(spec.progress, spec.seconds as u64, "simulated s");
    let mut series = Vec::new();
    let mut next_audio = Time::ZERO;
    let mut chunk_index: u64 = 0;
    let mut second: u64 = 0;

    loop {
        let mut now = next_audio;
        for n in &nodes {
            for t in [n.up.poll_timeout(), n.down.poll_timeout(), n.ctrl_up.front().map(|c| c.0), n.ctrl_down.front().map(|c| c.0)].into_iter().flatten() {
                now = now.min(t);
            }
        }
        if let Some(t) = gateway.poll_timeout() {
            now = now.min(t);
        }
        // Close the seconds that ended before this event.
        let total_seconds = spec.seconds.ceil() as u64;
        while second < total_seconds && Time::from_micros((second + 1) * 1_000_000) <= now {
            for (n, name) in nodes.iter_mut().zip(&spec.names) {
                series.push(close_second(n, name, second));
            }
            second += 1;
            bar.set_position(second);
        }
        if now > end {
            break;
        }
        for (k, n) in nodes.iter_mut().enumerate() {
            while let Some(p) = n.up.poll_deliver(now) {
                n.acc.up_delay.0 += (now - p.sent).as_secs_f64() * 1000.0;
                n.acc.up_delay.1 += 1;
                gateway.handle_datagram(now, k as u64, &p.data);
            }
            while n.ctrl_up.front().is_some_and(|c| c.0 <= now) {
                let (_, c) = n.ctrl_up.pop_front().expect("front");
                gateway.handle_control(now, k as u64, &c);
            }
            while let Some(p) = n.down.poll_deliver(now) {
                n.acc.down_delay.0 += (now - p.sent).as_secs_f64() * 1000.0;
                n.acc.down_delay.1 += 1;
                n.acc.down_bytes += (p.data.len() + DOWN_OVERHEAD) as u64;
                n.client.handle_datagram(now, &p.data);
            }
            while n.ctrl_down.front().is_some_and(|c| c.0 <= now) {
                let (_, c) = n.ctrl_down.pop_front().expect("front");
                n.client.handle_control(&c).map_err(|e| anyhow::anyhow!("client {k}: {e}"))?;
            }
        }
        if gateway.poll_timeout().is_some_and(|t| t <= now) {
            gateway.handle_timeout(now);
        }
        if now >= next_audio {
            // Chunk i-1 has just been captured; chunk i starts playing. Clients
            // are independent here, so two threads share them (same result).
            let mid = nodes.len().div_ceil(2);
            let (a, b) = nodes.split_at_mut(mid);
            let (ra, rb) = std::thread::scope(|sc| {
                let other = sc.spawn(|| audio_step(b, chunk_index, now));
                (audio_step(a, chunk_index, now), other.join())
            });
            ra?;
            rb.map_err(|_| anyhow::anyhow!("audio thread panicked"))??;
            chunk_index += 1;
            next_audio = Time::ZERO + TICK * chunk_index as u32;
        }
        for n in nodes.iter_mut() {
            while let Some(t) = n.client.poll_transmit() {
                match t {
                    Transmit::Datagram(d) => {
                        n.acc.up_bytes += (d.len() + UP_OVERHEAD) as u64;
                        let size = d.len() + UP_OVERHEAD;
                        n.up.push(now, Pkt { data: d, sent: now }, size);
                    }
                    Transmit::Control(c) => n.ctrl_up.push_back((now + n.up.config().delay, c)),
                }
            }
            while n.client.poll_event().is_some() {}
        }
        while let Some(o) = gateway.poll_output() {
            match o {
                Output::Datagram { conn, data } => {
                    let n = &mut nodes[conn as usize];
                    let size = data.len() + DOWN_OVERHEAD;
                    n.down.push(now, Pkt { data, sent: now }, size);
                }
                Output::Control { conn, data } => {
                    let n = &mut nodes[conn as usize];
                    let at = now + n.down.config().delay;
                    n.ctrl_down.push_back((at, data));
                }
                // Closing, attendance and recordings are the real shell's business.
                _ => {}
            }
        }
    }
    while second < spec.seconds.ceil() as u64 {
        for (n, name) in nodes.iter_mut().zip(&spec.names) {
            series.push(close_second(n, name, second));
        }
        second += 1;
    }
    bar.finish_and_clear();
    let mut totals = Vec::new();
    for (n, name) in nodes.into_iter().zip(&spec.names) {
        let (u, d) = (n.up.stats(), n.down.stats());
        totals.push(LinkTotals {
            client: name.clone(),
            up_packets: u.packets_in,
            up_lost: u.lost(),
            down_packets: d.packets_in,
            down_lost: d.lost(),
            up_loss_pct: loss_pct(u, LinkStats::default()),
            down_loss_pct: loss_pct(d, LinkStats::default()),
        });
        n.heard.finalize()?;
    }
    Ok(SimOutcome { series, totals, heard: heard_paths, wall_seconds: wall.elapsed().as_secs_f64() })
}

/// Captures chunk `index - 1` and plays chunk `index` for each node.
fn audio_step(nodes: &mut [Node], index: u64, now: Time) -> anyhow::Result<()> {
    let mut chunk = [0i16; CHUNK];
    for n in nodes {
        n.client.handle_timeout(now);
        if index > 0 {
            fill_capture(&n.turns, (index as usize - 1) * CHUNK, &mut chunk);
            n.client.push_capture(&chunk).context("encoding")?;
        }
        n.client.pull_playout(now, &mut chunk);
        for &s in &chunk {
            n.heard.write_sample(s)?;
        }
    }
    Ok(())
}

fn close_second(n: &mut Node, name: &str, second: u64) -> Second {
    let (u, d) = (n.up.stats(), n.down.stats());
    let concealed = n.client.stats().receive.jitter.concealed_samples;
    let a = std::mem::take(&mut n.acc);
    let (up_delay, down_delay) = (mean(a.up_delay), mean(a.down_delay));
    let row = Second {
        client: name.to_string(),
        second,
        up_kbps: a.up_bytes as f64 * 8.0 / 1000.0,
        down_kbps: a.down_bytes as f64 * 8.0 / 1000.0,
        up_loss_pct: loss_pct(u, a.up_stats),
        down_loss_pct: loss_pct(d, a.down_stats),
        up_delay_ms: up_delay,
        down_delay_ms: down_delay,
        rtt_ms: up_delay.zip(down_delay).map(|(a, b)| a + b),
        concealed_pct: (concealed - a.concealed) as f64 * 100.0 / RATE as f64,
        profile: if n.client.link().receive_only { "receive-only".into() } else { n.client.profile().name.clone() },
    };
    n.acc.up_stats = u;
    n.acc.down_stats = d;
    n.acc.concealed = concealed;
    row
}

/// Round-robin turns of `turn_s` seconds with `gap_s` between them, from 1 s
/// until `seconds`; each client reads its own speech onward, looping.
pub fn round_robin(speech: &[Vec<i16>], clients: usize, turn_s: f64, gap_s: f64, seconds: f64) -> Vec<Turn> {
    let mut turns = Vec::new();
    let mut pos = vec![0usize; clients];
    let len = (turn_s * RATE as f64) as usize;
    let mut start = 1.0;
    let mut k = 0;
    while start + turn_s <= seconds - 1.0 {
        let src = &speech[k % speech.len()];
        let piece: Vec<i16> = (0..len).map(|i| src[(pos[k] + i) % src.len()]).collect();
        pos[k] = (pos[k] + len) % src.len();
        turns.push(Turn { client: k, start, speech: piece });
        start += turn_s + gap_s;
        k = (k + 1) % clients;
    }
    turns
}

/// Unused directions of a [`LinkPair`] for tests and callers that need one config.
pub fn same_link(c: LinkConfig) -> LinkPair {
    LinkPair { up: c.clone(), down: c, description: "custom".into() }
}
