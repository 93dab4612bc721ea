//! `lowband-tools sim`: a call in virtual time. The core's gateway and N
//! clients run exactly as in the real shells, but datagrams cross seeded
//! [`Link`] models instead of sockets and no clock is read, so a 15-minute
//! call takes seconds and a seed fixes every byte of what each client hears.
//! Each client's view of its link is written as `<name>-link.csv`, in the
//! format of `lowband join --record-link`.
//!
//! Simplifications, on purpose: control messages (join, roster) cross an
//! idealised reliable channel with the link's base delay, not the lossy link.
//! QUIC is reduced to what shapes audio on a thin link ([`crate::quic_model`]):
//! per-packet overhead, the congestion window with lowband's media floor, the
//! datagram send buffer, coalescing, ACKs (which queue on the link like any
//! packet) and probe timeouts. RTT is what those ACKs measure, as QUIC's
//! estimator does.

use std::collections::BTreeMap;

use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use lowband_core::adapt::ladder;
use lowband_core::client::{Client, ClientConfig, Transmit};
use lowband_core::profile::Profile;
use lowband_core::client::{PLAYOUT_STEP, PLAYOUT_STEP_MS};
use lowband_core::codec::CHUNK;
use lowband_core::gateway::{Gateway, GatewayConfig, Output};
use lowband_core::link::record::LinkRecorder;
use lowband_core::link::{Link, LinkConfig, LinkStats};
use lowband_core::wire::audio::AudioPacket;
use lowband_core::Time;
use serde::Serialize;

use crate::linkargs::LinkPair;
use crate::quic_model::{Ack, AckState, Sender, ACK_FRAME, DATAGRAM_FRAME, PACKET_DOWN, PACKET_UP, Control};

/// IPv4 bytes around each uplink audio datagram: IP + UDP (28), QUIC short
/// header flags (1), the gateway's 4-byte connection id, packet number (1),
/// DATAGRAM frame type and length (2), AEAD tag (16). See quic/src/tuning.rs.
pub const UP_OVERHEAD: usize = PACKET_UP + DATAGRAM_FRAME;
/// Downlink: the same without a connection id (clients use zero-length ones).
pub const DOWN_OVERHEAD: usize = PACKET_DOWN + DATAGRAM_FRAME;
/// A packet carrying only an ACK frame (FACTS.md: 61-67 bytes from a client).
pub const ACK_UP: usize = PACKET_UP + ACK_FRAME;
pub const ACK_DOWN: usize = PACKET_DOWN + ACK_FRAME;
pub const RATE: usize = 16_000;
/// Audio moves every playout step: the client pulls its receive buffer that
/// finely, and captures a 20 ms chunk every [`STEPS_PER_CHUNK`] steps.
const TICK: Duration = Duration::from_millis(PLAYOUT_STEP_MS as u64);
const STEPS_PER_CHUNK: u64 = (CHUNK / PLAYOUT_STEP) as u64;
/// Threads sharing the clients' audio (encode, decode) each playout step.
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
    /// Every stream on this one profile; `None`: rate adaptation over the link ladder.
    pub profile: Option<Profile>,
    /// Decoder complexity of every receive stream (clients and gateway);
    /// `None` keeps the profiles' (7: NoLACE). See `sim --fast`.
    pub decoder_complexity: Option<u8>,
    /// Where the gateway's 1 s receiver-report grid falls (see `GatewayConfig::report_phase`).
    pub report_phase: Duration,
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
    /// Audio datagrams lost: on the link (queue, random loss, outages) or
    /// dropped from the sender's full QUIC datagram buffer.
    pub up_loss_pct: f64,
    pub down_loss_pct: f64,
    pub up_delay_ms: Option<f64>,
    pub down_delay_ms: Option<f64>,
    /// Mean RTT sample of the ACKs that arrived this second (either end), as
    /// QUIC measures it: ACK arrival − send time of the newest packet it
    /// acknowledges − the receiver's ACK delay.
    pub rtt_ms: Option<f64>,
    /// The client's smoothed RTT at the end of the second, as quinn's
    /// `Connection::rtt` reports it (what a real client's report shows).
    pub srtt_ms: f64,
    /// Mean time the audio played this second waited in the client's jitter buffer.
    pub jitter_buffer_ms: Option<f64>,
    /// Share of the played audio that was concealment.
    pub concealed_pct: f64,
    /// The client's uplink profile at the end of the second.
    pub profile: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LinkTotals {
    pub client: String,
    /// Audio datagrams sent, and lost on the link or from the send buffer.
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

#[derive(Clone)]
struct Pkt {
    /// Audio datagrams (coalesced), each with when it was handed to QUIC;
    /// none in an ACK-only packet or a probe.
    datagrams: Vec<(Vec<u8>, Time)>,
    /// Control-stream frames it carries.
    control: Vec<Control>,
    ack: Option<Ack>,
    sent: Time,
    /// Not an ACK-only packet: the other end acknowledges it.
    eliciting: bool,
    pn: u64,
}

/// Per client, the counters of the second in progress.
#[derive(Default, Clone)]
struct Acc {
    up_bytes: u64,
    down_bytes: u64,
    up_delay: (f64, u32),
    down_delay: (f64, u32),
    rtt: (f64, u32),
    /// Audio datagrams handed to each direction, and lost (link or send buffer).
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
    /// Control frames that arrived ahead of a lost one, by stream index, and the next due.
    ctrl_up: (BTreeMap<u64, Vec<u8>>, u64),
    ctrl_down: (BTreeMap<u64, Vec<u8>>, u64),
    turns: Vec<Turn>,
    heard: hound::WavWriter<std::io::BufWriter<std::fs::File>>,
    acc: Acc,
    totals: Totals,
    /// The gateway owes this client ACKs (sent down), the client owes the gateway (sent up).
    gw_ack: AckState,
    cl_ack: AckState,
    /// What the client saw of its link, as `lowband join --record-link` writes it.
    record: LinkRecorder,
    /// quinn's sending side: the client's for the uplink, the gateway's for the downlink.
    up_tx: Sender,
    down_tx: Sender,
}

impl Node {
    /// Offers a packet to one direction's link; true if the link lost it.
    fn push(&mut self, up: bool, now: Time, pkt: Pkt, size: usize) -> bool {
        let link = if up { &mut self.up } else { &mut self.down };
        let before = link.stats().lost();
        link.push(now, pkt, size);
        link.stats().lost() > before
    }

    /// Puts on both links what quinn would send now, with any ACK owed riding along.
    fn send_packets(&mut self, now: Time) {
        for up in [true, false] {
            loop {
                let tx = if up { &mut self.up_tx } else { &mut self.down_tx };
                let Some(p) = tx.poll_packet(now) else { break };
                let ack = if up { self.cl_ack.take(now) } else { self.gw_ack.take(now) };
                let size = p.size + if ack.is_some() { ACK_FRAME } else { 0 };
                let count = p.datagrams.len() as u64;
                let pn = if up { self.up_tx.take_pn() } else { self.down_tx.take_pn() };
                let control = p.control.clone();
                let lost = self.push(up, now, Pkt { datagrams: p.datagrams, control: p.control, ack, sent: now, eliciting: true, pn }, size);
                let (tx, acc) = if up { (&mut self.up_tx, &mut self.acc.up_audio) } else { (&mut self.down_tx, &mut self.acc.down_audio) };
                tx.on_sent(now, size, lost, control);
                if lost {
                    acc.1 += count;
                }
                if up {
                    self.acc.up_bytes += size as u64;
                } else {
                    self.acc.down_bytes += size as u64;
                }
            }
        }
    }

    /// A packet arrived over the uplink (`up`) or the downlink: its ACK,
    /// what the receiving end now owes, one-way delay. Returns its datagrams
    /// and the control-stream frames now in order.
    fn arrive(&mut self, up: bool, now: Time, p: Pkt) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let (held, next) = if up { &mut self.ctrl_up } else { &mut self.ctrl_down };
        held.extend(p.control);
        let mut control = Vec::new();
        while let Some(c) = held.remove(next) {
            control.push(c);
            *next += 1;
        }
        // An ACK travelling up acknowledges the downlink's packets, and the reverse.
        self.on_ack(!up, now, p.ack);
        let (owed, delay) = if up { (&mut self.gw_ack, &mut self.acc.up_delay) } else { (&mut self.cl_ack, &mut self.acc.down_delay) };
        if p.eliciting {
            owed.on_receive(now, p.sent, p.pn);
        } else {
            owed.saw(p.pn);
        }
        let datagrams = p
            .datagrams
            .into_iter()
            .map(|(data, queued)| {
                delay.0 += (now - queued).as_secs_f64() * 1000.0;
                delay.1 += 1;
                data
            })
            .collect();
        (datagrams, control)
    }

    /// An ACK arrived for the uplink's sender (`up`) or the downlink's.
    fn on_ack(&mut self, up: bool, now: Time, ack: Option<Ack>) {
        if let Some(a) = ack {
            let tx = if up { &mut self.up_tx } else { &mut self.down_tx };
            let rtt = tx.on_ack(now, a).as_secs_f64() * 1000.0;
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
    let (mut gw_config, mut client_config) = configs(spec.profile.as_ref());
    if let Some(c) = spec.decoder_complexity {
        for t in &mut gw_config.tiers {
            t.decoder_complexity = c;
        }
        for p in &mut client_config.ladder {
            p.decoder_complexity = c;
        }
    }
    gw_config.report_phase = spec.report_phase;
    let mut nodes = Vec::new();
    let mut heard_paths = Vec::new();
    // As in netem, traces start with each client's QUIC handshake, and the
    // call (control, the audio clock, the talk schedule) once it is done.
    let handshakes: Vec<Time> = spec
        .links
        .iter()
        .enumerate()
        .map(|(k, l)| crate::quic_model::handshake_done(&l.up, &l.down, (seed_for(spec.seed, k, 1), seed_for(spec.seed, k, 2))))
        .collect();
    let t0 = handshakes.iter().copied().max().unwrap_or(Time::ZERO);
    // The mixer ticks on the clients' audio grid: both then fall due at one
    // instant, and run side by side (a real gateway's phase is arbitrary anyway).
    gw_config.tick_grid = Some(t0);
    let mut gateway = Gateway::new(gw_config);
    for (k, (name, link)) in spec.names.iter().zip(&spec.links).enumerate() {
        let path = out.join(format!("{name}-heard.wav"));
        // Arrival feedback fills the uplink side of each client's link record.
        let mut client = Client::new(ClientConfig { name: name.clone(), arrival_feedback: true, ..client_config.clone() }).context("client codec")?;
        // Hello and Join go out with the first packets after the handshake.
        let mut up_tx = Sender::new(PACKET_UP);
        let mut down_tx = Sender::new(PACKET_DOWN);
        // Both ends' first RTT sample is the handshake's round trip.
        let handshake = handshakes[k] - Time::ZERO;
        up_tx.seed_rtt(handshake);
        down_tx.seed_rtt(handshake);
        while let Some(t) = client.poll_transmit() {
            if let Transmit::Control(c) = t {
                up_tx.queue_control(c);
            }
        }
        gateway.handle_connect(k as u64);
        let (mut up, mut down) = (Link::new(link.up.clone(), seed_for(spec.seed, k, 1)), Link::new(link.down.clone(), seed_for(spec.seed, k, 2)));
        up.start(Time::ZERO);
        down.start(Time::ZERO);
        nodes.push(Node {
            client,
            up,
            down,
            ctrl_up: Default::default(),
            ctrl_down: Default::default(),
            turns: spec.turns.iter().filter(|t| t.client == k).cloned().collect(),
            heard: hound::WavWriter::create(&path, wav).with_context(|| format!("creating {}", path.display()))?,
            acc: Acc::default(),
            totals: Totals::default(),
            gw_ack: AckState::default(),
            cl_ack: AckState::default(),
            up_tx,
            down_tx,
            record: LinkRecorder::new(),
        });
        heard_paths.push(path);
    }
    let end = t0 + Duration::from_secs_f64(spec.seconds);
    let bar = crate::progress::bar(spec.progress, spec.seconds as u64, "simulated s");
    let mut series = Vec::new();
    let mut next_audio = t0;
    let mut step_index: u64 = 0;
    let mut second: u64 = 0;
    // The shells hand quinn's path stats to the adapters: clients every 250 ms, the gateway every second.
    let (mut next_client_path, mut next_gateway_path) = (t0, t0);

    loop {
        let mut now = next_audio;
        for n in &nodes {
            let links = [n.up.poll_timeout(), n.down.poll_timeout()];
            let quic = [n.gw_ack.deadline(), n.cl_ack.deadline(), n.up_tx.timeout(), n.down_tx.timeout()];
            for t in links.into_iter().chain(quic).flatten() {
                now = now.min(t);
            }
        }
        if let Some(t) = gateway.poll_timeout() {
            now = now.min(t);
        }
        // Close the seconds that ended before this event.
        let total_seconds = spec.seconds.ceil() as u64;
        while second < total_seconds && t0 + Duration::from_secs(second + 1) <= now {
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
                let (datagrams, control) = n.arrive(true, now, p);
                for c in control {
                    gateway.handle_control(now, k as u64, &c);
                }
                for data in datagrams {
                    gateway.handle_datagram(now, k as u64, &data);
                }
            }
            while let Some(p) = n.down.poll_deliver(now) {
                let (datagrams, control) = n.arrive(false, now, p);
                for c in control {
                    n.client.handle_control(&c).map_err(|e| anyhow::anyhow!("client {k}: {e}"))?;
                }
                for data in datagrams {
                    if let Ok(a) = AudioPacket::decode(&data) {
                        n.record.on_down(now - (t0 - Time::ZERO), a.header.seq, a.header.ts, data.len());
                    }
                    n.client.handle_datagram(now, &data);
                }
            }
            while let Some(a) = n.client.poll_arrivals() {
                n.record.on_up_arrivals(&a);
            }
        }
        let gateway_due = gateway.poll_timeout().is_some_and(|t| t <= now);
        // The clients' path stats come before their audio step; the gateway's
        // after its tick, which reads none of them.
        if now >= next_client_path {
            next_client_path = now + Duration::from_millis(250);
            for n in nodes.iter_mut() {
                n.client.handle_path(now, n.up_tx.path());
            }
        }
        // A playout step starts (at a chunk boundary the chunk before has just
        // been captured). Clients are independent here, and of the gateway's tick: rayon's workers
        // (one per core) take the tick and the clients one at a time, which
        // balances the talker's extra encode (same result in any order).
        let audio_due = now >= next_audio;
        let audio = |nodes: &mut Vec<Node>| nodes.par_iter_mut().try_for_each(|n| audio_step(n, step_index, now));
        match (gateway_due, audio_due) {
            (true, true) => rayon::join(|| gateway.handle_timeout(now), || audio(&mut nodes)).1?,
            (true, false) => gateway.handle_timeout(now),
            (false, true) => audio(&mut nodes)?,
            (false, false) => {}
        }
        if audio_due {
            step_index += 1;
            next_audio = t0 + TICK * step_index as u32;
        }
        if now >= next_gateway_path {
            next_gateway_path = now + Duration::from_secs(1);
            for (k, n) in nodes.iter().enumerate() {
                gateway.handle_path(k as u64, n.down_tx.path());
            }
        }
        for n in nodes.iter_mut() {
            while let Some(t) = n.client.poll_transmit() {
                match t {
                    Transmit::Datagram(d) => {
                        if let Ok(a) = AudioPacket::decode(&d) {
                            n.record.on_up(now - (t0 - Time::ZERO), a.header.seq, a.header.ts, d.len());
                        }
                        n.acc.up_audio.0 += 1;
                        n.acc.up_audio.1 += n.up_tx.queue(now, d);
                    }
                    Transmit::Control(c) => n.up_tx.queue_control(c),
                }
            }
            while n.client.poll_event().is_some() {}
        }
        while let Some(o) = gateway.poll_output() {
            match o {
                Output::Datagram { conn, data } => {
                    let n = &mut nodes[conn as usize];
                    n.acc.down_audio.0 += 1;
                    n.acc.down_audio.1 += n.down_tx.queue(now, data);
                }
                Output::Control { conn, data } => nodes[conn as usize].down_tx.queue_control(data),
                // Closing, attendance and recordings are the real shell's business.
                _ => {}
            }
        }
        for n in nodes.iter_mut() {
            n.send_packets(now);
            // ACKs nothing carried: packets of their own.
            if n.gw_ack.due(now) {
                let ack = n.gw_ack.take(now);
                n.acc.down_bytes += ACK_DOWN as u64;
                let pn = n.down_tx.take_pn();
                n.push(false, now, Pkt { datagrams: Vec::new(), control: Vec::new(), ack, sent: now, eliciting: false, pn }, ACK_DOWN);
            }
            if n.cl_ack.due(now) {
                let ack = n.cl_ack.take(now);
                n.acc.up_bytes += ACK_UP as u64;
                let pn = n.up_tx.take_pn();
                n.push(true, now, Pkt { datagrams: Vec::new(), control: Vec::new(), ack, sent: now, eliciting: false, pn }, ACK_UP);
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
        let mut record = n.record;
        let path = out.join(format!("{name}-link.csv"));
        std::fs::write(&path, record.finish()).with_context(|| format!("writing {}", path.display()))?;
    }
    let cpu_seconds = process_cpu_seconds() - cpu;
    Ok(SimOutcome { series, totals, heard: heard_paths, wall_seconds: wall.elapsed().as_secs_f64(), cpu_seconds })
}

/// At a chunk boundary captures the chunk that just ended; plays playout
/// step `step` for each node.
fn audio_step(n: &mut Node, step: u64, now: Time) -> anyhow::Result<()> {
    let mut chunk = [0i16; CHUNK];
    n.client.handle_timeout(now);
    if step > 0 && step % STEPS_PER_CHUNK == 0 {
        fill_capture(&n.turns, (step / STEPS_PER_CHUNK - 1) as usize * CHUNK, &mut chunk);
        n.client.push_capture(&chunk).context("encoding")?;
    }
    let mut out = [0i16; PLAYOUT_STEP];
    n.client.pull_playout(now, &mut out);
    // hound's 16-bit writer: a step at a time, not a sample at a time.
    let mut w = n.heard.get_i16_writer(PLAYOUT_STEP as u32);
    for &s in &out {
        w.write_sample(s);
    }
    w.flush()?;
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
        srtt_ms: n.up_tx.srtt().as_secs_f64() * 1000.0,
        jitter_buffer_ms: (emitted > 0).then(|| delay_us as f64 / emitted as f64 / 1000.0),
        concealed_pct: (j.concealed_samples - a.concealed) as f64 * 100.0 / RATE as f64,
        profile: if n.client.link().receive_only { "receive-only".into() } else { n.client.profile().name.clone() },
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
