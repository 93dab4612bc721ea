//! Staying in the call over real QUIC on loopback: a client that moves to a
//! new UDP port mid-call keeps talking and hearing, and a client whose
//! connection dies gets its seat back (same id) when it reconnects, while
//! the others see it as reconnecting, never as gone.

mod common;

use std::time::Duration;

use common::{at, join, speech, Join};
use lowband_client::CallCommand;
use lowband_codec_tests::score::rms_dbfs;
use lowband_core::client::ClientEvent;
use lowband_gateway::{Config, Server};

async fn gateway(dir: &std::path::Path) -> Server {
    let config = Config { listen: "127.0.0.1:0".parse().unwrap(), state_dir: dir.join("state"), ..Config::default() };
    Server::start(&config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_survives_both_clients_moving_to_new_udp_ports() {
    let dir = tempfile::tempdir().unwrap();
    let server = gateway(dir.path()).await;
    let (addr, fp) = (server.local_addr().to_string(), server.fingerprint().to_string());
    let base = |name: &'static str| Join { gateway: &addr, fingerprint: &fp, dir: dir.path(), room: "r", name, token: None, speech: vec![], speak_at: 0.0, stay: 6.0 };
    // The talker stays longer, so the listener's last roster still has it.
    let mut talker = join(Join { speech: speech("synthetic-case-presentation-16k.wav"), speak_at: 0.3, stay: 7.0, ..base("Talker") });
    let mut listener = join(base("Listener"));
    talker.joined().await;
    listener.joined().await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    talker.send(CallCommand::Rebind);
    listener.send(CallCommand::Rebind);
    let (r, heard) = listener.finish().await;
    let r = r.unwrap();
    talker.finish().await.0.unwrap();
    assert_eq!(r.roster.len(), 2, "someone dropped out: {:?}", r.roster);
    // Audio flows after the move (the listener joined ~at the talker's start).
    let after = &heard[at(3.5).min(heard.len())..at(5.5).min(heard.len())];
    assert!(rms_dbfs(after) > -40.0, "silence after the rebind: {:.1} dBFS", rms_dbfs(after));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_connection_died_gets_its_seat_back_and_is_never_shown_as_gone() {
    let dir = tempfile::tempdir().unwrap();
    let server = gateway(dir.path()).await;
    let (addr, fp) = (server.local_addr().to_string(), server.fingerprint().to_string());
    let base = |name: &'static str| Join { gateway: &addr, fingerprint: &fp, dir: dir.path(), room: "r", name, token: None, speech: vec![], speak_at: 0.0, stay: 5.0 };
    let mut hub = join(base("Hub"));
    hub.joined().await;
    let mut clinic = join(base("Clinic 7"));
    let seat = clinic.joined().await;
    // The clinic's app dies: its connection goes without a goodbye.
    clinic.call.abort();
    let u = hub.until("Clinic 7 reconnecting", |u| matches!(&u.event, ClientEvent::PeerReconnecting { reconnecting: true, .. })).await;
    assert!(u.roster.iter().any(|e| e.id == seat), "the seat was given up: {:?}", u.roster);
    let mut again = join(base("Clinic 7"));
    assert_eq!(again.joined().await, seat, "a new seat instead of the held one");
    let u = hub.until("Clinic 7 back", |u| matches!(&u.event, ClientEvent::PeerReconnecting { reconnecting: false, .. })).await;
    assert_eq!(u.roster.len(), 2);
    again.send(CallCommand::Leave);
    let _ = again.finish().await;
    let (r, _) = hub.finish().await;
    let r = r.unwrap();
    // Gone only when they said goodbye, after coming back.
    let pos = |line: &str| r.events.iter().position(|e| e == line);
    assert!(pos("Clinic 7 is reconnecting") < pos("Clinic 7 is back"), "{:?}", r.events);
    assert!(pos("Clinic 7 left").is_none_or(|l| Some(l) > pos("Clinic 7 is back")), "{:?}", r.events);
}
