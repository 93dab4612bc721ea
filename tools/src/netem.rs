//! `lowband-tools netem`: a real-time UDP proxy on loopback. Clients connect
//! to the proxy's port instead of the gateway's; every client flow (source
//! address) gets its own uplink and downlink [`Link`] model and its own
//! upstream socket, so the gateway sees one address per client. The links
//! are the same sans-IO models `sim` uses, driven by the wall clock.
//!
//! Sizes given to the link are IPv4 packet sizes (UDP payload + 28), as a
//! mahimahi trace or a rate limit counts them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use lowband_core::link::{Link, LinkStats};
use lowband_core::Time;
use serde::Serialize;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::linkargs::{LinkArgs, LinkPair};

/// IPv4 + UDP header bytes around each datagram.
pub const IP_UDP: usize = 28;

#[derive(Debug, clap::Args)]
pub struct NetemArgs {
    /// Where clients connect (loopback only is the intended use).
    #[arg(long, default_value = "127.0.0.1:4500")]
    pub listen: SocketAddr,
    /// The real gateway, host:port.
    #[arg(long)]
    pub gateway: SocketAddr,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Write per-flow link counters as JSON here when stopping.
    #[arg(long)]
    pub report: Option<std::path::PathBuf>,
    /// No live counters on stdout.
    #[arg(long)]
    pub quiet: bool,
    /// At this many seconds, give every client flow a new upstream port, as a
    /// NAT rebinding does: the gateway sees each client move to a new address.
    #[arg(long)]
    pub rebind_at: Option<f64>,
    #[command(flatten)]
    pub link: LinkArgs,
}

#[derive(Debug, Clone, Serialize)]
pub struct FlowReport {
    pub client: String,
    pub up: LinkCounters,
    pub down: LinkCounters,
}

#[derive(Debug, Clone, Serialize)]
pub struct LinkCounters {
    pub packets: u64,
    pub bytes: u64,
    pub delivered: u64,
    pub lost_random: u64,
    pub lost_outage: u64,
    pub dropped_queue: u64,
    pub loss_pct: f64,
}

impl From<LinkStats> for LinkCounters {
    fn from(s: LinkStats) -> Self {
        LinkCounters {
            packets: s.packets_in,
            bytes: s.bytes_in,
            delivered: s.delivered,
            lost_random: s.lost_random,
            lost_outage: s.lost_outage,
            dropped_queue: s.dropped_queue,
            loss_pct: if s.packets_in == 0 { 0.0 } else { s.lost() as f64 * 100.0 / s.packets_in as f64 },
        }
    }
}

struct Flow {
    addr: SocketAddr,
    upstream: Arc<UdpSocket>,
    up: Link<Vec<u8>>,
    down: Link<Vec<u8>>,
    last: (LinkStats, LinkStats),
}

enum Event {
    FromClient(SocketAddr, Vec<u8>),
    FromGateway(usize, Vec<u8>),
}

pub fn run(a: &NetemArgs) -> anyhow::Result<()> {
    let link = a.link.build()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let flows = rt.block_on(async {
        let listener = UdpSocket::bind(a.listen).await.with_context(|| format!("binding {}", a.listen))?;
        println!("netem listening on {} → gateway {} over: {}", listener.local_addr()?, a.gateway, link.description);
        let stop = async {
            match a.seconds {
                Some(s) => tokio::time::sleep(Duration::from_secs_f64(s)).await,
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        };
        serve(listener, a.gateway, link, a.seed, !a.quiet, a.rebind_at.map(Duration::from_secs_f64), stop).await
    })?;
    for f in &flows {
        println!(
            "{}: up {} packets, {:.2} % lost; down {} packets, {:.2} % lost",
            f.client, f.up.packets, f.up.loss_pct, f.down.packets, f.down.loss_pct
        );
    }
    if let Some(p) = &a.report {
        crate::report::write_json(p, &flows)?;
    }
    Ok(())
}

/// Runs [`serve`] on its own thread until the returned sender fires (or is dropped).
pub fn spawn(
    listen: SocketAddr,
    gateway: SocketAddr,
    link: LinkPair,
    seed: u64,
    rebind_at: Option<Duration>,
) -> (std::thread::JoinHandle<anyhow::Result<Vec<FlowReport>>>, tokio::sync::oneshot::Sender<()>) {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || -> anyhow::Result<Vec<FlowReport>> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(async move {
            let sock = UdpSocket::bind(listen).await?;
            serve(sock, gateway, link, seed, false, rebind_at, async {
                let _ = stop_rx.await;
            })
            .await
        })
    });
    (thread, stop_tx)
}

/// Binds a new upstream socket for flow `k` and relays what the gateway sends to it.
async fn upstream(gateway: SocketAddr, k: usize, tx: &mpsc::UnboundedSender<Event>) -> anyhow::Result<(Arc<UdpSocket>, tokio::task::JoinHandle<()>)> {
    let upstream = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
    upstream.connect(gateway).await?;
    let (u, tx) = (upstream.clone(), tx.clone());
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while let Ok(n) = u.recv(&mut buf).await {
            if tx.send(Event::FromGateway(k, buf[..n].to_vec())).is_err() {
                break;
            }
        }
    });
    Ok((upstream, task))
}

/// Relays until `stop`; returns each flow's counters, in order of first packet.
/// `rebind_at`: when every flow moves to a new upstream port (a NAT rebinding).
pub async fn serve(
    listener: UdpSocket,
    gateway: SocketAddr,
    link: LinkPair,
    seed: u64,
    live: bool,
    rebind_at: Option<Duration>,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<Vec<FlowReport>> {
    let listener = Arc::new(listener);
    let start = Instant::now();
    let now = || Time::from_micros(start.elapsed().as_micros() as u64);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let reader = {
        let (l, tx) = (listener.clone(), tx.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, from)) = l.recv_from(&mut buf).await {
                if tx.send(Event::FromClient(from, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        })
    };
    let mut flows: Vec<Flow> = Vec::new();
    let mut by_addr: HashMap<SocketAddr, usize> = HashMap::new();
    let mut tasks = vec![reader];
    let mut counters = tokio::time::interval(Duration::from_secs(1));
    counters.tick().await;
    tokio::pin!(stop);
    let mut rebind = rebind_at.map(|d| start + d);
    loop {
        let next = flows.iter().flat_map(|f| [f.up.poll_timeout(), f.down.poll_timeout()]).flatten().min();
        let mut wake = next.map(|t| start + Duration::from_micros(t.as_micros())).unwrap_or(start + Duration::from_secs(3600 * 24 * 365));
        if let Some(r) = rebind {
            wake = wake.min(r);
        }
        if rebind.is_some_and(|r| Instant::now() >= r) {
            rebind = None;
            for (k, f) in flows.iter_mut().enumerate() {
                let (u, task) = upstream(gateway, k, &tx).await?;
                f.upstream = u;
                tasks.push(task);
            }
            tracing::info!("every flow moved to a new upstream port");
            println!("{:6.1} s: NAT rebinding: every client flow has a new port", start.elapsed().as_secs_f64());
        }
        tokio::select! {
            _ = &mut stop => break,
            _ = counters.tick(), if live => print_counters(&mut flows, start.elapsed()),
            _ = tokio::time::sleep_until(wake.into()) => {}
            ev = rx.recv() => match ev {
                Some(Event::FromClient(from, data)) => {
                    let k = match by_addr.get(&from) {
                        Some(&k) => k,
                        None => {
                            let k = flows.len();
                            let (upstream, task) = upstream(gateway, k, &tx).await?;
                            tasks.push(task);
                            let seed_k = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ ((k as u64) << 8);
                            // Both directions' traces start with the flow's first
                            // packet, as mm-link starts both with its shell (and as
                            // `sim` starts them with the handshake).
                            let (mut up, mut down) = (Link::new(link.up.clone(), seed_k | 1), Link::new(link.down.clone(), seed_k | 2));
                            up.start(now());
                            down.start(now());
                            flows.push(Flow { addr: from, upstream, up, down, last: Default::default() });
                            by_addr.insert(from, k);
                            tracing::info!("new client flow {from}");
                            k
                        }
                    };
                    let size = data.len() + IP_UDP;
                    flows[k].up.push(now(), data, size);
                }
                Some(Event::FromGateway(k, data)) => {
                    let size = data.len() + IP_UDP;
                    flows[k].down.push(now(), data, size);
                }
                None => break,
            },
        }
        let t = now();
        for f in &mut flows {
            while let Some(d) = f.up.poll_deliver(t) {
                let _ = f.upstream.send(&d).await;
            }
            while let Some(d) = f.down.poll_deliver(t) {
                let _ = listener.send_to(&d, f.addr).await;
            }
        }
    }
    for t in tasks {
        t.abort();
    }
    Ok(flows.iter().map(|f| FlowReport { client: f.addr.to_string(), up: f.up.stats().into(), down: f.down.stats().into() }).collect())
}

fn print_counters(flows: &mut [Flow], elapsed: Duration) {
    for f in flows.iter_mut() {
        let (u, d) = (f.up.stats(), f.down.stats());
        let (lu, ld) = f.last;
        let kbps = |a: LinkStats, b: LinkStats| (a.bytes_delivered - b.bytes_delivered) as f64 * 8.0 / 1000.0;
        let lost = |a: LinkStats, b: LinkStats| a.lost() - b.lost();
        println!(
            "{:6.0} s {}: up {:5.1} kbit/s lost {:3} (total {:5} / {:6}), queue {:5} B | down {:5.1} kbit/s lost {:3} (total {:5} / {:6}), queue {:5} B",
            elapsed.as_secs_f64(),
            f.addr,
            kbps(u, lu),
            lost(u, lu),
            u.lost(),
            u.packets_in,
            f.up.queued_bytes(),
            kbps(d, ld),
            lost(d, ld),
            d.lost(),
            d.packets_in,
            f.down.queued_bytes(),
        );
        f.last = (u, d);
    }
}
