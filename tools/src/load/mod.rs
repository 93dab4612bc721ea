//! `lowband-tools load`: N synthetic clients over real QUIC on loopback
//! against a real `lowband-gateway` process, in rooms with a few talkers
//! (pre-encoded speech in talk/pause turns) and silent listeners (DTX: they
//! send nothing), joining staggered, optionally churning. Measures the
//! gateway's CPU and memory from its own /proc accounting (the generator
//! shares the machine), each client's received packet rate, loss and
//! lateness, and mouth-to-ear through the mixer.

mod client;
mod procstat;
mod speech;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::procs::GatewayProcess;
use client::{ClientReport, Plan, RoomShared, Setup};

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Synthetic participants in all.
    #[arg(long, default_value_t = 150)]
    pub clients: usize,
    /// Participants per room (the last room takes the rest).
    #[arg(long, default_value_t = 150)]
    pub room_size: usize,
    /// Talkers per room (the others listen, silent).
    #[arg(long, default_value_t = 3)]
    pub talkers: usize,
    /// Seconds counted, after everyone has joined and a warm-up.
    #[arg(long, default_value_t = 30.0)]
    pub seconds: f64,
    /// Joins per second (staggered, like people arriving).
    #[arg(long, default_value_t = 50.0)]
    pub join_rate: f64,
    /// Listeners that leave and rejoin every --churn-every seconds.
    #[arg(long, default_value_t = 0)]
    pub churn: usize,
    #[arg(long, default_value_t = 10.0)]
    pub churn_every: f64,
    /// Downlink tier every listener hears (a tier name of the gateway).
    #[arg(long, default_value = "2g")]
    pub tier: String,
    /// Most talkers the gateway mixes per room.
    #[arg(long, default_value_t = 3)]
    pub max_talkers: usize,
    /// The gateway's uplink decoder complexity.
    #[arg(long, default_value_t = 5)]
    pub decoder_complexity: u8,
    /// The gateway's mix encoder complexity (default: the tiers' own).
    #[arg(long)]
    pub encoder_complexity: Option<u8>,
    /// Gateway mixer engines (0 = one per core).
    #[arg(long, default_value_t = 1)]
    pub engines: usize,
    /// Pin the gateway to this CPU (taskset), e.g. to model a one-core machine.
    #[arg(long)]
    pub gateway_cpu: Option<usize>,
    /// Run the generator at this niceness (it should not starve the gateway).
    #[arg(long, default_value_t = 5)]
    pub nice: i32,
    /// Run the gateway at this niceness (negative needs root: on a machine shared
    /// with other work, keeps the measured process from being starved by it).
    #[arg(long, default_value_t = 0)]
    pub gateway_nice: i32,
    /// Clients per client-side QUIC endpoint (UDP socket).
    #[arg(long, default_value_t = 25)]
    pub per_socket: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where the gateway's state, config and log go.
    #[arg(long, default_value = "load-out")]
    pub out: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub clients: usize,
    pub rooms: usize,
    pub talkers_per_room: usize,
    pub tier: String,
    pub window_s: f64,
    /// Gateway CPU over the window, % of one core (utime + stime from /proc).
    pub gateway_cpu_percent: f64,
    /// Generator CPU over the window, % of one core (for context: it shares the machine).
    pub generator_cpu_percent: f64,
    pub gateway_rss_kib_idle: u64,
    pub gateway_rss_kib_loaded: u64,
    pub rss_kib_per_participant: f64,
    pub listeners: usize,
    pub rx_packets_per_s: Quantiles,
    pub loss_percent: Quantiles,
    pub listeners_over_1pct_loss: usize,
    /// Packet arrival minus media time, above the best of its session, ms (all listeners' packets).
    pub lateness_ms: Quantiles,
    pub late_over_60ms_percent: f64,
    pub mouth_to_ear_ms: Quantiles,
    pub mouth_to_ear_samples: usize,
    pub jitter_target_ms: u64,
    /// An upper bound on what mixing adds: the whole mouth-to-ear on loopback,
    /// which also holds the gateway's uplink buffer (adaptive, so it cannot be
    /// subtracted as a constant).
    pub mixer_added_at_most_ms: Quantiles,
    /// The gateway's own counters over the window (from its /metrics, ±1 s).
    pub gateway_ticks: f64,
    pub gateway_skipped_ticks: f64,
    pub gateway_datagrams_out: f64,
    pub gateway_quic_packets_sent: f64,
    pub gateway_quic_packets_lost: f64,
    pub failed_connects: u32,
    pub sessions: u32,
    pub gateway_nice: i32,
    pub generator_nice: i32,
    /// The machine's 1-minute load average at the end (other work shares it).
    pub load_average: f64,
}

#[derive(Debug, Serialize, Default, Clone, Copy)]
pub struct Quantiles {
    pub min: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

fn quantiles(mut v: Vec<f64>) -> Quantiles {
    if v.is_empty() {
        return Quantiles::default();
    }
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    Quantiles { min: v[0], p50: q(0.5), p95: q(0.95), p99: q(0.99), max: v[v.len() - 1] }
}

const JITTER_TARGET_MS: u64 = 80;
const WARM_UP: Duration = Duration::from_secs(3);

pub fn run(args: &LoadArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)?;
    if args.nice != 0 {
        // Lower our own priority: the gateway is what is measured.
        let _ = std::process::Command::new("renice").args(["-n", &args.nice.to_string(), "-p", &std::process::id().to_string()]).output();
    }
    let config = args.out.join("gateway.toml");
    let metrics: std::net::SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    std::fs::write(
        &config,
        format!(
            "tiers = [\"2g\", \"edge\", \"3g\", \"good\"]\ndefault_tier = {:?}\nmax_talkers = {}\nengines = {}\njitter_target_ms = {JITTER_TARGET_MS}\nmax_room_size = {}\nmetrics_listen = \"{metrics}\"\ndecoder_complexity = {}\n{}",
            args.tier,
            args.max_talkers,
            args.engines,
            args.room_size.max(args.clients),
            args.decoder_complexity,
            args.encoder_complexity.map(|c| format!("encoder_complexity = {c}\n")).unwrap_or_default()
        ),
    )?;
    let mut prefix: Vec<String> = Vec::new();
    if args.gateway_nice != 0 {
        prefix.extend(["nice".into(), "-n".into(), args.gateway_nice.to_string()]);
    }
    if let Some(cpu) = args.gateway_cpu {
        prefix.extend(["taskset".into(), "-c".into(), cpu.to_string()]);
    }
    let gateway = GatewayProcess::start_with(&args.out.join("gateway-state"), &args.out.join("gateway.log"), Some(&config), &prefix)?;
    let speech = Arc::new(speech::load()?);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let summary = runtime.block_on(drive(args, &gateway, speech, metrics))?;
    drop(gateway);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    Ok(())
}

/// The gateway's own counters from `/metrics`.
async fn scrape(addr: std::net::SocketAddr) -> std::collections::HashMap<String, f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut text = String::new();
    if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        let _ = s.read_to_string(&mut text).await;
    }
    text.lines().filter(|l| l.starts_with("lowband_")).filter_map(|l| l.split_once(' ')).filter_map(|(k, v)| Some((k.to_string(), v.trim().parse().ok()?))).collect()
}

async fn drive(args: &LoadArgs, gateway: &GatewayProcess, speech: Arc<speech::Speech>, metrics: std::net::SocketAddr) -> anyhow::Result<Summary> {
    let addr = gateway.addr.parse().context("gateway address")?;
    let pid = gateway.pid();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_idle = procstat::rss_kib(pid).unwrap_or(0);
    let config = client_config(&gateway.fingerprint)?;
    let room_size = args.room_size.max(1);
    let rooms = args.clients.div_ceil(room_size);
    let shared: Vec<Arc<Mutex<RoomShared>>> = (0..rooms).map(|_| Arc::default()).collect();
    let t0 = Instant::now() + Duration::from_millis(200);
    let joins_done = t0 + Duration::from_secs_f64(args.clients as f64 / args.join_rate.max(0.1));
    let window = (joins_done + WARM_UP, joins_done + WARM_UP + Duration::from_secs_f64(args.seconds));
    let mut endpoints = Vec::new();
    let mut tasks = Vec::new();
    let mut churners = 0;
    for i in 0..args.clients {
        if i % args.per_socket.max(1) == 0 {
            let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
            ep.set_default_client_config(config.clone());
            endpoints.push(ep);
        }
        let room = i / room_size;
        let talker = i % room_size < args.talkers;
        let churn = !talker && churners < args.churn;
        churners += usize::from(churn);
        // Interleave rooms in the join order, as people arrive at several sessions.
        let order = (i % room_size) * rooms + room;
        let plan = Plan {
            index: i,
            room: format!("load-{room}"),
            talker,
            join_at: t0 + Duration::from_secs_f64(order as f64 / args.join_rate.max(0.1)),
            window,
            rejoin_every: churn.then(|| Duration::from_secs_f64(args.churn_every)),
            seed: args.seed.wrapping_mul(1_000_003).wrapping_add(i as u64),
        };
        let setup = Setup { addr, endpoint: endpoints.last().expect("made above").clone(), config: config.clone(), speech: speech.clone(), room: shared[room].clone() };
        tasks.push(tokio::spawn(client::run(plan, setup)));
    }
    tokio::time::sleep_until(window.0.into()).await;
    let (cpu0, gen0, w0) = (procstat::cpu_seconds(pid), procstat::cpu_seconds(std::process::id()), Instant::now());
    let m0 = scrape(metrics).await;
    tokio::time::sleep_until(window.1.into()).await;
    let (cpu1, gen1, w1) = (procstat::cpu_seconds(pid), procstat::cpu_seconds(std::process::id()), Instant::now());
    // The engine publishes its counters once a second: wait for the window's last.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let m1 = scrape(metrics).await;
    let delta = |k: &str| m1.get(k).copied().unwrap_or(0.0) - m0.get(k).copied().unwrap_or(0.0);
    let rss_loaded = procstat::rss_kib(pid).unwrap_or(0);
    let mut reports: Vec<ClientReport> = Vec::new();
    for t in tasks {
        reports.push(t.await?);
    }
    let wall = (w1 - w0).as_secs_f64();
    let pct = |a: Option<f64>, b: Option<f64>| a.zip(b).map_or(0.0, |(a, b)| (b - a) / wall * 100.0);
    let listeners: Vec<&ClientReport> = reports.iter().filter(|r| !r.talker).collect();
    let rates = listeners.iter().map(|r| r.received as f64 / args.seconds).collect();
    let loss: Vec<f64> = listeners.iter().map(|r| if r.expected == 0 { 100.0 } else { (r.expected.saturating_sub(r.received)) as f64 * 100.0 / r.expected as f64 }).collect();
    let over = loss.iter().filter(|&&l| l > 1.0).count();
    let lateness: Vec<f64> = listeners.iter().flat_map(|r| r.lateness_ms.iter().map(|&x| f64::from(x))).collect();
    let late = lateness.iter().filter(|&&x| x > 60.0).count() as f64 * 100.0 / lateness.len().max(1) as f64;
    let m2e: Vec<f64> = shared.iter().flat_map(|r| r.lock().unwrap_or_else(|e| e.into_inner()).mouth_to_ear_ms.clone()).collect();
    Ok(Summary {
        clients: args.clients,
        rooms,
        talkers_per_room: args.talkers,
        tier: args.tier.clone(),
        window_s: wall,
        gateway_cpu_percent: pct(cpu0, cpu1),
        generator_cpu_percent: pct(gen0, gen1),
        gateway_rss_kib_idle: rss_idle,
        gateway_rss_kib_loaded: rss_loaded,
        rss_kib_per_participant: rss_loaded.saturating_sub(rss_idle) as f64 / args.clients.max(1) as f64,
        listeners: listeners.len(),
        rx_packets_per_s: quantiles(rates),
        loss_percent: quantiles(loss),
        listeners_over_1pct_loss: over,
        lateness_ms: quantiles(lateness),
        late_over_60ms_percent: late,
        mouth_to_ear_samples: m2e.len(),
        mouth_to_ear_ms: quantiles(m2e.clone()),
        jitter_target_ms: JITTER_TARGET_MS,
        mixer_added_at_most_ms: quantiles(m2e),
        gateway_ticks: delta("lowband_mixer_ticks_total"),
        gateway_skipped_ticks: delta("lowband_mixer_skipped_ticks_total"),
        gateway_datagrams_out: delta("lowband_audio_datagrams_sent_total"),
        gateway_quic_packets_sent: delta("lowband_wire_sent_packets_total"),
        gateway_quic_packets_lost: delta("lowband_wire_lost_packets_total"),
        failed_connects: reports.iter().map(|r| r.failed_connects).sum(),
        gateway_nice: args.gateway_nice,
        generator_nice: args.nice,
        load_average: std::fs::read_to_string("/proc/loadavg").ok().and_then(|l| l.split_whitespace().next()?.parse().ok()).unwrap_or(0.0),
        sessions: reports.iter().map(|r| r.sessions).sum(),
    })
}

fn client_config(fingerprint: &str) -> anyhow::Result<quinn::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(lowband_quic::FingerprintVerifier::new(Some(fingerprint.to_string()), provider.clone()));
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![lowband_quic::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(lowband_quic::shared_transport());
    Ok(config)
}

fn print_summary(s: &Summary) {
    let q = |q: &Quantiles| format!("p50 {:.1}  p95 {:.1}  p99 {:.1}  max {:.1}", q.p50, q.p95, q.p99, q.max);
    println!("load: {} clients in {} room(s), {} talkers each, listeners on tier {}, {:.1} s counted", s.clients, s.rooms, s.talkers_per_room, s.tier, s.window_s);
    println!("  gateway CPU        {:.1} % of one core (its own utime+stime; generator used {:.1} %)", s.gateway_cpu_percent, s.generator_cpu_percent);
    println!(
        "  gateway RSS        {} KiB idle, {} KiB loaded: {:.1} KiB per participant",
        s.gateway_rss_kib_idle, s.gateway_rss_kib_loaded, s.rss_kib_per_participant
    );
    println!("  rx packets/s       {} (per listener, {} listeners)", q(&s.rx_packets_per_s), s.listeners);
    println!("  loss %             {}  — {} listener(s) over 1 %", q(&s.loss_percent), s.listeners_over_1pct_loss);
    println!("  lateness ms        {}  — {:.2} % of packets over 60 ms", q(&s.lateness_ms), s.late_over_60ms_percent);
    println!("  mouth-to-ear ms    {}  ({} samples, talker onset → mix onset at each listener)", q(&s.mouth_to_ear_ms), s.mouth_to_ear_samples);
    println!("  mixer-added ms  ≤  {}  (bounded by mouth-to-ear: the gateway's uplink buffer adapts from {} ms)", q(&s.mixer_added_at_most_ms), s.jitter_target_ms);
    println!(
        "  gateway counters   {:.0} room ticks, {:.0} skipped (fell behind); {:.0} mix datagrams; QUIC packets {:.0} sent, {:.0} declared lost",
        s.gateway_ticks, s.gateway_skipped_ticks, s.gateway_datagrams_out, s.gateway_quic_packets_sent, s.gateway_quic_packets_lost
    );
    println!(
        "  sessions {}  failed connects {}; nice: gateway {}, generator {}; machine load average {:.1} on {} cores",
        s.sessions,
        s.failed_connects,
        s.gateway_nice,
        s.generator_nice,
        s.load_average,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
}
