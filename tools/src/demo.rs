//! `lowband-tools demo`: a gateway and three headless clients on loopback,
//! each speaking one turn of the shared sample speech, then a summary of who
//! heard whom (PESQ-WB and delay per turn) and the bytes each put on the wire.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use lowband_codec_tests::data::{read_speech, shared_file};
use lowband_codec_tests::score::{rms_dbfs, score_turn};

use crate::procs::{sibling_binary, GatewayProcess};

const RATE: usize = 16_000;

struct Speaker {
    name: &'static str,
    file: &'static str,
    speak_at: f64,
    seconds: f64,
}

const SPEAKERS: [Speaker; 3] = [
    Speaker { name: "Alice", file: "speech/synthetic-case-presentation-16k.wav", speak_at: 1.0, seconds: 6.0 },
    Speaker { name: "Bob", file: "speech/synthetic-hub-reply-16k.wav", speak_at: 8.0, seconds: 6.0 },
    Speaker { name: "Carol", file: "speech/arctic_a0007.wav", speak_at: 15.0, seconds: 4.0 },
];
const CALL_SECONDS: f64 = 21.0;

pub fn run(out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let gateway = GatewayProcess::start(&out.join("gateway-state"), &out.join("gateway.log"))?;
    println!("gateway on {} (fingerprint {}…)", gateway.addr, &gateway.fingerprint[..16]);
    let client = sibling_binary("lowband")?;

    let mut said = Vec::new();
    let mut children = Vec::new();
    for s in &SPEAKERS {
        let mut speech = read_speech(&shared_file(s.file).map_err(anyhow::Error::msg)?).map_err(anyhow::Error::msg)?;
        speech.truncate((s.seconds * RATE as f64) as usize);
        let input = out.join(format!("{}-says.wav", s.name));
        crate::report::write_wav(&input, &speech)?;
        said.push(speech);
        let child = Command::new(&client)
            .args(["join", &gateway.addr, "demo-room", "--name", s.name, "--fingerprint", &gateway.fingerprint])
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(out.join(format!("{}-heard.wav", s.name)))
            .args(["--speak-at", &s.speak_at.to_string(), "--duration", &CALL_SECONDS.to_string()])
            .arg("--report")
            .arg(out.join(format!("{}-report.json", s.name)))
            .env("LOWBAND_CONFIG_DIR", out.join("client-config"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(out.join(format!("{}.log", s.name)))?)
            .spawn()
            .context("starting lowband")?;
        children.push(child);
    }
    println!("three clients speaking in turn for {CALL_SECONDS:.0} s …");
    for (s, mut c) in SPEAKERS.iter().zip(children) {
        if !c.wait()?.success() {
            bail!("client {} failed; see {}", s.name, out.join(format!("{}.log", s.name)).display());
        }
    }
    drop(gateway);
    summarize(out, &said)
}


fn summarize(out: &Path, said: &[Vec<i16>]) -> anyhow::Result<()> {
    println!("\nwho heard whom: PESQ-WB (mouth-to-ear delay) of each turn in each listener's recording");
    print!("{:<10}", "listener");
    for s in &SPEAKERS {
        print!("{:>22}", format!("{} speaking", s.name));
    }
    println!();
    for listener in &SPEAKERS {
        let heard = read_speech(&out.join(format!("{}-heard.wav", listener.name))).map_err(anyhow::Error::msg)?;
        print!("{:<10}", listener.name);
        for (talker, speech) in SPEAKERS.iter().zip(said) {
            let at = (talker.speak_at * RATE as f64) as usize;
            let cell = if talker.name == listener.name {
                let end = (at + speech.len() + RATE / 2).min(heard.len());
                format!("own voice: {:.0} dBFS", rms_dbfs(heard.get(at..end).unwrap_or(&[])))
            } else {
                match score_turn(speech, &heard, at, RATE) {
                    Ok(h) => format!("{:.2} ({:.0} ms)", h.pesq_wb, h.delay_ms),
                    Err(e) => format!("not heard: {e}"),
                }
            };
            print!("{cell:>22}");
        }
        println!();
    }
    println!("\non the wire (IPv4 packets: IP + UDP + QUIC + lowband header + Opus), averaged over the call:");
    for s in &SPEAKERS {
        let path = out.join(format!("{}-report.json", s.name));
        let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        let secs = r["seconds"].as_f64().unwrap_or(1.0).max(1e-3);
        let kbps = |k: &str| r[k].as_f64().unwrap_or(0.0) * 8.0 / secs / 1000.0;
        println!(
            "  {:<6} up {:5.1} kbit/s ({} packets)   down {:5.1} kbit/s ({} packets)",
            s.name,
            kbps("wire_bytes_sent"),
            r["wire_packets_sent"],
            kbps("wire_bytes_received"),
            r["wire_packets_received"]
        );
    }
    println!("\nrecordings: {}", out.display());
    Ok(())
}

/// Where the demo writes unless told otherwise.
pub fn default_out() -> PathBuf {
    PathBuf::from("demo-out")
}
