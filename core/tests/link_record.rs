//! A recorded link replays to the loss pattern (and delays) it recorded, in
//! both directions: the downlink as the client saw it, the uplink as the
//! gateway's arrival feedback told the client.

use std::time::Duration;

use lowband_core::link::record::{Dir, LinkRecorder, RecordedLink};
use lowband_core::link::{Capacity, Link, LinkConfig, LossSpec};
use lowband_core::wire::arrivals::ArrivalLog;
use lowband_core::wire::control::{encode_frame, FrameReader};
use lowband_core::wire::ServerMsg;
use lowband_core::Time;

/// Sends `n` 20 ms audio packets (seq, ts) through `link`; returns which were
/// lost, each arrival's one-way delay, and the recorder's text as the client
/// would have written it, observing the link as its downlink.
fn run_down(link: &mut Link<u16>, n: u16) -> (Vec<bool>, Vec<Option<Duration>>, String) {
    let mut rec = LinkRecorder::new();
    let mut delays = vec![None; n as usize];
    let mut deliver = |link: &mut Link<u16>, now: Time, rec: &mut LinkRecorder| {
        while let Some(seq) = link.poll_deliver(now) {
            delays[seq as usize] = Some(now - sent_at(seq));
            rec.on_down(now, seq, seq.wrapping_mul(8), 70);
        }
    };
    for seq in 0..n {
        let now = sent_at(seq);
        deliver(link, now, &mut rec);
        link.push(now, seq, 70 + 48);
    }
    while let Some(t) = link.poll_timeout() {
        deliver(link, t, &mut rec);
    }
    (delays.iter().map(Option::is_none).collect(), delays, rec.take())
}

fn sent_at(seq: u16) -> Time {
    Time::from_millis(u64::from(seq) * 20)
}

/// The same, observing the link as the client's uplink: the gateway logs
/// arrivals in its own clock (`offset` ahead) and sends them back once a
/// second through the real wire encoding.
fn run_up(link: &mut Link<u16>, n: u16, offset: Duration) -> (Vec<bool>, Vec<Option<Duration>>, String) {
    let mut rec = LinkRecorder::new();
    let mut gateway = ArrivalLog::default();
    let mut wire = FrameReader::default();
    let mut delays = vec![None; n as usize];
    let mut next_feedback = Time::from_millis(1000);
    let mut step = |link: &mut Link<u16>, now: Time, rec: &mut LinkRecorder, gateway: &mut ArrivalLog, last: bool| {
        let mut msgs = Vec::new();
        while let Some(seq) = link.poll_deliver(now) {
            delays[seq as usize] = Some(now - sent_at(seq));
            msgs.extend(gateway.on_packet(now + offset, seq));
        }
        if now >= next_feedback || last {
            next_feedback = now + Duration::from_secs(1);
            msgs.extend(gateway.take());
        }
        for m in msgs {
            wire.push(&encode_frame(&ServerMsg::Arrivals(m)));
            let Some(ServerMsg::Arrivals(a)) = wire.next::<ServerMsg>().unwrap() else { panic!("not arrivals") };
            rec.on_up_arrivals(&a);
        }
    };
    for seq in 0..n {
        let now = sent_at(seq);
        step(link, now, &mut rec, &mut gateway, false);
        rec.on_up(now, seq, seq.wrapping_mul(8), 70);
        link.push(now, seq, 70 + 48);
    }
    while let Some(t) = link.poll_timeout() {
        step(link, t, &mut rec, &mut gateway, false);
    }
    // Well after the last packet could arrive: the last feedback.
    step(link, sent_at(n) + Duration::from_secs(60), &mut rec, &mut gateway, true);
    (delays.iter().map(Option::is_none).collect(), delays, rec.finish())
}

/// A bursty lossy link with a slow byte rate and jitter: the "real" link.
fn real_link() -> LinkConfig {
    LinkConfig {
        capacity: Capacity::Rate { kbps: 60.0 },
        delay: Duration::from_millis(300),
        jitter: Duration::from_millis(40),
        loss: LossSpec::GilbertElliott { loss: 0.1, mean_burst: 3.0 },
        ..Default::default()
    }
}

/// Delays relative to the smallest, of the packets that arrived.
fn relative(delays: &[Option<Duration>]) -> Vec<Duration> {
    let min = delays.iter().flatten().min().copied().unwrap_or_default();
    delays.iter().flatten().map(|d| *d - min).collect()
}

#[test]
fn a_recorded_link_file_replays_to_the_loss_pattern_it_recorded() {
    let (lost, _, text) = run_down(&mut Link::new(real_link(), 7), 3000);
    // The first and last packets must arrive for the record to see the gaps.
    let first = lost.iter().position(|l| !l).unwrap();
    let last = lost.iter().rposition(|l| !l).unwrap();
    let seen = &lost[first..=last];
    assert!(seen.iter().filter(|&&l| l).count() > 100, "the link should lose packets");

    let recorded = RecordedLink::parse(&text).unwrap();
    assert_eq!(recorded.loss_pattern(Dir::Down), seen);
    let replay = LinkConfig { recorded: Some(recorded.fates(Dir::Down, Duration::from_millis(300)).unwrap()), ..Default::default() };
    let (replayed, _, _) = run_down(&mut Link::new(replay, 99), seen.len() as u16);
    assert_eq!(replayed, seen, "replay loses exactly the recorded packets");
}

#[test]
fn a_recorded_uplink_replays_to_its_loss_pattern_and_delays_from_the_gateways_feedback() {
    let (lost, delays, text) = run_up(&mut Link::new(real_link(), 11), 3000, Duration::from_secs(3600));
    assert!(lost.iter().filter(|&&l| l).count() > 100, "the link should lose packets");
    let recorded = RecordedLink::parse(&text).unwrap();
    // Every packet was covered by feedback, up to the last arrival; the tail after it is unobserved.
    let last = lost.iter().rposition(|l| !l).unwrap();
    assert_eq!(recorded.loss_pattern(Dir::Up), &lost[..=last]);

    let base = Duration::from_millis(300);
    let replay = LinkConfig { recorded: Some(recorded.fates(Dir::Up, base).unwrap()), ..Default::default() };
    let (replayed, replayed_delays, _) = run_up(&mut Link::new(replay, 99), last as u16 + 1, Duration::ZERO);
    assert_eq!(replayed, &lost[..=last], "replay loses exactly the recorded packets");
    // Same relative delays, to the feedback's 250 µs resolution.
    let (want, got) = (relative(&delays[..=last]), relative(&replayed_delays));
    assert_eq!(want.len(), got.len());
    let worst = want.iter().zip(&got).map(|(w, g)| w.abs_diff(*g)).max().unwrap();
    assert!(worst <= Duration::from_micros(500), "delays replay within 0.5 ms; worst {worst:?}");
    assert!(want.iter().max().unwrap() > &Duration::from_millis(40), "the link should jitter");
}

/// Speech-like, so the encoder never goes into DTX.
fn voice(n: usize) -> Vec<i16> {
    use std::f64::consts::TAU;
    (0..lowband_core::codec::CHUNK)
        .map(|i| {
            let t = (n * lowband_core::codec::CHUNK + i) as f64 / 16_000.0;
            ((TAU * 180.0 * t + 8.0 * (TAU * 5.0 * t).sin()).sin() * 8000.0 * (0.55 + 0.45 * (TAU * 3.0 * t).sin())) as i16
        })
        .collect()
}

#[test]
fn the_gateway_tells_a_client_that_asks_which_uplink_packets_arrived_and_admits_v3_clients() {
    use lowband_core::client::{Client, ClientConfig, Transmit};
    use lowband_core::gateway::{Gateway, GatewayConfig, Output};
    use lowband_core::wire::audio::AudioPacket;
    use lowband_core::wire::ClientMsg;

    let mut gw = Gateway::new(GatewayConfig::default());
    let mut client = Client::new(ClientConfig { arrival_feedback: true, ..ClientConfig::new("Clinic 7", "echo").fixed(lowband_core::profile::Profile::named("good").unwrap()) }).unwrap();
    gw.handle_connect(1);
    gw.handle_connect(2);
    // A v3 client (it never asks for arrivals) is still admitted.
    for m in [ClientMsg::Hello { version: 3, name: "Old".into(), token: None }, ClientMsg::Join { room: "echo".into() }] {
        gw.handle_control(Time::ZERO, 2, &encode_frame(&m));
    }
    let mut dropped = Vec::new();
    let mut arrived_at = std::collections::BTreeMap::new();
    let mut old_heard = Vec::new();
    let mut old_reader = FrameReader::default();
    for n in 0..200usize {
        let now = Time::from_millis(n as u64 * 20);
        if n > 0 {
            client.push_capture(&voice(n)).unwrap();
        }
        while let Some(t) = client.poll_transmit() {
            match t {
                Transmit::Control(c) => gw.handle_control(now, 1, &c),
                Transmit::Datagram(d) => {
                    let seq = AudioPacket::decode(&d).unwrap().header.seq;
                    // The link loses every 7th packet.
                    if seq % 7 == 3 {
                        dropped.push(seq);
                    } else {
                        gw.handle_datagram(now, 1, &d);
                        arrived_at.insert(seq, now);
                    }
                }
            }
        }
        gw.handle_timeout(now);
        while let Some(out) = gw.poll_output() {
            match out {
                Output::Control { conn: 1, data } => client.handle_control(&data).unwrap(),
                Output::Control { conn: 2, data } => {
                    old_reader.push(&data);
                    while let Some(m) = old_reader.next::<ServerMsg>().unwrap() {
                        old_heard.push(m);
                    }
                }
                _ => {}
            }
        }
    }
    assert!(old_heard.iter().any(|m| matches!(m, ServerMsg::Joined { .. })), "the v3 client joined: {old_heard:?}");
    assert!(!old_heard.iter().any(|m| matches!(m, ServerMsg::Arrivals(_))), "arrivals only on request");
    let mut fates = std::collections::BTreeMap::new();
    while let Some(a) = client.poll_arrivals() {
        fates.extend(a.packets());
    }
    // Reports go out once a second: the first three seconds are covered.
    assert!(fates.len() >= 140, "feedback covered {} packets", fates.len());
    for (seq, fate) in &fates {
        match fate {
            None => assert!(dropped.contains(seq), "packet {seq} reported lost but arrived"),
            Some(t) => assert_eq!(Some(t), arrived_at.get(seq), "packet {seq}'s arrival time"),
        }
    }
    assert!(fates.values().filter(|f| f.is_none()).count() > 20);
}
