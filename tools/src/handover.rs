//! `lowband-tools handover`: what a listener hears when the link fails or
//! moves. The real gateway and two real clients (a talker speaking
//! continuous speech and a listener) run behind the `netem` proxy, which
//! applies a link with an outage (`--outage START+LEN`) and/or moves every
//! client to a new port (`--rebind-at S`, a NAT rebinding). Afterwards:
//! - the audio gaps in the listener's recording (the talker never pauses, so
//!   every silent stretch is the link's doing), the one at each event, and the
//!   time from the link's return to audio heard again (gap − outage + the
//!   normal mouth-to-ear delay: both edges of the gap are that late);
//! - from the listener's `--record-link`, the queueing delay downlink audio
//!   saw (one-way delay above its minimum: link queue and QUIC's send queue).
//!
//! `LOWBAND_CONGESTION=cubic` in the environment runs both binaries with
//! quinn's plain Cubic instead of the media-floor controller.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use lowband_codec_tests::score::{rms_dbfs, score_turn};
use lowband_core::link::record::RecordedLink;
use serde::Serialize;

use crate::linkargs::LinkArgs;
use crate::netem;
use crate::procs::{free_udp_port, sibling_binary, GatewayProcess};
use crate::sim::RATE;
use crate::sim_cli::load_speech;

#[derive(Debug, clap::Args)]
pub struct HandoverArgs {
    #[arg(long, default_value_t = 40.0)]
    pub seconds: f64,
    /// Every client moves to a new port at this second (NAT rebinding).
    #[arg(long)]
    pub rebind_at: Option<f64>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value = "handover-out")]
    pub out: PathBuf,
    #[command(flatten)]
    pub link: LinkArgs,
}

/// 20 ms frames.
const FRAME: usize = RATE / 50;
/// A heard frame below this is a gap (concealment fading out counts as sound).
const SILENT_DBFS: f64 = -55.0;

#[derive(Debug, Clone, Serialize)]
pub struct Gap {
    /// Listener's timeline, s.
    pub start_s: f64,
    pub length_ms: f64,
}

#[derive(Serialize)]
struct Report {
    link: String,
    congestion: String,
    mouth_to_ear_ms: Option<f64>,
    gaps: Vec<Gap>,
    /// Per outage: its length and the time from the link's return to audio heard.
    outages: Vec<(f64, Option<f64>)>,
    rebind_gap_ms: Option<f64>,
    queueing_max_ms: Option<f64>,
    queueing_p95_ms: Option<f64>,
}

/// Speech with its pauses cut out, repeated to `seconds`: a talker that never stops.
fn continuous_speech(seconds: f64) -> anyhow::Result<Vec<i16>> {
    let mut voiced = Vec::new();
    for s in load_speech(&[])? {
        for f in s.chunks_exact(FRAME) {
            if rms_dbfs(f) > -40.0 {
                voiced.extend_from_slice(f);
            }
        }
    }
    anyhow::ensure!(!voiced.is_empty(), "no voiced speech found");
    let n = (seconds * RATE as f64) as usize;
    Ok(voiced.iter().copied().cycle().take(n).collect())
}

/// Silent stretches of ≥ 60 ms after the first sound.
pub fn gaps(heard: &[i16]) -> Vec<Gap> {
    let frames: Vec<bool> = heard.chunks(FRAME).map(|f| rms_dbfs(f) < SILENT_DBFS).collect();
    let Some(first) = frames.iter().position(|s| !s) else { return Vec::new() };
    let mut out = Vec::new();
    let mut run: Option<usize> = None;
    for (i, &silent) in frames.iter().enumerate().skip(first) {
        match (silent, run) {
            (true, None) => run = Some(i),
            (false, Some(s)) => {
                if i - s >= 3 {
                    out.push(Gap { start_s: s as f64 * 0.02, length_ms: (i - s) as f64 * 20.0 });
                }
                run = None;
            }
            _ => {}
        }
    }
    out
}


pub fn run(a: &HandoverArgs) -> anyhow::Result<()> {
    let link = a.link.build()?;
    let congestion = std::env::var("LOWBAND_CONGESTION").unwrap_or_else(|_| "mediafloor".into());
    println!("handover: talker and listener for {:.0} s over: {} (congestion control: {congestion})", a.seconds, link.description);
    std::fs::create_dir_all(&a.out)?;
    let said = continuous_speech(a.seconds)?;
    let says = a.out.join("talker-says.wav");
    crate::report::write_wav(&says, &said)?;

    let gateway = GatewayProcess::start(&a.out.join("gateway-state"), &a.out.join("gateway.log"))?;
    let proxy: std::net::SocketAddr = format!("127.0.0.1:{}", free_udp_port()?).parse()?;
    let gw_addr: std::net::SocketAddr = gateway.addr.parse()?;
    let (proxy_thread, stop_tx) = netem::spawn(proxy, gw_addr, link.clone(), a.seed, a.rebind_at.map(Duration::from_secs_f64));
    std::thread::sleep(Duration::from_millis(200));
    let client_bin = sibling_binary("lowband")?;
    let heard = a.out.join("listener-heard.wav");
    let record = a.out.join("listener-link.csv");
    let mut children = Vec::new();
    for (name, input, output) in [("listener", None, Some(&heard)), ("talker", Some(&says), None)] {
        let mut cmd = Command::new(&client_bin);
        cmd.args(["join", &proxy.to_string(), "handover-room", "--name", name, "--fingerprint", &gateway.fingerprint]);
        cmd.args(["--duration", &a.seconds.to_string()]);
        if let Some(i) = input {
            cmd.arg("--input").arg(i);
        }
        if let Some(o) = output {
            cmd.arg("--output").arg(o).arg("--record-link").arg(&record);
        }
        let child = cmd
            .env("LOWBAND_CONFIG_DIR", a.out.join("client-config"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(a.out.join(format!("{name}.log")))?)
            .spawn()
            .context("starting lowband")?;
        children.push((name, child));
        // The listener joins first so it hears the talker from its first word.
        std::thread::sleep(Duration::from_millis(300));
    }
    let bar = crate::progress::bar(true, a.seconds as u64, "real s");
    for i in 0..a.seconds as u64 {
        std::thread::sleep(Duration::from_secs(1));
        bar.set_position(i + 1);
    }
    for (name, mut c) in children {
        if !c.wait()?.success() {
            bail!("client {name} failed; see {}", a.out.join(format!("{name}.log")).display());
        }
    }
    bar.finish_and_clear();
    let _ = stop_tx.send(());
    proxy_thread.join().map_err(|_| anyhow::anyhow!("netem thread panicked"))??;
    drop(gateway);

    let rec = lowband_codec_tests::data::read_speech(&heard).map_err(anyhow::Error::msg)?;
    // The talker started ~0.3 s after the listener; align 5 s of speech from 3 s in.
    let seg = &said[3 * RATE..8 * RATE];
    let m2e = score_turn(seg, &rec, 3 * RATE, 3 * RATE).ok().map(|h| h.delay_ms);
    let gaps = gaps(&rec);
    let near = |t: f64, within: f64| gaps.iter().filter(|g| g.start_s >= t - 1.0 && g.start_s <= t + within).max_by(|x, y| x.length_ms.total_cmp(&y.length_ms)).cloned();
    let mut outages = Vec::new();
    for o in &link.up.outages {
        let (start, len) = (o.start.as_secs_f64(), o.length.as_secs_f64());
        let recovery = near(start, 2.0).zip(m2e).map(|(g, d)| g.length_ms - len * 1000.0 + d);
        outages.push((len, recovery));
    }
    let rebind_gap_ms = a.rebind_at.map(|t| near(t, 2.0).map_or(0.0, |g| g.length_ms));
    let (qmax, qp95) = queueing(&record)?;
    println!("mouth-to-ear delay: {}", m2e.map_or("n/a".into(), |d| format!("{d:.0} ms")));
    println!("gaps ≥ 60 ms in what the listener heard: {}", gaps.iter().map(|g| format!("{:.1} s: {:.0} ms", g.start_s, g.length_ms)).collect::<Vec<_>>().join(", "));
    for (len, r) in &outages {
        println!("outage of {len:.0} s: audio heard again {} after the link returned", r.map_or("never".into(), |x| format!("{x:.0} ms")));
    }
    if let Some(g) = rebind_gap_ms {
        println!("NAT rebinding: audio gap {g:.0} ms");
    }
    println!(
        "downlink queueing delay (one-way above its minimum): max {} ms, p95 {} ms",
        qmax.map_or("n/a".into(), |x| format!("{x:.0}")),
        qp95.map_or("n/a".into(), |x| format!("{x:.0}"))
    );
    let r = Report { link: link.description.clone(), congestion, mouth_to_ear_ms: m2e, gaps, outages, rebind_gap_ms, queueing_max_ms: qmax, queueing_p95_ms: qp95 };
    crate::report::write_json(&a.out.join("handover.json"), &r)?;
    println!("details: {}", a.out.join("handover.json").display());
    Ok(())
}

/// Max and p95 of each downlink audio packet's one-way delay above the minimum.
fn queueing(record: &std::path::Path) -> anyhow::Result<(Option<f64>, Option<f64>)> {
    let text = std::fs::read_to_string(record).with_context(|| format!("reading {}", record.display()))?;
    let rec = RecordedLink::parse(&text)?;
    // (arrival − media time) per packet, split where the media clock jumps
    // (a new stream after a rejoin): each stretch is measured from its own minimum.
    let mut rel = Vec::new();
    let mut stretch: Vec<f64> = Vec::new();
    let flush = |stretch: &mut Vec<f64>, rel: &mut Vec<f64>| {
        let min = stretch.iter().copied().fold(f64::INFINITY, f64::min);
        rel.extend(stretch.drain(..).map(|d| d - min));
    };
    for p in rec.down.values() {
        let (Some(m), Some(a)) = (p.media_us, p.arrived_us) else { continue };
        let d = (a as i64 - m) as f64 / 1000.0;
        if stretch.last().is_some_and(|&last| (d - last).abs() > 2000.0) {
            flush(&mut stretch, &mut rel);
        }
        stretch.push(d);
    }
    flush(&mut stretch, &mut rel);
    if rel.is_empty() {
        return Ok((None, None));
    }
    rel.sort_by(f64::total_cmp);
    let p95 = rel[(rel.len() * 95 / 100).min(rel.len() - 1)];
    Ok((rel.last().copied(), Some(p95)))
}
