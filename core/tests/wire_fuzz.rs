//! Every decoder of network input is total: random and mutated bytes give
//! errors, never panics — in the parsers and in the engines behind them.

use lowband_core::client::{Client, ClientConfig};
use lowband_core::codec::CHUNK;
use lowband_core::gateway::{Gateway, GatewayConfig};
use lowband_core::rng::Rng;
use lowband_core::stream::{ReceiveStream, SendStream};
use lowband_core::wire::control::{encode_frame, FrameReader};
use lowband_core::wire::{AudioPacket, ClientMsg, RosterEntry, RosterUpdate, ServerMsg};
use lowband_core::{profile::Profile, Time};

fn random_bytes(rng: &mut Rng, max: u64) -> Vec<u8> {
    let n = rng.below(max + 1) as usize;
    (0..n).map(|_| rng.next_u64() as u8).collect()
}

/// Flips, inserts, deletes or truncates a few bytes of a valid input.
fn mutate(rng: &mut Rng, valid: &[u8]) -> Vec<u8> {
    let mut v = valid.to_vec();
    for _ in 0..=rng.below(3) {
        match rng.below(4) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len() as u64) as usize;
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(v.len() as u64 + 1) as usize;
                v.insert(i, rng.next_u64() as u8);
            }
            2 if !v.is_empty() => {
                v.remove(rng.below(v.len() as u64) as usize);
            }
            _ => v.truncate(rng.below(v.len() as u64 + 1) as usize),
        }
    }
    v
}

fn valid_datagrams() -> Vec<Vec<u8>> {
    let mut s = SendStream::new(Profile::default(), Some(3), true).unwrap();
    let tone: Vec<i16> = (0..CHUNK).map(|i| ((i as f32 * 0.05).sin() * 9000.0) as i16).collect();
    (0..20).filter_map(|_| s.push_chunk(&tone).unwrap()).collect()
}

fn arrivals() -> lowband_core::wire::arrivals::Arrivals {
    let mut log = lowband_core::wire::arrivals::ArrivalLog::default();
    for (seq, ms) in [(4u16, 100), (6, 180), (5, 300), (9, 310)] {
        log.on_packet(Time::from_millis(ms), seq);
    }
    log.take().unwrap()
}

fn valid_frames() -> Vec<Vec<u8>> {
    let e = RosterEntry { id: 9, name: "Nurse Achieng".into(), role: Default::default(), muted: true, hand: None };
    vec![
        encode_frame(&ClientMsg::Hello { version: 1, name: "x".into(), token: Some("t".into()) }),
        encode_frame(&ClientMsg::Join { room: "r".into() }),
        encode_frame(&ServerMsg::Joined { room: "r".into(), you: 2, roster: vec![e.clone(), e.clone()] }),
        encode_frame(&ServerMsg::Roster(RosterUpdate::Joined(e))),
        encode_frame(&ClientMsg::WantArrivals),
        encode_frame(&ServerMsg::Arrivals(arrivals())),
    ]
}

#[test]
fn audio_packets_never_panic_on_random_or_mutated_bytes() {
    let mut rng = Rng::new(1);
    let valid = valid_datagrams();
    let mut rx = ReceiveStream::new(7, std::time::Duration::from_millis(40)).unwrap();
    let mut out = [0i16; CHUNK];
    let mut parsed = 0;
    for i in 0..20_000u64 {
        let bytes = if i % 2 == 0 { random_bytes(&mut rng, 64) } else { mutate(&mut rng, &valid[(i as usize / 2) % valid.len()]) };
        parsed += usize::from(AudioPacket::decode(&bytes).is_ok());
        // And the whole receive path behind the parser: jitter buffer and Opus.
        let now = Time::from_millis(i * 5);
        rx.insert_datagram(now, &bytes);
        if i % 4 == 0 {
            rx.pull_chunk(now, &mut out);
        }
    }
    assert!(parsed > 1000, "mutations should often stay parseable, got {parsed}");
}

#[test]
fn control_frames_never_panic_on_random_or_mutated_bytes() {
    let mut rng = Rng::new(2);
    let valid = valid_frames();
    for i in 0..20_000usize {
        let bytes = if i % 2 == 0 { random_bytes(&mut rng, 80) } else { mutate(&mut rng, &valid[i / 2 % valid.len()]) };
        for split in [0, bytes.len() / 2] {
            let mut r = FrameReader::default();
            r.push(&bytes[..split]);
            r.push(&bytes[split..]);
            while let Ok(Some(_)) = r.next::<ClientMsg>() {}
            let mut r = FrameReader::default();
            r.push(&bytes);
            while let Ok(Some(_)) = r.next::<ServerMsg>() {}
        }
    }
}

#[test]
fn a_garbage_spewing_client_is_cut_off_and_others_keep_their_mix() {
    let mut gw = Gateway::new(GatewayConfig::default());
    let now = Time::from_millis(0);
    // A well-behaved client joins first.
    gw.handle_connect(1);
    let mut good = Client::new(ClientConfig::new("good", "room")).unwrap();
    while let Some(lowband_core::client::Transmit::Control(c)) = good.poll_transmit() {
        gw.handle_control(now, 1, &c);
    }
    let mut rng = Rng::new(3);
    for conn in 2..200u64 {
        gw.handle_connect(conn);
        gw.handle_control(now, conn, &random_bytes(&mut rng, 100));
        gw.handle_datagram(now, conn, &random_bytes(&mut rng, 100));
    }
    // A joined client sending garbage datagrams is counted, not fatal.
    for _ in 0..1000 {
        gw.handle_datagram(now, 1, &random_bytes(&mut rng, 200));
    }
    gw.handle_timeout(Time::from_millis(100));
    assert_eq!(gw.roster("room").len(), 1, "the good client keeps its seat");
    assert!(gw.stats().bad_datagrams > 0);
}

/// A vowel-like buzz, so the encoder never goes into DTX.
fn buzz(i: usize) -> Vec<i16> {
    (0..CHUNK).map(|k| (((i * CHUNK + k) as f32 * 0.055).sin() * 6000.0 + ((i * CHUNK + k) as f32 * 0.27).sin() * 2000.0) as i16).collect()
}

#[test]
fn garbage_in_protected_datagrams_never_panics_redundancy_dred_or_fec_decoding() {
    let mut rng = Rng::new(7);
    for name in ["2g", "3g", "good"] {
        let p = Profile::named(name).unwrap();
        let mut tx = SendStream::new(p.clone(), None, true).unwrap();
        tx.set_protection(lowband_core::protect::Protection::for_loss(0.2, 3.0));
        tx.set_dred(true);
        let valid: Vec<Vec<u8>> = (0..60).filter_map(|i| tx.push_chunk(&buzz(i)).unwrap()).collect();
        assert!(valid.iter().any(|d| AudioPacket::decode(d).unwrap().redundant().len() > 0 || name != "2g"));
        let mut rx = ReceiveStream::new(7, std::time::Duration::from_millis(200)).unwrap();
        rx.enable_dred().unwrap();
        let mut out = vec![0i16; CHUNK];
        for i in 0..1500u64 {
            let d = &valid[(i as usize) % valid.len()];
            let now = Time::from_micros(i * 20_000);
            // Every few packets are dropped so redundancy, LBRR and DRED are all exercised on garbage.
            if rng.below(4) != 0 {
                let bad = if rng.below(2) == 0 { mutate(&mut rng, d) } else { d.clone() };
                rx.insert_datagram(now, &bad);
            }
            rx.pull_chunk(now, &mut out);
        }
    }
}
