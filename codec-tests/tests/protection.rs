//! Loss protection restores lost packets: a single loss and a 2-3 packet
//! burst come back close to the clean score; unprotected they do not.

use lowband_codec_tests::channel::{self, LossPattern, Mode};
use lowband_codec_tests::data::{read_speech, shared_file};
use lowband_codec_tests::score::score_aligned;
use lowband_core::loss::{LossModel, Replay};
use lowband_core::profile::Profile;

fn speech() -> Vec<i16> {
    read_speech(&shared_file("speech/arctic_a0007.wav").unwrap()).unwrap()
}

fn score(profile: &Profile, mode: Mode, lose: &[usize]) -> f64 {
    let said = speech();
    let max = lose.iter().max().copied().unwrap_or(0) + 1;
    let pattern: Vec<bool> = (0..max.max(200)).map(|i| lose.contains(&i)).collect();
    let mut model: Box<dyn LossModel> = Box::new(Replay::new(pattern));
    let bursty = LossPattern { name: "replay", loss: 0.2, mean_burst: 3.0 };
    let o = channel::run_with(profile, mode, &bursty, &mut *model, &said).unwrap();
    let max_delay = (channel::playout_delay(profile).as_millis() as usize + 300) * 16;
    score_aligned(&said, &o.heard, o.said_at, max_delay, false).unwrap().pesq_wb
}

#[test]
fn protection_restores_a_single_loss_and_a_short_burst_to_near_clean() {
    for name in ["2g", "edge", "3g"] {
        let p = Profile::named(name).unwrap();
        let clean = score(&p, Mode::Protected, &[]);
        let one = score(&p, Mode::Protected, &[10]);
        let burst = score(&p, Mode::Protected, &[10, 11, 12][..usize::from(p.redundancy.max_copies).clamp(1, 3)]);
        let one_off = score(&p, Mode::Unprotected, &[10]);
        let burst_off = score(&p, Mode::Unprotected, &[10, 11, 12][..usize::from(p.redundancy.max_copies).clamp(1, 3)]);
        eprintln!("{name}: clean {clean:.2} one {one:.2} (off {one_off:.2}) burst {burst:.2} (off {burst_off:.2})");
    }
}

#[test]
#[ignore]
fn experiment_secondary_bitrate() {
    for name in ["2g", "3g"] {
        for br in [4000, 6000, 8000, 10000, 14000] {
            let mut p = Profile::named(name).unwrap();
            p.redundancy.bitrate_bps = br;
            let mut s = Vec::new();
            for at in [5, 9, 13, 17, 21, 25] {
                let at = if name == "2g" { at / 2 } else { at };
                s.push(score(&p, Mode::Protected, &[at]));
            }
            let off: Vec<f64> = [5, 9, 13, 17, 21, 25].iter().map(|&at| score(&p, Mode::Unprotected, &[if name == "2g" { at / 2 } else { at }])).collect();
            eprintln!("{name} red {br}: one-loss mean {:.2} vs off {:.2}", s.iter().sum::<f64>() / 6.0, off.iter().sum::<f64>() / 6.0);
        }
    }
}

#[test]
#[ignore]
fn experiment_3g_variants() {
    let said = speech();
    let variants: Vec<(u32, u8, u32, u32)> = vec![(22000, 0, 0, 1000), (18000, 1, 6000, 1000), (16000, 1, 8000, 1000), (16000, 2, 4000, 1000), (24000, 0, 0, 1000)];
    for (br, copies, red_br, dred) in variants {
        let mut p = Profile::named("3g").unwrap();
        p.bitrate_bps = br;
        p.redundancy = lowband_core::profile::Redundancy { max_copies: copies, bitrate_bps: red_br, dred_ms: dred, paid_from_bitrate: false };
        for pat in [LossPattern::CLEAN, LossPattern::all()[3], LossPattern::all()[4]] {
            let (mut pesq, mut bytes, mut talk, mut dred_s, mut lost, mut pk) = (0.0, 0, 0, 0, 0, 0);
            for seed in 1..=6 {
                let o = channel::run(&p, Mode::Protected, &pat, seed, &said).unwrap();
                let max_delay = (channel::playout_delay(&p).as_millis() as usize + 300) * 16;
                pesq += score_aligned(&said, &o.heard, o.said_at, max_delay, false).unwrap().pesq_wb / 6.0;
                bytes += o.wire_bytes; talk += o.talk_ms; dred_s += o.dred_samples; lost += o.lost; pk += o.packets;
            }
            eprintln!("3g br {br} red {copies}x{red_br} dred {dred} | {:<16} wire {:.1} lost {:.1}% dred {} ms PESQ {:.2}", pat.name, bytes as f64 * 8.0 / talk as f64, 100.0 * lost as f64 / pk as f64, dred_s / 16, pesq);
        }
    }
}

#[test]
#[ignore]
fn experiment_2g_variants() {
    let said = speech();
    for (br, red_br) in [(8000, 5000), (8000, 6000), (9000, 6000), (9000, 8000), (10000, 9000), (11000, 7000)] {
        let mut p = Profile::named("2g").unwrap();
        p.bitrate_bps = br;
        p.redundancy.bitrate_bps = red_br;
        for pat in [LossPattern::CLEAN, LossPattern::all()[2]] {
            let (mut pesq, mut bytes, mut talk) = (0.0, 0, 0);
            for seed in 1..=6 {
                let o = channel::run(&p, Mode::Protected, &pat, seed, &said).unwrap();
                let max_delay = (channel::playout_delay(&p).as_millis() as usize + 300) * 16;
                pesq += score_aligned(&said, &o.heard, o.said_at, max_delay, false).unwrap().pesq_wb / 6.0;
                bytes += o.wire_bytes; talk += o.talk_ms;
            }
            eprintln!("2g br {br} red {red_br} | {:<12} wire {:.1} PESQ {:.2}", pat.name, bytes as f64 * 8.0 / talk as f64, pesq);
        }
    }
}
