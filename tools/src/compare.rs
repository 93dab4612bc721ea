//! `lowband-tools compare`: the same call twice over the same link — once in
//! virtual time (`sim`), once in real time with the real gateway and client
//! binaries behind the `netem` proxy — and which figures agree.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Serialize;

use lowband_core::link::record::{Dir, RecordedLink};

use crate::linkargs::{LinkArgs, LinkPair};
use crate::netem::{self, FlowReport};
use crate::procs::{free_udp_port, sibling_binary, GatewayProcess};
use crate::report::{self, TurnScore};
use crate::sim::{self, SimSpec, Turn, RATE};
use crate::sim_cli::load_speech;

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    #[arg(long, default_value_t = 3)]
    pub clients: usize,
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,
    #[arg(long)]
    pub speech: Vec<PathBuf>,
    #[arg(long, default_value_t = 6.0)]
    pub turn_seconds: f64,
    #[arg(long, default_value_t = 1.0)]
    pub gap_seconds: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value = "compare-out")]
    pub out: PathBuf,
    /// Sim runs, each with the gateway's report grid shifted by 1/N s; figures are their mean.
    #[arg(long, default_value_t = 4)]
    pub report_phases: usize,
    /// Real-time netem runs, one after another (each costs the call's length);
    /// figures are their mean. One run varies by points on a stalling trace.
    #[arg(long, default_value_t = 1)]
    pub netem_runs: usize,
    #[command(flatten)]
    pub link: LinkArgs,
}

#[derive(Serialize, Default, Clone)]
struct Side {
    mean_pesq_wb: Option<f64>,
    /// Per client.
    up_link_loss_pct: Vec<f64>,
    down_link_loss_pct: Vec<f64>,
    down_audio_loss_pct: Vec<f64>,
    rtt_ms: Vec<f64>,
    jitter_buffer_ms: Vec<f64>,
    up_kbps: Vec<f64>,
    down_kbps: Vec<f64>,
    turns: Vec<TurnScore>,
}

impl Side {
    /// All runs' clients and turns together: means over them are means over runs.
    fn merge(runs: &[Side]) -> Side {
        let cat = |f: &dyn Fn(&Side) -> &Vec<f64>| runs.iter().flat_map(|r| f(r).iter().copied()).collect::<Vec<f64>>();
        let turns: Vec<TurnScore> = runs.iter().flat_map(|r| r.turns.iter().cloned()).collect();
        Side {
            mean_pesq_wb: report::mean_pesq(&turns),
            up_link_loss_pct: cat(&|r| &r.up_link_loss_pct),
            down_link_loss_pct: cat(&|r| &r.down_link_loss_pct),
            down_audio_loss_pct: cat(&|r| &r.down_audio_loss_pct),
            rtt_ms: cat(&|r| &r.rtt_ms),
            jitter_buffer_ms: cat(&|r| &r.jitter_buffer_ms),
            up_kbps: cat(&|r| &r.up_kbps),
            down_kbps: cat(&|r| &r.down_kbps),
            turns,
        }
    }

    /// The headline figures, means over clients: PESQ-WB, uplink, downlink and
    /// downlink audio loss %, RTT ms, jitter-buffer ms.
    fn headline(&self) -> [f64; 6] {
        [
            self.mean_pesq_wb.unwrap_or(f64::NAN),
            mean(&self.up_link_loss_pct),
            mean(&self.down_link_loss_pct),
            mean(&self.down_audio_loss_pct),
            mean(&self.rtt_ms),
            mean(&self.jitter_buffer_ms),
        ]
    }
}

/// Prints one row per run (sim phase or netem run), their mean and their spread (max − min).
fn print_runs(what: &str, labels: &[String], runs: &[Side]) {
    println!("\n{what:<22} PESQ-WB  up loss %  down loss %  down audio %   RTT ms   buffer ms");
    let line = |label: &str, h: [f64; 6]| println!("{label:<22} {:7.2} {:10.2} {:12.2} {:13.2} {:8.0} {:11.0}", h[0], h[1], h[2], h[3], h[4], h[5]);
    let heads: Vec<[f64; 6]> = runs.iter().map(Side::headline).collect();
    for (l, h) in labels.iter().zip(&heads) {
        line(l, *h);
    }
    if runs.len() > 1 {
        line("mean", Side::merge(runs).headline());
        let spread: [f64; 6] = std::array::from_fn(|i| {
            let v: Vec<f64> = heads.iter().map(|h| h[i]).filter(|x| x.is_finite()).collect();
            v.iter().copied().fold(f64::NAN, f64::max) - v.iter().copied().fold(f64::NAN, f64::min)
        });
        line("spread (max − min)", spread);
    }
}


/// One client's whole input: its turns at their times, silence between.
fn timeline(turns: &[Turn], client: usize, seconds: f64) -> Vec<i16> {
    let mut x = vec![0i16; (seconds * RATE as f64) as usize];
    for t in turns.iter().filter(|t| t.client == client) {
        let s = t.start_sample();
        let n = t.speech.len().min(x.len().saturating_sub(s));
        x[s..s + n].copy_from_slice(&t.speech[..n]);
    }
    x
}

/// Mean of the finite values (NaN marks "not measured").
fn mean(v: &[f64]) -> f64 {
    let f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if f.is_empty() {
        f64::NAN
    } else {
        f.iter().sum::<f64>() / f.len() as f64
    }
}

pub fn run(a: &CompareArgs) -> anyhow::Result<()> {
    let link = a.link.build()?;
    let speech = load_speech(&a.speech)?;
    let names: Vec<String> = (0..a.clients).map(|k| format!("client{:02}", k + 1)).collect();
    let turns = sim::round_robin(&speech, a.clients, a.turn_seconds, a.gap_seconds, a.seconds);
    println!("comparing sim and netem: {} clients × {:.0} s over: {}", a.clients, a.seconds, link.description);

    // Where the gateway's 1 s report grid falls decides when adaptation sees
    // a stall begin (worth several points of a stalled client's loss); a real
    // gateway's phase is wherever its start put it. So the sim samples it.
    let sim_dir = a.out.join("sim");
    let phases: Vec<Duration> = (0..a.report_phases.max(1)).map(|i| Duration::from_millis(1000 * i as u64 / a.report_phases.max(1) as u64)).collect();
    let mut sim_runs = Vec::new();
    for (i, phase) in phases.iter().enumerate() {
        let dir = if i == 0 { sim_dir.clone() } else { sim_dir.join(format!("phase-{}ms", phase.as_millis())) };
        let spec = SimSpec {
            names: names.clone(),
            links: vec![link.clone(); a.clients],
            turns: turns.clone(),
            seconds: a.seconds,
            seed: a.seed,
            progress: true,
            decoder_complexity: None,
            profile: None,
            report_phase: *phase,
        };
        let s = sim::run(&spec, &dir)?;
        report::write_series_csv(&dir.join("series.csv"), &s.series)?;
        sim_runs.push(sim_side(&s, &names, report::score_turns(&names, &turns, &s.heard, false)?, a.seconds));
    }
    // netem in real time, run after run: each is one sample of the report
    // phase and of the machine's timing, so several are averaged like the sim's phases.
    let runs = a.netem_runs.max(1);
    let mut net_runs = Vec::new();
    let mut flows = Vec::new();
    for r in 0..runs {
        let dir = if runs == 1 { a.out.join("netem") } else { a.out.join(format!("netem/run-{}", r + 1)) };
        if runs > 1 {
            println!("netem run {} of {runs} ({:.0} s in real time)", r + 1, a.seconds);
        }
        let (side, f) = netem_run(a, &link, &names, &turns, &dir)?;
        net_runs.push(side);
        flows.push(f);
    }
    let sim_side = Side::merge(&sim_runs);
    let net_side = Side::merge(&net_runs);
    print_runs("sim, report phase", &phases.iter().map(|p| format!("  {} ms", p.as_millis())).collect::<Vec<_>>(), &sim_runs);
    print_runs("netem, run", &(1..=runs).map(|r| format!("  {r}")).collect::<Vec<_>>(), &net_runs);
    println!("\n(means over clients{})          sim      netem    netem − sim   goal", if runs > 1 { " and runs" } else { "" });
    let row = |label: &str, x: f64, y: f64, goal: &str| println!("{label:<34}{x:8.2} {y:10.2} {:12.2}   {goal}", y - x);
    if let (Some(x), Some(y)) = (sim_side.mean_pesq_wb, net_side.mean_pesq_wb) {
        row("PESQ-WB, all turns", x, y, "|Δ| ≤ 0.2");
    }
    for t in &names {
        let m = |sc: &[TurnScore]| mean(&sc.iter().filter(|x| &x.talker == t).filter_map(|x| x.pesq_wb).collect::<Vec<_>>());
        row(&format!("PESQ-WB, talker {t}"), m(&sim_side.turns), m(&net_side.turns), "");
    }
    row("uplink loss %, all packets", mean(&sim_side.up_link_loss_pct), mean(&net_side.up_link_loss_pct), "|Δ| ≤ 1");
    row("downlink loss %, all packets", mean(&sim_side.down_link_loss_pct), mean(&net_side.down_link_loss_pct), "|Δ| ≤ 1");
    row("downlink audio loss %", mean(&sim_side.down_audio_loss_pct), mean(&net_side.down_audio_loss_pct), "|Δ| ≤ 1");
    row("smoothed RTT ms, per-second mean", mean(&sim_side.rtt_ms), mean(&net_side.rtt_ms), "");
    row("jitter-buffer delay ms", mean(&sim_side.jitter_buffer_ms), mean(&net_side.jitter_buffer_ms), "");
    row("uplink kbit/s on the wire", mean(&sim_side.up_kbps), mean(&net_side.up_kbps), "");
    row("downlink kbit/s on the wire", mean(&sim_side.down_kbps), mean(&net_side.down_kbps), "");
    println!("(all packets: audio and ACK-only packets on the link; netem also counts the handshake and");
    println!(" control stream. Downlink audio loss, netem: sequence gaps in each client's --record-link file,");
    println!(" so it includes datagrams quinn dropped from its send queue; sim: likewise, from its QUIC model.");
    println!(" RTT: the client's smoothed estimate once a second, sim from its modelled ACKs, netem quinn's. netem per client: {:.2?} audio loss)", net_side.down_audio_loss_pct);
    println!("\nsim (all report phases):");
    report::print_scores(&names, &sim_side.turns);
    println!("netem with the real binaries{}:", if runs > 1 { " (all runs)" } else { "" });
    report::print_scores(&names, &net_side.turns);
    #[derive(Serialize)]
    struct Both<'a> {
        link: &'a str,
        sim: Side,
        netem: Side,
        sim_phases: Vec<Side>,
        netem_runs: Vec<Side>,
        netem_flows: Vec<Vec<FlowReport>>,
    }
    report::write_json(&a.out.join("compare.json"), &Both { link: &link.description, sim: sim_side, netem: net_side, sim_phases: sim_runs, netem_runs: net_runs, netem_flows: flows })?;
    println!("details: {}", a.out.join("compare.json").display());
    Ok(())
}

/// One sim run's figures, per client, as netem's are gathered.
fn sim_side(s: &sim::SimOutcome, names: &[String], turns: Vec<TurnScore>, seconds: f64) -> Side {
    let t = &s.totals;
    Side {
        mean_pesq_wb: report::mean_pesq(&turns),
        up_link_loss_pct: t.iter().map(|t| t.up_link_loss_pct).collect(),
        down_link_loss_pct: t.iter().map(|t| t.down_link_loss_pct).collect(),
        down_audio_loss_pct: t.iter().map(|t| t.down_loss_pct).collect(),
        // Like netem's: the client's smoothed RTT once a second, after the first two.
        rtt_ms: names.iter().map(|n| mean(&s.series.iter().filter(|r| &r.client == n).skip(2).map(|r| r.srtt_ms).collect::<Vec<_>>())).collect(),
        jitter_buffer_ms: t.iter().map(|t| t.mean_jitter_buffer_ms.unwrap_or(f64::NAN)).collect(),
        up_kbps: t.iter().map(|t| t.up_bytes as f64 * 8.0 / seconds / 1000.0).collect(),
        down_kbps: t.iter().map(|t| t.down_bytes as f64 * 8.0 / seconds / 1000.0).collect(),
        turns,
    }
}

/// One real-time call: a real gateway, the netem proxy and a real client per
/// name, writing into `dir`; its figures and netem's per-flow counters.
fn netem_run(a: &CompareArgs, link: &LinkPair, names: &[String], turns: &[Turn], dir: &Path) -> anyhow::Result<(Side, Vec<FlowReport>)> {
    let net_dir = dir;
    std::fs::create_dir_all(net_dir)?;
    let gateway = GatewayProcess::start(&net_dir.join("gateway-state"), &net_dir.join("gateway.log"))?;
    let port = free_udp_port()?;
    let proxy: std::net::SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let gw_addr: std::net::SocketAddr = gateway.addr.parse()?;
    let (proxy_thread, stop_tx) = netem::spawn(proxy, gw_addr, link.clone(), a.seed, None);
    std::thread::sleep(Duration::from_millis(200));
    let client_bin = sibling_binary("lowband")?;
    let mut children = Vec::new();
    let mut heard = Vec::new();
    for (k, name) in names.iter().enumerate() {
        let input = net_dir.join(format!("{name}-says.wav"));
        crate::report::write_wav(&input, &timeline(turns, k, a.seconds))?;
        let out = net_dir.join(format!("{name}-heard.wav"));
        heard.push(out.clone());
        let child = Command::new(&client_bin)
            .args(["join", &proxy.to_string(), "compare-room", "--name", name, "--fingerprint", &gateway.fingerprint])
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&out)
            .args(["--duration", &a.seconds.to_string()])
            .arg("--record-link")
            .arg(net_dir.join(format!("{name}-link.csv")))
            .arg("--report")
            .arg(net_dir.join(format!("{name}-report.json")))
            .env("LOWBAND_CONFIG_DIR", net_dir.join("client-config"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(net_dir.join(format!("{name}.log")))?)
            .spawn()
            .context("starting lowband")?;
        children.push(child);
    }
    let bar = crate::progress::bar(true, a.seconds as u64, "real s");
    for i in 0..a.seconds as u64 {
        std::thread::sleep(Duration::from_secs(1));
        bar.set_position(i + 1);
    }
    for (name, mut c) in names.iter().zip(children) {
        if !c.wait()?.success() {
            bail!("client {name} failed; see {}", net_dir.join(format!("{name}.log")).display());
        }
    }
    bar.finish_and_clear();
    let _ = stop_tx.send(());
    let flows = proxy_thread.join().map_err(|_| anyhow::anyhow!("netem thread panicked"))??;
    drop(gateway);
    let net_scores = report::score_turns(names, turns, &heard, false)?;
    let mut net_side = Side { mean_pesq_wb: report::mean_pesq(&net_scores), turns: net_scores, ..Default::default() };
    for n in names {
        // Audio packets only, end to end, as each client's --record-link saw them.
        let text = std::fs::read_to_string(net_dir.join(format!("{n}-link.csv")))?;
        let p = RecordedLink::parse(&text)?.loss_pattern(Dir::Down);
        net_side.down_audio_loss_pct.push(p.iter().filter(|&&l| l).count() as f64 * 100.0 / p.len().max(1) as f64);
        let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(net_dir.join(format!("{n}-report.json")))?)?;
        // quinn's smoothed RTT once a second, after the handshake settles.
        let rtts: Vec<f64> = r["wire_series"].as_array().into_iter().flatten().skip(2).filter_map(|w| w["rtt_ms"].as_f64()).collect();
        net_side.rtt_ms.push(mean(&rtts));
        net_side.jitter_buffer_ms.push(r["mean_jitter_buffer_ms"].as_f64().unwrap_or(f64::NAN));
    }
    for f in &flows {
        net_side.up_link_loss_pct.push(f.up.loss_pct);
        net_side.down_link_loss_pct.push(f.down.loss_pct);
        net_side.up_kbps.push(f.up.bytes as f64 * 8.0 / a.seconds / 1000.0);
        net_side.down_kbps.push(f.down.bytes as f64 * 8.0 / a.seconds / 1000.0);
    }
    Ok((net_side, flows))
}
