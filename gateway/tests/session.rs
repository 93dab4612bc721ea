//! A tele-mentoring session over real QUIC on loopback: join tokens, host
//! controls and raised hands, each checked in every participant's roster,
//! and a host mute checked in what everyone hears.

mod common;

use common::{at, entry, join, speech, Join};
use lowband_client::CallCommand;
use lowband_client::CallError;
use lowband_codec_tests::score::rms_dbfs;
use lowband_core::token::Claims;
use lowband_core::wire::{ErrorCode, HostAction, Role};
use lowband_gateway::{Config, Server};

async fn gateway(dir: &std::path::Path, require_tokens: bool) -> Server {
    let config = Config { listen: "127.0.0.1:0".parse().unwrap(), state_dir: dir.join("state"), require_tokens, ..Config::default() };
    Server::start(&config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_muted_by_the_host_is_silent_in_everyone_s_mix_and_cannot_unmute() {
    let dir = tempfile::tempdir().unwrap();
    let server = gateway(dir.path(), false).await;
    let (addr, fp) = (server.local_addr().to_string(), server.fingerprint().to_string());
    let base = |name: &'static str| Join { gateway: &addr, fingerprint: &fp, dir: dir.path(), room: "echo", name, token: None, speech: vec![], speak_at: 0.0, stay: 7.0 };
    // The first in an open room is its host.
    let mut host = join(base("Hub"));
    host.joined().await;
    let mut talker = join(Join { speech: speech("synthetic-case-presentation-16k.wav"), speak_at: 0.3, ..base("Clinic A") });
    let mut listener = join(base("Clinic B"));
    let a = talker.joined().await;
    listener.joined().await;

    // Clinic A talks from 0.3 s; at 3 s the host mutes them.
    tokio::time::sleep(std::time::Duration::from_millis(3000)).await;
    host.send(CallCommand::Host(HostAction::Mute { id: a, muted: true }));
    for s in [&mut host, &mut listener, &mut talker] {
        s.until("Clinic A muted in the roster", |u| entry(u, "Clinic A").is_some_and(|e| e.muted)).await;
    }
    // A host mute sticks: the talker's own unmute is refused, and the call goes on.
    talker.send(CallCommand::SetMuted(false));
    let refused = talker.until("a refusal", |u| matches!(u.event, lowband_core::client::ClientEvent::Refused { .. })).await;
    assert!(matches!(refused.event, lowband_core::client::ClientEvent::Refused { code: ErrorCode::NotPermitted, .. }), "{refused:?}");

    let (talker_report, _) = talker.finish().await;
    talker_report.unwrap();
    for s in [host, listener] {
        let name = s.name.clone();
        let (report, heard) = s.finish().await;
        report.unwrap();
        let before = rms_dbfs(&heard[at(1.0)..at(2.8)]);
        let after = rms_dbfs(&heard[at(4.0)..at(6.5)]);
        println!("{name} heard Clinic A at {before:.1} dBFS before the mute, {after:.1} dBFS after");
        assert!(before > -40.0, "{name} did not hear Clinic A before the mute ({before:.1} dBFS)");
        assert!(after < -60.0, "{name} still heard Clinic A after the host muted them ({after:.1} dBFS)");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_room_refuses_a_new_join_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let server = gateway(dir.path(), false).await;
    let (addr, fp) = (server.local_addr().to_string(), server.fingerprint().to_string());
    let base = |name: &'static str| Join { gateway: &addr, fingerprint: &fp, dir: dir.path(), room: "echo", name, token: None, speech: vec![], speak_at: 0.0, stay: 2.5 };
    let mut host = join(base("Hub"));
    host.joined().await;
    let mut inside = join(base("Early"));
    inside.joined().await;
    host.send(CallCommand::Host(HostAction::Lock { locked: true }));
    inside.until("the room locked", |u| u.locked).await;

    let (late, _) = join(Join { stay: 1.0, ..base("Late") }).finish().await;
    let err = late.unwrap_err();
    assert!(matches!(err, CallError::Refused { code: ErrorCode::RoomLocked, .. }), "{err}");
    println!("Late was told: {err}");
    assert!(err.to_string().contains("locked"), "{err}");
    let (report, _) = host.finish().await;
    let names: Vec<String> = report.unwrap().roster.into_iter().map(|e| e.name).collect();
    assert!(!names.contains(&"Late".to_string()), "{names:?}");
    inside.finish().await.0.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_forged_wrong_room_and_missing_tokens_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let server = gateway(dir.path(), true).await;
    let (addr, fp) = (server.local_addr().to_string(), server.fingerprint().to_string());
    let state = dir.path().join("state");
    let now = lowband_gateway::archive::unix_ms_now() / 1000;
    let claims = |room: &str, expires: u64| Claims { room: room.into(), name: "Dr. Ama".into(), role: Role::Host, expires };
    let good = lowband_gateway::keys::issue(&state, &claims("echo", now + 3600)).unwrap();
    let cases = [
        ("valid", Some(good), None),
        ("expired", Some(lowband_gateway::keys::issue(&state, &claims("echo", now - 60)).unwrap()), Some("expired")),
        ("forged", Some(lowband_core::token::issue(b"not the gateway's key", &claims("echo", now + 3600))), Some("signature")),
        ("wrong room", Some(lowband_gateway::keys::issue(&state, &claims("echo-tb", now + 3600)).unwrap()), Some("for room \"echo-tb\"")),
        ("missing", None, Some("requires a join token")),
    ];
    let calls: Vec<_> = cases
        .into_iter()
        .map(|(case, token, want)| {
            let s = join(Join { gateway: &addr, fingerprint: &fp, dir: dir.path(), room: "echo", name: case, token, speech: vec![], speak_at: 0.0, stay: 0.8 });
            (case, s, want)
        })
        .collect();
    for (case, s, want) in calls {
        let (r, _) = s.finish().await;
        match want {
            None => {
                let report = r.unwrap_or_else(|e| panic!("{case} token refused: {e}"));
                let me = report.roster.iter().find(|e| Some(e.id) == report.you).unwrap();
                // The token's name wins over the name the client typed.
                assert_eq!(me.name, "Dr. Ama");
            }
            Some(want) => {
                let err = r.expect_err(case);
                println!("{case} token: {err}");
                assert!(matches!(err, CallError::Refused { code: ErrorCode::Unauthorized, .. }), "{case}: {err}");
                assert!(err.to_string().contains(want), "{case}: {err}");
            }
        }
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hands_come_back_in_order_and_every_host_action_reaches_every_roster() {
    let dir = tempfile::tempdir().unwrap();
    let server = gateway(dir.path(), false).await;
    let (addr, fp) = (server.local_addr().to_string(), server.fingerprint().to_string());
    let base = |name: &'static str| Join { gateway: &addr, fingerprint: &fp, dir: dir.path(), room: "echo", name, token: None, speech: vec![], speak_at: 0.0, stay: 6.0 };
    let mut host = join(base("Hub"));
    host.joined().await;
    let mut spokes = vec![join(base("P1")), join(base("P2")), join(base("P3"))];
    let mut ids = Vec::new();
    for s in &mut spokes {
        ids.push(s.joined().await);
    }
    // A participant may not act as host; the call goes on.
    spokes[0].send(CallCommand::Host(HostAction::Lock { locked: true }));
    spokes[0].until("NotPermitted", |u| matches!(u.event, lowband_core::client::ClientEvent::Refused { code: ErrorCode::NotPermitted, .. })).await;

    // Hands go up P2, P3, P1, each after the previous one reached the host.
    for (i, who) in [1usize, 2, 0].into_iter().enumerate() {
        spokes[who].send(CallCommand::RaiseHand(true));
        host.until("a hand", |u| u.roster.iter().filter(|e| e.hand.is_some()).count() == i + 1).await;
    }
    let u = host.until("three hands", |u| u.roster.iter().filter(|e| e.hand.is_some()).count() == 3).await;
    let mut hands: Vec<_> = u.roster.iter().filter(|e| e.hand.is_some()).collect();
    hands.sort_by_key(|e| e.hand);
    let order: Vec<&str> = hands.iter().map(|e| e.name.as_str()).collect();
    println!("the host sees hands in this order: {order:?}");
    assert_eq!(order, ["P2", "P3", "P1"]);
    assert!(!u.locked, "a participant locked the room");

    // The host grants the floor to the first hand, makes P3 presenter, mutes the rest, removes P1.
    host.send(CallCommand::Host(HostAction::GrantFloor { id: ids[1] }));
    host.send(CallCommand::Host(HostAction::SetPresenter { id: ids[2] }));
    host.send(CallCommand::Host(HostAction::MuteAllButPresenter));
    for s in spokes.iter_mut().chain(std::iter::once(&mut host)) {
        let u = s
            .until("floor, presenter and mute-all", |u| {
                let (p1, p2, p3) = (entry(u, "P1"), entry(u, "P2"), entry(u, "P3"));
                p2.is_some_and(|e| e.hand.is_none() && e.muted)
                    && p3.is_some_and(|e| e.role == Role::Presenter && !e.muted)
                    && p1.is_some_and(|e| e.muted && e.hand.is_some())
                    && entry(u, "Hub").is_some_and(|e| !e.muted && e.role == Role::Host)
            })
            .await;
        assert!(u.roster.len() == 4, "{:?}", u.roster);
    }
    host.send(CallCommand::Host(HostAction::Remove { id: ids[0] }));
    for s in spokes[1..].iter_mut().chain(std::iter::once(&mut host)) {
        s.until("P1 gone", |u| entry(u, "P1").is_none()).await;
    }
    let p1 = spokes.remove(0);
    let err = p1.finish().await.0.unwrap_err();
    assert!(matches!(err, CallError::Refused { code: ErrorCode::Removed, .. }), "{err}");
    for s in spokes {
        let (r, _) = s.finish().await;
        let events = r.unwrap().events;
        for want in ["P2 has the floor", "P3 is now Presenter", "P1 left"] {
            assert!(events.iter().any(|e| e == want), "{want:?} not in {events:?}");
        }
    }
    host.finish().await.0.unwrap();
    server.shutdown().await;
}
