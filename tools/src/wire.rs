//! `lowband-tools wire`: what one talker and one silent listener put on the
//! wire per second, per direction, at the default profile — real binaries,
//! real QUIC on loopback, counted from quinn's UDP counters as IPv4 packets.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};
use lowband_codec_tests::data::shared_file;

use crate::procs::{sibling_binary, GatewayProcess};

/// Steady-state window: after the handshake and the first talkspurt start,
/// before anyone leaves.
const FROM_S: usize = 2;
const CALL_S: f64 = 14.0;

pub fn run(out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let gateway = GatewayProcess::start(&out.join("gateway-state"), &out.join("gateway.log"))?;
    let client = sibling_binary("lowband")?;
    let speech = shared_file("speech/synthetic-case-presentation-16k.wav").map_err(anyhow::Error::msg)?;
    let spawn = |name: &str, input: Option<&Path>| -> anyhow::Result<std::process::Child> {
        let mut c = Command::new(&client);
        c.args(["join", &gateway.addr, "wire-room", "--name", name, "--fingerprint", &gateway.fingerprint]);
        c.args(["--duration", &CALL_S.to_string()]).arg("--output").arg(out.join(format!("{name}-heard.wav")));
        if let Some(i) = input {
            c.arg("--input").arg(i);
        }
        c.arg("--report").arg(out.join(format!("{name}.json"))).env("LOWBAND_CONFIG_DIR", out.join("cfg"));
        Ok(c.stdout(std::process::Stdio::null()).stderr(std::fs::File::create(out.join(format!("{name}.log")))?).spawn()?)
    };
    let children = [spawn("talker", Some(&speech))?, spawn("listener", None)?];
    for (name, mut c) in ["talker", "listener"].into_iter().zip(children) {
        if !c.wait()?.success() {
            bail!("{name} failed; see {}", out.join(format!("{name}.log")).display());
        }
    }
    println!("on the wire at the default profile ({} s window, IPv4 packet bytes = IP + UDP + QUIC + lowband + Opus):", CALL_S as usize - 1 - FROM_S);
    for name in ["talker", "listener"] {
        let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join(format!("{name}.json")))?)?;
        let series = r["wire_series"].as_array().context("report has no wire_series")?;
        let to = series.len().checked_sub(1).filter(|&n| n > FROM_S).context("call too short")?;
        let (a, b) = (&series[FROM_S], &series[to]);
        let secs = (b["t_ms"].as_f64().unwrap_or(0.0) - a["t_ms"].as_f64().unwrap_or(0.0)) / 1000.0;
        let rate = |k: &str| (b[k].as_f64().unwrap_or(0.0) - a[k].as_f64().unwrap_or(0.0)) * 8.0 / secs / 1000.0;
        let bytes = |k: &str| (b[k].as_f64().unwrap_or(0.0) - a[k].as_f64().unwrap_or(0.0)) / secs;
        println!(
            "  {name:<9} up {:5.1} kbit/s ({:5.0} B/s)   down {:5.1} kbit/s ({:5.0} B/s)",
            rate("sent"),
            bytes("sent"),
            rate("received"),
            bytes("received")
        );
    }
    println!("(the talker speaks throughout; the listener is silent and hears the talker through the mixer)");
    Ok(())
}
