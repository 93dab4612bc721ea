//! `lowband-tools sim`: a call in virtual time. The core's gateway and N
//! clients run exactly as in the real shells, but datagrams cross seeded
//! [`Link`] models instead of sockets and no clock is read, so a 15-minute
//! call takes seconds and a seed fixes every byte of what each client hears.
//!
//! Simplifications, on purpose: control messages (join, roster) cross an
//! idealised reliable channel with the link's base delay, not the lossy link.
//! QUIC is reduced to what shapes audio on a thin link: a fixed per-packet
//! overhead ([`UP_OVERHEAD`], [`DOWN_OVERHEAD`]) and ACKs as quinn sends them
//! with lowband's ACK-frequency settings (every 4th packet or after 100 ms,
//! riding on an audio packet going the other way when there is one, else a
//! packet of their own that queues on the link like any other). RTT is what
//! such an ACK measures, as QUIC's estimator would. Congestion control and
//! retransmission (audio datagrams are never retransmitted) are not modelled.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use lowband_core::client::{Client, ClientConfig, Transmit};
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
/// A packet carrying only an ACK frame (FACTS.md: 61-67 bytes from a client).
pub const ACK_UP: usize = 64;
pub const ACK_DOWN: usize = 56;
/// An ACK frame riding in an audio packet.
const ACK_FRAME: usize = 6;
/// quinn_tuning's ACK frequency: every 4th ack-eliciting packet, or after 100 ms.
const ACK_THRESHOLD: u32 = 4;
const MAX_ACK_DELAY: Duration = Duration::from_millis(100);
pub const RATE: usize = 16_000;
const TICK: Duration = Duration::from_millis(20);
/// Threads sharing the clients' audio (encode, decode) each 20 ms step.
pub const THREADS: usize = 2;

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
    /// Decoder complexity of every receive stream (clients and gateway);
    /// `None` keeps the profiles' (7: NoLACE). See `sim --fast`.
    pub decoder_complexity: Option<u8>,
}

/// One second of one client's call.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Second {
    pub client: String,
    pub second: u64,
    pub up_kbps: f64,
    pub down_kbps: f64,
    /// Audio datagrams lost on the link (queue, random loss, outages).
    pub up_loss_pct: f64,
    pub down_loss_pct: f64,
    pub up_delay_ms: Option<f64>,
    pub down_delay_ms: Option<f64>,
    /// Mean RTT sample of the ACKs that arrived this second (either end), as
    /// QUIC measures it: ACK arrival − send time of the newest packet it
    /// acknowledges − the receiver's ACK delay.
    pub rtt_ms: Option<f64>,
    /// Mean time the audio played this second waited in the client's jitter buffer.
    pub jitter_buffer_ms: Option<f64>,
    /// Share of the played audio that was concealment.
    pub concealed_pct: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LinkTotals {
    pub client: String,
    /// Audio datagrams offered to the link and lost on it.
    pub up_packets: u64,
    pub up_lost: u64,
    pub down_packets: u64,
    pub down_lost: u64,
    pub up_loss_pct: f64,
    pub down_loss_pct: f64,
    /// Every packet the link carried (audio and ACK-only), as `netem` counts.
    pub up_link_loss_pct: f64,
    pub down_link_loss_pct: f64,
    /// Bytes of every packet offered to the link, IPv4 sizes.
    pub up_bytes: u64,
    pub down_bytes: u64,
    pub mean_rtt_ms: Option<f64>,
    pub mean_jitter_buffer_ms: Option<f64>,
}

pub struct SimOutcome {
    pub series: Vec<Second>,
    pub totals: Vec<LinkTotals>,
    pub heard: Vec<PathBuf>,
    pub wall_seconds: f64,
    /// CPU time of the whole process during the run (all threads).
    pub cpu_seconds: f64,
}

/// What an ACK tells its receiver: the newest packet acknowledged and how long
/// the acknowledging end held the ACK back.
#[derive(Clone, Copy)]
struct Ack {
    largest_sent: Time,
    delay: Duration,
}

#[derive(Clone)]
struct Pkt {
    /// None: an ACK-only packet.
    data: Option<Vec<u8>>,
    ack: Option<Ack>,
    sent: Time,
}

/// The ACKs one end owes for the ack-eliciting packets it received.
#[derive(Default)]
struct AckState {
    pending: u32,
    first_at: Option<Time>,
    largest: Option<(Time, Time)>,
}

impl AckState {
    fn on_receive(&mut self, now: Time, sent: Time) {
        self.pending += 1;
        self.first_at.get_or_insert(now);
        if self.largest.is_none_or(|(s, _)| sent >= s) {
            self.largest = Some((sent, now));
        }
    }

    /// When an ACK-only packet must go if nothing carries the ACK first.
    fn deadline(&self) -> Option<Time> {
        self.first_at.map(|t| t + MAX_ACK_DELAY)
    }

    fn due(&self, now: Time) -> bool {
        self.pending >= ACK_THRESHOLD || self.deadline().is_some_and(|t| t <= now)
    }

    fn take(&mut self, now: Time) -> Option<Ack> {
        let (largest_sent, arrived) = self.largest?;
        *self = AckState::default();
        Some(Ack { largest_sent, delay: now - arrived })
    }
}

/// Per client, the counters of the second in progress.
#[derive(Default, Clone)]
struct Acc {
    up_bytes: u64,
    down_bytes: u64,
    up_delay: (f64, u32),
    down_delay: (f64, u32),
    rtt: (f64, u32),
    /// Audio datagrams offered to each link, and lost on it.
    up_audio: (u64, u64),
    down_audio: (u64, u64),
    concealed: u64,
    jitter: (u64, u64),
}

/// Whole-call counters of one client.
#[derive(Default, Clone)]
struct Totals {
    up_audio: (u64, u64),
    down_audio: (u64, u64),
    rtt: (f64, u32),
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
    totals: Totals,
    /// The gateway owes this client ACKs (sent down), the client owes the gateway (sent up).
    gw_ack: AckState,
    cl_ack: AckState,
}

impl Node {
    /// Offers a packet to one direction's link; true if the link lost it.
    fn push(&mut self, up: bool, now: Time, pkt: Pkt, size: usize) -> bool {
        let link = if up { &mut self.up } else { &mut self.down };
        let before = link.stats().lost();
        link.push(now, pkt, size);
        link.stats().lost() > before
    }

    fn on_rtt(&mut self, now: Time, ack: Option<Ack>) {
        if let Some(a) = ack {
            let rtt = (now - a.largest_sent).saturating_sub(a.delay).as_secs_f64() * 1000.0;
            self.acc.rtt.0 += rtt;
            self.acc.rtt.1 += 1;
            self.totals.rtt.0 += rtt;
            self.totals.rtt.1 += 1;
        }
    }
}

/// CPU seconds (user + system, all threads) this process has used.
pub fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let f: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, in 1/100 s.
    (ticks(11) + ticks(12)) / 100.0
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

fn pct(lost: u64, sent: u64) -> f64 {
    if sent == 0 {
        0.0
    } else {
        lost as f64 * 100.0 / sent as f64
    }
}

fn link_loss_pct(s: LinkStats) -> f64 {
    pct(s.lost(), s.packets_in)
}

/// Runs the call; writes `<name>-heard.wav` for each client into `out`.
pub fn run(spec: &SimSpec, out: &Path) -> anyhow::Result<SimOutcome> {
    std::fs::create_dir_all(out)?;
    let wall = std::time::Instant::now();
    let cpu = process_cpu_seconds();
    let wav = hound::WavSpec { channels: 1, sample_rate: RATE as u32, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut gw_config = GatewayConfig { server_name: "lowband-sim".into(), ..Default::default() };
    if let Some(c) = spec.decoder_complexity {
        for t in &mut gw_config.tiers {
            t.decoder_complexity = c;
        }
    }
    let mut gateway = Gateway::new(gw_config);
    let mut nodes = Vec::new();
    let mut heard_paths = Vec::new();
    for (k, (name, link)) in spec.names.iter().zip(&spec.links).enumerate() {
        let path = out.join(format!("{name}-heard.wav"));
        let mut config = ClientConfig::new(name, "sim-room");
        if let Some(c) = spec.decoder_complexity {
            config.profile.decoder_complexity = c;
        }
        let mut client = Client::new(config).context("client codec")?;
        let mut ctrl_up = VecDeque::new();
        while let Some(t) = client.poll_transmit() {
            if let Transmit::Control(c) = t {
                ctrl_up.push_back((Time::ZERO + link.up.delay, c));
            }
        }
        gateway.handle_connect(k as u64);
        // Links start with the connection, as netem's do with the QUIC
        // handshake, not with the first audio packet: traces line up with talk.
        let (mut up, mut down) = (Link::new(link.up.clone(), seed_for(spec.seed, k, 1)), Link::new(link.down.clone(), seed_for(spec.seed, k, 2)));
        up.start(Time::ZERO);
        down.start(Time::ZERO);
        nodes.push(Node {
            client,
            up,
            down,
            ctrl_up,
            ctrl_down: VecDeque::new(),
            turns: spec.turns.iter().filter(|t| t.client == k).cloned().collect(),
            heard: hound::WavWriter::create(&path, wav).with_context(|| format!("creating {}", path.display()))?,
            acc: Acc::default(),
            totals: Totals::default(),
            gw_ack: AckState::default(),
            cl_ack: AckState::default(),
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
            let links = [n.up.poll_timeout(), n.down.poll_timeout(), n.ctrl_up.front().map(|c| c.0), n.ctrl_down.front().map(|c| c.0)];
            for t in links.into_iter().chain([n.gw_ack.deadline(), n.cl_ack.deadline()]).flatten() {
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
                n.on_rtt(now, p.ack);
                let Some(data) = p.data else { continue };
                n.acc.up_delay.0 += (now - p.sent).as_secs_f64() * 1000.0;
                n.acc.up_delay.1 += 1;
                n.gw_ack.on_receive(now, p.sent);
                gateway.handle_datagram(now, k as u64, &data);
            }
            while n.ctrl_up.front().is_some_and(|c| c.0 <= now) {
                let (_, c) = n.ctrl_up.pop_front().expect("front");
                gateway.handle_control(now, k as u64, &c);
            }
            while let Some(p) = n.down.poll_deliver(now) {
                n.on_rtt(now, p.ack);
                let Some(data) = p.data else { continue };
                n.acc.down_delay.0 += (now - p.sent).as_secs_f64() * 1000.0;
                n.acc.down_delay.1 += 1;
                n.cl_ack.on_receive(now, p.sent);
                n.client.handle_datagram(now, &data);
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
                        let ack = n.cl_ack.take(now);
                        let size = d.len() + UP_OVERHEAD + if ack.is_some() { ACK_FRAME } else { 0 };
                        n.acc.up_bytes += size as u64;
                        let lost = n.push(true, now, Pkt { data: Some(d), ack, sent: now }, size);
                        n.acc.up_audio.0 += 1;
                        n.acc.up_audio.1 += u64::from(lost);
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
                    let ack = n.gw_ack.take(now);
                    let size = data.len() + DOWN_OVERHEAD + if ack.is_some() { ACK_FRAME } else { 0 };
                    n.acc.down_bytes += size as u64;
                    let lost = n.push(false, now, Pkt { data: Some(data), ack, sent: now }, size);
                    n.acc.down_audio.0 += 1;
                    n.acc.down_audio.1 += u64::from(lost);
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
        // ACKs nothing carried: packets of their own.
        for n in nodes.iter_mut() {
            if n.gw_ack.due(now) {
                let ack = n.gw_ack.take(now);
                n.acc.down_bytes += ACK_DOWN as u64;
                n.push(false, now, Pkt { data: None, ack, sent: now }, ACK_DOWN);
            }
            if n.cl_ack.due(now) {
                let ack = n.cl_ack.take(now);
                n.acc.up_bytes += ACK_UP as u64;
                n.push(true, now, Pkt { data: None, ack, sent: now }, ACK_UP);
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
        let t = &n.totals;
        let j = n.client.stats().receive.jitter;
        totals.push(LinkTotals {
            client: name.clone(),
            up_packets: t.up_audio.0,
            up_lost: t.up_audio.1,
            down_packets: t.down_audio.0,
            down_lost: t.down_audio.1,
            up_loss_pct: pct(t.up_audio.1, t.up_audio.0),
            down_loss_pct: pct(t.down_audio.1, t.down_audio.0),
            up_link_loss_pct: link_loss_pct(n.up.stats()),
            down_link_loss_pct: link_loss_pct(n.down.stats()),
            up_bytes: n.up.stats().bytes_in,
            down_bytes: n.down.stats().bytes_in,
            mean_rtt_ms: mean(t.rtt),
            mean_jitter_buffer_ms: (j.emitted > 0).then(|| j.delay_us as f64 / j.emitted as f64 / 1000.0),
        });
        n.heard.finalize()?;
    }
    let cpu_seconds = process_cpu_seconds() - cpu;
    Ok(SimOutcome { series, totals, heard: heard_paths, wall_seconds: wall.elapsed().as_secs_f64(), cpu_seconds })
}

/// Captures chunk `index - 1` and plays chunk `index` for each node.
fn audio_step(nodes: &mut [Node], index: u64, now: Time) -> anyhow::Result<()> {
    let mut chunk = [0i16; CHUNK];
    for n in nodes {
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
    let j = n.client.stats().receive.jitter;
    let a = std::mem::take(&mut n.acc);
    let (emitted, delay_us) = (j.emitted - a.jitter.0, j.delay_us - a.jitter.1);
    let row = Second {
        client: name.to_string(),
        second,
        up_kbps: a.up_bytes as f64 * 8.0 / 1000.0,
        down_kbps: a.down_bytes as f64 * 8.0 / 1000.0,
        up_loss_pct: pct(a.up_audio.1, a.up_audio.0),
        down_loss_pct: pct(a.down_audio.1, a.down_audio.0),
        up_delay_ms: mean(a.up_delay),
        down_delay_ms: mean(a.down_delay),
        rtt_ms: mean(a.rtt),
        jitter_buffer_ms: (emitted > 0).then(|| delay_us as f64 / emitted as f64 / 1000.0),
        concealed_pct: (j.concealed_samples - a.concealed) as f64 * 100.0 / RATE as f64,
    };
    for (t, x) in [(&mut n.totals.up_audio, a.up_audio), (&mut n.totals.down_audio, a.down_audio)] {
        t.0 += x.0;
        t.1 += x.1;
    }
    n.acc.concealed = j.concealed_samples;
    n.acc.jitter = (j.emitted, j.delay_us);
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
