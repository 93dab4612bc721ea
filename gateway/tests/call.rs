//! A real call: the gateway and headless clients in this process, talking
//! real QUIC over loopback with real Opus, speaking the shared speech files.
//! Takes ~12 s of wall time because the clients are paced in real time.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lowband_client::audio::wav::{read_16k_mono, WavAudio};
use lowband_client::call::run_call_recording;
use lowband_client::{run_call, CallOptions, CallReport};
use lowband_codec_tests::data::{read_speech, shared_file};
use lowband_codec_tests::score::{rms_dbfs, score_turn};
use lowband_gateway::{Config, Server};

const RATE: usize = 16_000;

struct Talker {
    name: &'static str,
    speech: Vec<i16>,
    speak_at: Duration,
    start_after: Duration,
    stay: Duration,
    /// Writes `<name>-link.csv` (asks the gateway for uplink arrival feedback).
    record: bool,
}

async fn client(gateway: &str, fingerprint: &str, dir: &Path, t: Talker) -> (CallReport, Vec<i16>) {
    tokio::time::sleep(t.start_after).await;
    let out = dir.join(format!("{}.wav", t.name));
    let mut audio = WavAudio::new(t.speech, t.speak_at, Some(&out)).unwrap();
    let opts = CallOptions {
        gateway: gateway.to_string(),
        room: "echo-tb".into(),
        name: t.name.into(),
        token: None,
        fingerprint: Some(fingerprint.to_string()),
        config_dir: dir.join(format!("{}-config", t.name)),
        duration: Some(t.stay),
    };
    let record = t.record.then(|| dir.join(format!("{}-link.csv", t.name)));
    let report = run_call_recording(&opts, &mut audio, std::future::pending(), None, record.as_deref()).await.unwrap();
    (report, read_16k_mono(&out).unwrap())
}

fn speech(file: &str, seconds: f64) -> Vec<i16> {
    let mut s = read_speech(&shared_file(&format!("speech/{file}")).unwrap()).unwrap();
    s.truncate((seconds * RATE as f64) as usize);
    s
}

fn at(secs: f64) -> usize {
    (secs * RATE as f64) as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_spokes_hear_each_other_but_never_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config { listen: "127.0.0.1:0".parse().unwrap(), state_dir: dir.path().join("state"), ..Config::default() };
    let server = Server::start(&config).await.unwrap();
    let addr = server.local_addr().to_string();
    let fp = server.fingerprint().to_string();

    let alice_said = read_speech(&shared_file("speech/arctic_a0007.wav").unwrap()).unwrap();
    let bob_said = speech("synthetic-hub-reply-16k.wav", 4.0);
    let d = dir.path().to_path_buf();
    let run = |t: Talker| {
        let (a, f, d) = (addr.clone(), fp.clone(), d.clone());
        tokio::spawn(async move { client(&a, &f, &d, t).await })
    };
    let secs = Duration::from_secs_f64;
    // Alice speaks at 0.5 s; Dan joins late, at 3 s; Carol leaves at 6 s; Bob speaks at 7 s.
    let alice = run(Talker { name: "Alice", speech: alice_said.clone(), speak_at: secs(0.5), start_after: secs(0.0), stay: secs(12.5), record: false });
    // Bob and Dan record their links: their extra control message must not split the room across engines.
    let bob = run(Talker { name: "Bob", speech: bob_said.clone(), speak_at: secs(7.0), start_after: secs(0.0), stay: secs(12.5), record: true });
    let carol = run(Talker { name: "Carol", speech: vec![], speak_at: secs(0.0), start_after: secs(0.0), stay: secs(6.0), record: false });
    let dan = run(Talker { name: "Dan", speech: vec![], speak_at: secs(0.0), start_after: secs(3.0), stay: secs(9.5), record: true });
    let (alice, bob, carol, dan) = (alice.await.unwrap(), bob.await.unwrap(), carol.await.unwrap(), dan.await.unwrap());
    server.shutdown().await;

    let max_delay = at(1.0);
    for (who, heard) in [("Bob", &bob.1), ("Carol", &carol.1)] {
        let s = score_turn(&alice_said, heard, at(0.5), max_delay).unwrap();
        println!("{who} heard Alice: PESQ-WB {:.2}, delay {:.0} ms", s.pesq_wb, s.delay_ms);
        assert!(s.pesq_wb >= 3.0, "{who} heard Alice at PESQ-WB {:.2}", s.pesq_wb);
    }
    // Dan joined 3 s after the others started: Bob's turn at 7 s is at ~4 s of Dan's recording.
    let s = score_turn(&bob_said, &dan.1, at(3.5), max_delay).unwrap();
    println!("Dan (late) heard Bob: PESQ-WB {:.2}, delay {:.0} ms", s.pesq_wb, s.delay_ms);
    assert!(s.pesq_wb >= 2.5, "late joiner heard Bob at PESQ-WB {:.2}", s.pesq_wb);
    let s = score_turn(&bob_said, &alice.1, at(7.0), max_delay).unwrap();
    println!("Alice heard Bob: PESQ-WB {:.2}", s.pesq_wb);
    assert!(s.pesq_wb >= 2.5, "Alice heard Bob at PESQ-WB {:.2}", s.pesq_wb);

    // While only Alice speaks (0.5-4.5 s, plus a margin for delay), her own output is silent.
    let own = rms_dbfs(&alice.1[at(0.5)..at(5.0)]);
    println!("Alice's own output while she spoke: {own:.1} dBFS");
    assert!(own < -60.0, "Alice heard herself at {own:.1} dBFS");
    let own = rms_dbfs(&bob.1[at(7.0)..at(11.0)]);
    assert!(own < -60.0, "Bob heard himself at {own:.1} dBFS");

    // Carol left: gone from every remaining roster and everyone was told;
    // Dan joined late: everyone already there was told.
    for (who, report) in [("Alice", &alice.0), ("Bob", &bob.0)] {
        let names: Vec<&str> = report.roster.iter().map(|e| e.name.as_str()).collect();
        assert!(!names.contains(&"Carol"), "{who} still lists Carol: {names:?}");
        for event in ["Dan joined", "Carol left"] {
            assert!(report.events.iter().any(|e| e == event), "{who} was not told {event:?}: {:?}", report.events);
        }
    }
    assert!(dan.0.events.iter().any(|e| e.starts_with("joined as") && e.contains("Alice") && e.contains("Carol")), "{:?}", dan.0.events);
    assert!(dan.0.events.iter().any(|e| e == "Carol left"), "{:?}", dan.0.events);
    assert!(carol.0.you.is_some());

    // The gateway's arrival feedback reached Bob's recorder: his uplink replays.
    let text = std::fs::read_to_string(dir.path().join("Bob-link.csv")).unwrap();
    let rec = lowband_core::link::record::RecordedLink::parse(&text).unwrap();
    let observed = rec.loss_pattern(lowband_core::link::record::Dir::Up);
    println!("Bob's uplink: {} packets observed by the gateway of {}", observed.len(), rec.up.len());
    assert!(observed.len() > 50 && observed.iter().all(|lost| !lost), "loopback loses nothing: {observed:?}");
    assert!(rec.fates(lowband_core::link::record::Dir::Up, Duration::ZERO).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_gateway_certificate_is_refused_with_both_fingerprints() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config { listen: "127.0.0.1:0".parse().unwrap(), state_dir: dir.path().join("state"), ..Config::default() };
    let server = Server::start(&config).await.unwrap();
    let wrong = "ab".repeat(32);
    let opts = CallOptions {
        gateway: server.local_addr().to_string(),
        room: "r".into(),
        name: "n".into(),
        token: None,
        fingerprint: Some(wrong.clone()),
        config_dir: PathBuf::from(dir.path()),
        duration: Some(Duration::from_millis(200)),
    };
    let mut audio = WavAudio::new(vec![], Duration::ZERO, None).unwrap();
    let err = run_call(&opts, &mut audio, std::future::pending()).await.unwrap_err().to_string();
    assert!(err.contains(&wrong) && err.contains(server.fingerprint()), "{err}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_connection_is_remembered_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config { listen: "127.0.0.1:0".parse().unwrap(), state_dir: dir.path().join("state"), ..Config::default() };
    let server = Server::start(&config).await.unwrap();
    let opts = CallOptions {
        gateway: server.local_addr().to_string(),
        room: "r".into(),
        name: "n".into(),
        token: None,
        fingerprint: None,
        config_dir: dir.path().join("cfg"),
        duration: Some(Duration::from_millis(100)),
    };
    let mut audio = WavAudio::new(vec![], Duration::ZERO, None).unwrap();
    run_call(&opts, &mut audio, std::future::pending()).await.unwrap();
    let known = lowband_client::trust::KnownGateways::in_dir(&dir.path().join("cfg"));
    assert_eq!(known.get(&opts.gateway).as_deref(), Some(server.fingerprint()));
    server.shutdown().await;
}
