//! A call moves between link profiles mid-stream without a gap in media time.

mod common;

use std::time::Duration;

use lowband_core::codec::CHUNK;
use lowband_core::profile::Profile;
use lowband_core::protect::Protection;
use lowband_core::stream::{ChunkKind, ReceiveStream, SendStream};
use lowband_core::wire::audio::{AudioPacket, TICK_SAMPLES};
use lowband_core::Time;
use common::voiced;

#[test]
fn switching_down_and_up_the_ladder_keeps_media_time_contiguous_and_audio_unbroken() {
    let ladder = Profile::ladder();
    let mut tx = SendStream::new(ladder[3].clone(), None, true).unwrap();
    tx.set_protection(Protection { copies: 3, loss_percent: 10, spacing: 1 });
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
