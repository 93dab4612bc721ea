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
    run_with_dred(chunks, switch_at, lose, false)
}

/// [`run`], with DRED negotiated (both ends run the same libopus) when `dred`.
fn run_with_dred(chunks: usize, switch_at: usize, lose: &[usize], dred: bool) -> (ReceiveStream, usize, usize, Vec<usize>) {
    let mut tx = SendStream::new(Profile::named("3g").unwrap(), None, true).unwrap();
    let mut rx = ReceiveStream::with_config(7, JitterConfig::adaptive()).unwrap();
    if dred {
        tx.set_dred(true);
        rx.enable_dred().unwrap();
    }
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
fn with_dred_a_burst_of_four_is_restored_one_packet_further_than_the_copies_reach() {
    // Copies restore the last three; DRED from the first packet after the burst the fourth,
    // because the buffer waits one packet longer while it can decode DRED.
    let (rx, _, _, _) = run_with_dred(900, 200, &[150, 151, 152, 153], true);
    let s = rx.stats();
    assert_eq!(s.jitter.recovered, 3);
    assert!(s.dred_recovered_samples >= 120 * 16, "DRED rebuilt only {} samples of the fourth packet", s.dred_recovered_samples);
    assert!(s.jitter.target_delay_us >= 480_000, "the buffer waits 480 ms: {} µs", s.jitter.target_delay_us);
    let (rx, concealed, _, _) = run(900, 200, &[150, 151, 152, 153]);
    assert!(concealed > 0 && rx.stats().jitter.target_delay_us < 480_000, "without DRED the fourth is concealed");
}

#[test]
fn without_spaced_copies_the_same_burst_is_concealed() {
    let (rx, concealed, _, _) = run(900, usize::MAX, &[100, 101, 102]);
    assert_eq!(rx.stats().jitter.recovered, 0);
    assert!(concealed > 0);
}

/// libopus's own 120 ms packet often leaves its DRED out (its first 60 ms
/// frame's budget is spent on SILK); the encoder joins two 60 ms encodes instead.
#[test]
fn every_120_ms_speech_packet_carries_dred_that_reaches_back_past_it() {
    use lowband_core::codec::{packet_samples, Decoder, Dred, Encoder, MAX_PACKET_BYTES, SAMPLES_PER_MS};
    let frame = 120 * SAMPLES_PER_MS;
    let mut enc = Encoder::new(&Profile::named("3g").unwrap()).unwrap();
    enc.set_frame_samples(frame);
    enc.set_bitrate(19_000).unwrap();
    enc.set_dred_ms(1_000).unwrap();
    enc.set_expected_loss(20).unwrap();
    let (mut dred, mut dec) = (Dred::new().unwrap(), Decoder::new(7).unwrap());
    let (mut packet, mut pcm) = ([0u8; MAX_PACKET_BYTES], vec![0i16; frame]);
    let speech: Vec<i16> = (0..300).flat_map(common::voice).collect();
    for (i, input) in speech.chunks_exact(frame).enumerate() {
        let n = enc.encode(input, &mut packet).unwrap();
        assert_eq!(packet_samples(&packet[..n]).unwrap(), frame, "packet {i} is one 120 ms packet");
        assert_eq!(dec.decode(&packet[..n], &mut pcm).unwrap(), frame);
        // DRED builds up over the first packets; from then on every packet has it.
        if i >= 4 {
            let reach_ms = dred.parse(&packet[..n]) / SAMPLES_PER_MS;
            assert!(reach_ms >= 300, "packet {i}: DRED reaches {reach_ms} ms before it");
        }
    }
}
