//! Link profiles and loss protection in the send/receive streams: mid-stream
//! switches without gaps, and garbage that never panics the decode path.

use std::time::Duration;

use lowband_core::codec::CHUNK;
use lowband_core::profile::Profile;
use lowband_core::protect::Protection;
use lowband_core::stream::{ChunkKind, ReceiveStream, SendStream};
use lowband_core::wire::audio::{AudioPacket, TICK_SAMPLES};
use lowband_core::Time;

fn voiced(i: usize) -> Vec<i16> {
    // A buzzy, vowel-like signal so the encoder never goes into DTX.
    (0..CHUNK)
        .map(|k| {
            let t = (i * CHUNK + k) as f32 / 16_000.0;
            ((t * 2.0 * std::f32::consts::PI * 140.0).sin() * 6000.0 + (t * 2.0 * std::f32::consts::PI * 700.0).sin() * 2000.0) as i16
        })
        .collect()
}

#[test]
fn switching_down_and_up_the_ladder_keeps_media_time_contiguous_and_audio_unbroken() {
    let ladder = Profile::ladder();
    let mut tx = SendStream::new(ladder[3].clone(), None, true).unwrap();
    tx.set_protection(Protection { copies: 3, loss_percent: 10 });
    let mut rx = ReceiveStream::new(7, Duration::from_millis(240)).unwrap();
    let mut next_ts: Option<u16> = None;
    let mut out = vec![0i16; CHUNK];
    let mut concealed_after_start = 0;
    let mut started = false;
    for i in 0..600 {
        if i % 100 == 0 {
            tx.set_profile(ladder[(i / 100) % ladder.len()].clone());
        }
        let now = Time::from_micros(i as u64 * 20_000);
        if let Some(d) = tx.push_chunk(&voiced(i)).unwrap() {
            let p = AudioPacket::decode(&d).unwrap();
            if let Some(ts) = next_ts {
                assert_eq!(p.header.ts, ts, "media time jumped at chunk {i}");
            }
            let samples = lowband_core::codec::packet_samples(p.primary).unwrap();
            next_ts = Some(p.header.ts.wrapping_add((samples / TICK_SAMPLES) as u16));
            rx.insert_datagram(now, &d);
        }
        match rx.pull_chunk(now, &mut out) {
            ChunkKind::Audio => started = true,
            ChunkKind::Concealed if started => concealed_after_start += 1,
            _ => {}
        }
    }
    assert!(started);
    assert_eq!(concealed_after_start, 0, "a profile switch left a hole");
    assert_eq!(rx.stats().decode_errors, 0);
}

/// Flips, inserts or truncates a few bytes of a valid datagram.
fn mutate(rng: &mut lowband_core::rng::Rng, valid: &[u8]) -> Vec<u8> {
    let mut v = valid.to_vec();
    for _ in 0..=rng.below(3) {
        match rng.below(3) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len() as u64) as usize;
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(v.len() as u64 + 1) as usize;
                v.insert(i, rng.next_u64() as u8);
            }
            _ => v.truncate(rng.below(v.len() as u64 + 1) as usize),
        }
    }
    v
}

#[test]
fn garbage_in_protected_datagrams_never_panics_redundancy_dred_or_fec_decoding() {
    let mut rng = lowband_core::rng::Rng::new(7);
    for name in ["2g", "3g", "good"] {
        let p = Profile::named(name).unwrap();
        let mut tx = SendStream::new(p.clone(), None, true).unwrap();
        tx.set_protection(Protection::for_loss(0.2, 3.0));
        tx.set_dred(true);
        let valid: Vec<Vec<u8>> = (0..60).filter_map(|i| tx.push_chunk(&voiced(i)).unwrap()).collect();
        assert!(valid.iter().any(|d| AudioPacket::decode(d).unwrap().redundant().len() > 0 || name != "2g"));
        let mut rx = ReceiveStream::new(7, Duration::from_millis(200)).unwrap();
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
