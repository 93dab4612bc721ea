//! Burst protection as the live ends run it: spaced medium-rate copies in
//! longer packets, switched on by a bursty loss report, waited for by the
//! receiver's adaptive buffer.

mod common;

use lowband_core::codec::CHUNK;
use lowband_core::jitter::JitterConfig;
use lowband_core::profile::Profile;
use lowband_core::protect::Protection;
use lowband_core::stream::{ChunkKind, ReceiveStream, SendStream};
use lowband_core::wire::audio::{AudioPacket, TICK_SAMPLES};

use lowband_core::Time;
use common::voiced;

/// Runs the 3g profile for `chunks`, protection switched to what a report of
/// 20 % loss in bursts of 3 asks for at chunk `switch_at`; the packets whose
/// index is in `lose` are dropped. Returns (receiver, concealed chunks after
/// the start, media-time jumps, packets sent after the switch, copies seen).
fn run(chunks: usize, switch_at: usize, lose: &[usize]) -> (ReceiveStream, usize, usize, Vec<usize>) {
    let mut tx = SendStream::new(Profile::named("3g").unwrap(), None, true).unwrap();
    let mut rx = ReceiveStream::with_config(7, JitterConfig::adaptive()).unwrap();
    let (mut out, mut next_ts, mut jumps, mut concealed, mut started, mut sent) = (vec![0i16; CHUNK], None::<u16>, 0, 0, false, 0);
    let mut backs = Vec::new();
    for i in 0..chunks {
        if i == switch_at {
            tx.set_protection(Protection::for_loss(0.2, 3.0));
        }
        let now = Time::from_micros(i as u64 * 20_000);
        if let Some(d) = tx.push_chunk(&voiced(i)).unwrap() {
            let p = AudioPacket::decode(&d).unwrap();
            if next_ts.is_some_and(|ts| ts != p.header.ts) {
                jumps += 1;
            }
            next_ts = Some(p.header.ts.wrapping_add((lowband_core::codec::packet_samples(p.primary).unwrap() / TICK_SAMPLES) as u16));
            backs.extend(p.redundant().iter().map(|r| usize::from(r.ticks_back) * TICK_SAMPLES / 16));
            if !lose.contains(&sent) {
                rx.insert_datagram(now, &d);
            }
            sent += 1;
        }
        match rx.pull_chunk(now, &mut out) {
            ChunkKind::Audio => started = true,
            ChunkKind::Concealed if started => concealed += 1,
            _ => {}
        }
    }
    assert_eq!(jumps, 0, "media time stays contiguous across the switch to longer packets");
    (rx, concealed, sent, backs)
}

#[test]
fn a_bursty_loss_report_switches_3g_to_spaced_copies_without_a_hole() {
    let (rx, concealed, _, backs) = run(600, 200, &[]);
    assert_eq!(concealed, 0, "the switch to 120 ms packets with spaced copies left a hole");
    assert_eq!(rx.stats().decode_errors, 0);
    // One copy per packet, three packets behind its original: 360 ms once all
    // are 120 ms long (the first copy is of the last 60 ms packet).
    assert!(backs.len() > 50 && backs.iter().all(|&ms| (300..=360).contains(&ms)) && backs[1..].iter().all(|&ms| ms == 360), "copies reach back {backs:?}");
}

#[test]
fn a_burst_of_three_lost_packets_is_restored_from_the_spaced_copies() {
    // 3g sends 60 ms packets for the first 4 s, then 120 ms: packet 150 is ~12 s in,
    // long after the receiver's buffer has grown to wait for the copies.
    let (rx, concealed, sent, _) = run(900, 200, &[150, 151, 152]);
    assert!(sent > 160);
    let s = rx.stats();
    assert_eq!(s.jitter.recovered, 3, "all three lost packets come back from copies");
    assert_eq!(concealed, 0, "nothing had to be concealed");
    assert!(s.jitter.target_delay_us >= 360_000, "the buffer waits for copies 360 ms behind: {} µs", s.jitter.target_delay_us);
}

#[test]
fn without_spaced_copies_the_same_burst_is_concealed() {
    let (rx, concealed, _, _) = run(900, usize::MAX, &[100, 101, 102]);
    assert_eq!(rx.stats().jitter.recovered, 0);
    assert!(concealed > 0);
}
