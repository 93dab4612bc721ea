//! The real gateway binary, killed with SIGKILL mid-session: every
//! attendance row written before the kill is on disk, and both recordings
//! (WAV and Ogg Opus) play up to at most 2 s before the kill. Also checks the
//! operator surface (`/health`, `/metrics`) of the running binary.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{join, speech, Join};
use lowband_codec_tests::score::rms_dbfs;
use lowband_core::codec::{Decoder, CHUNK};
use lowband_gateway::attendance;

fn http_get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn metric(body: &str, name: &str) -> f64 {
    body.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no {name} in {body}"))
}

/// The real binary, recording, with metrics; returns it with its QUIC address, fingerprint and metrics address.
fn start_gateway(dir: &Path) -> (Child, String, String, String) {
    let (state, rec) = (dir.join("state"), dir.join("rec"));
    let cfg = dir.join("gateway.toml");
    std::fs::write(&cfg, format!("listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\nrecord_dir = {:?}\n", rec.display().to_string())).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lowband-gateway"))
        .args(["--config", cfg.to_str().unwrap(), "--state-dir", state.to_str().unwrap(), "serve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = |prefix: &str| lines.next().unwrap().unwrap().strip_prefix(prefix).unwrap_or_else(|| panic!("expected {prefix}")).to_string();
    let addr = next("lowband-gateway listening on ");
    let fp = next("fingerprint: ");
    let metrics = next("metrics: http://").trim_end_matches("/metrics").to_string();
    (child, addr, fp, metrics)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigkill_every_attendance_row_and_the_recordings_up_to_2_s_before_the_kill_survive() {
    let dir = tempfile::tempdir().unwrap();
    let (state, rec) = (dir.path().join("state"), dir.path().join("rec"));
    let (mut child, addr, fp, metrics) = start_gateway(dir.path());
    assert!(http_get(&metrics, "/health").starts_with("HTTP/1.1 200"));

    let base = |name: &'static str| Join { gateway: &addr, fingerprint: &fp, dir: dir.path(), room: "echo-hiv", name, token: None, speech: vec![], speak_at: 0.0, stay: 30.0 };
    let mut speaker = join(Join { speech: speech("synthetic-case-presentation-16k.wav"), speak_at: 0.2, ..base("Speaker") });
    speaker.joined().await;
    let mut listener = join(base("Listener"));
    listener.joined().await;
    // Flaky drops out and comes back: a leave and a reconnect.
    let mut flaky = join(Join { stay: 1.0, ..base("Flaky") });
    flaky.joined().await;
    flaky.finish().await.0.unwrap();
    let mut flaky = join(base("Flaky"));
    flaky.joined().await;

    tokio::time::sleep(Duration::from_millis(3500)).await;
    let body = http_get(&metrics, "/metrics");
    let body = body.split("\r\n\r\n").nth(1).unwrap();
    println!("{}", body.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n"));
    assert_eq!(metric(body, "lowband_participants"), 3.0);
    assert_eq!(metric(body, "lowband_rooms"), 1.0);
    assert!(metric(body, "lowband_wire_received_bytes_total") > 10_000.0);
    assert!(metric(body, "process_cpu_seconds_total") > 0.0);

    child.kill().unwrap(); // SIGKILL
    let killed_at = lowband_gateway::archive::unix_ms_now();
    child.wait().unwrap();
    for s in [speaker, listener, flaky] {
        s.call.abort();
    }

    // Attendance: every join, the leave and the reconnect.
    let adir = state.join("attendance");
    let sessions = attendance::sessions(&adir).unwrap();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let records = attendance::read_journal(&adir.join(format!("{}.jsonl", sessions[0]))).unwrap();
    let rows: Vec<(String, String)> = records.iter().filter_map(|r| Some((r.event.clone(), r.name.clone()?))).collect();
    println!("attendance rows: {rows:?}");
    let want = [("join", "Speaker"), ("join", "Listener"), ("join", "Flaky"), ("leave", "Flaky"), ("reconnect", "Flaky")];
    assert_eq!(rows, want.map(|(e, n)| (e.to_string(), n.to_string())));
    let csv = Command::new(env!("CARGO_BIN_EXE_lowband-gateway"))
        .args(["--state-dir", state.to_str().unwrap(), "attendance", "export", &sessions[0]])
        .output()
        .unwrap();
    let csv = String::from_utf8(csv.stdout).unwrap();
    println!("{csv}");
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(csv.lines().any(|l| l.starts_with("Flaky,Participant,") && l.contains(",2,")), "{csv}");

    // The room (and its recording) began with the first join.
    let started = records.iter().find(|r| r.event == "join").unwrap().unix_ms;
    let expected = (killed_at - started) as f64 / 1000.0;

    let wav = hound::WavReader::open(rec.join(format!("{}.wav", sessions[0]))).unwrap();
    let pcm: Vec<i16> = wav.into_samples::<i16>().map(Result::unwrap).collect();
    let wav_secs = pcm.len() as f64 / 16_000.0;
    let speech_level = rms_dbfs(&pcm[8_000..pcm.len().min(48_000)]);

    let ogg = lowband_gateway::ogg::read(&std::fs::read(rec.join(format!("{}.opus", sessions[0]))).unwrap()).unwrap();
    let mut dec = Decoder::new(5).unwrap();
    let mut decoded = Vec::new();
    let mut buf = [0i16; CHUNK * 6];
    for p in &ogg.packets {
        let n = dec.decode(p, &mut buf).unwrap();
        decoded.extend_from_slice(&buf[..n]);
    }
    let ogg_secs = decoded.len() as f64 / 16_000.0;
    let ogg_level = rms_dbfs(&decoded[8_000..decoded.len().min(48_000)]);
    println!(
        "killed {expected:.2} s after the first join; WAV plays {wav_secs:.2} s ({:.2} s short, speech at {speech_level:.1} dBFS); \
         Ogg Opus plays {ogg_secs:.2} s ({:.2} s short, {} bytes, speech at {ogg_level:.1} dBFS)",
        expected - wav_secs,
        expected - ogg_secs,
        std::fs::metadata(rec.join(format!("{}.opus", sessions[0]))).unwrap().len(),
    );
    assert!(wav_secs >= expected - 2.0, "WAV plays {wav_secs:.2} s of {expected:.2} s");
    assert!(ogg_secs >= expected - 2.0, "Ogg plays {ogg_secs:.2} s of {expected:.2} s");
    assert!(wav_secs <= expected + 0.5 && ogg_secs <= expected + 0.5);
    assert!(speech_level > -40.0 && ogg_level > -40.0, "the recording is silent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_every_session_and_finishes_both_recordings() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr, fp, _) = start_gateway(dir.path());
    let mut spoke = join(Join { gateway: &addr, fingerprint: &fp, dir: dir.path(), room: "r", name: "Clinic 7", token: None, speech: vec![], speak_at: 0.0, stay: 30.0 });
    spoke.joined().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    spoke.call.abort();

    let adir = dir.path().join("state/attendance");
    let session = attendance::sessions(&adir).unwrap().remove(0);
    let events: Vec<String> = attendance::read_journal(&adir.join(format!("{session}.jsonl"))).unwrap().into_iter().map(|r| r.event).collect();
    // Whether the engine saw the connection close ("lost") before it stopped ("ended") is a race; either closes the row.
    assert!(events == ["session_start", "join", "ended", "session_end"] || events == ["session_start", "join", "lost", "session_end"], "{events:?}");
    let ogg = lowband_gateway::ogg::read(&std::fs::read(dir.path().join(format!("rec/{session}.opus"))).unwrap()).unwrap();
    assert!(ogg.ended, "no end-of-stream page");
    let wav = hound::WavReader::open(dir.path().join(format!("rec/{session}.wav"))).unwrap();
    assert!(wav.duration() as f64 / 16_000.0 >= 1.3, "{} samples", wav.duration());
}

#[test]
fn the_token_command_prints_a_token_that_the_gateway_s_key_admits_for_its_room_only() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = Command::new(env!("CARGO_BIN_EXE_lowband-gateway"))
        .args(["--state-dir", state.to_str().unwrap(), "token", "--room", "echo-hiv", "--name", "Dr. Ama", "--role", "host", "--valid", "7d"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap();
    let key = std::fs::read(state.join("token-key")).unwrap();
    let now = lowband_gateway::archive::unix_ms_now() / 1000;
    let claims = lowband_core::token::verify(&key, token.trim(), "echo-hiv", now).unwrap();
    assert_eq!((claims.name.as_str(), claims.role), ("Dr. Ama", lowband_core::wire::Role::Host));
    assert!(claims.expires.abs_diff(now + 7 * 86_400) <= 5);
    assert!(lowband_core::token::verify(&key, token.trim(), "echo-hiv", now + 7 * 86_400 + 10).is_err());
    assert!(lowband_core::token::verify(&key, token.trim(), "echo-tb", now).is_err());
}

#[test]
fn the_token_command_with_invite_prints_an_invitation_carrying_token_and_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_lowband-gateway")).args(["--state-dir", state.to_str().unwrap()]).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let out = run(&["token", "--room", "echo hiv", "--name", "Clinic 7", "--invite", "hub.example.org:4433"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let inv = lowband_core::invite::Invitation::parse(lines[1]).unwrap();
    assert_eq!((inv.gateway.as_str(), inv.room.as_str()), ("hub.example.org:4433", "echo hiv"));
    assert_eq!(inv.token.as_deref(), Some(lines[0]));
    assert_eq!(inv.fingerprint.unwrap(), run(&["fingerprint"]).trim());
}
