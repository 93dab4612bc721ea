//! The virtual-time simulation is deterministic: one seed, one result.

use std::time::Duration;

use lowband_codec_tests::data::{read_speech, shared_file};
use lowband_core::link::{LinkConfig, LossSpec};
use lowband_tools::sim::{self, same_link, SimSpec};

fn spec(seed: u64) -> SimSpec {
    let speech = read_speech(&shared_file("speech/arctic_a0007.wav").unwrap()).unwrap();
    let link = LinkConfig {
        delay: Duration::from_millis(200),
        jitter: Duration::from_millis(30),
        loss: LossSpec::GilbertElliott { loss: 0.1, mean_burst: 2.0 },
        ..Default::default()
    };
    SimSpec {
        names: vec!["a".into(), "b".into()],
        links: vec![same_link(link); 2],
        turns: sim::round_robin(&[speech], 2, 2.0, 0.5, 7.0),
        seconds: 7.0,
        seed,
        // 20 ms packets: enough of them for the lossy link to hit each client.
        profile: lowband_core::profile::Profile::named("good"),
        progress: false,
        decoder_complexity: None,
        report_phase: std::time::Duration::ZERO,
    }
}

fn heard(dir: &std::path::Path, seed: u64) -> (Vec<Vec<u8>>, Vec<sim::LinkTotals>) {
    let out = sim::run(&spec(seed), dir).unwrap();
    (out.heard.iter().map(|p| std::fs::read(p).unwrap()).collect(), out.totals)
}

#[test]
fn two_sim_runs_with_one_seed_produce_identical_heard_audio() {
    let tmp = std::env::temp_dir().join(format!("lowband-sim-test-{}", std::process::id()));
    let (a, ta) = heard(&tmp.join("a"), 5);
    let (b, _) = heard(&tmp.join("b"), 5);
    let (c, tc) = heard(&tmp.join("c"), 6);
    assert_eq!(a, b, "same seed, same bytes");
    assert_ne!(a, c, "another seed loses other packets");
    assert!(ta.iter().all(|t| t.down_lost > 0), "the link must lose something: {ta:?}");
    // Each listener heard the other's speech: far more than silence.
    let energy = |w: &[u8]| w[44..].chunks(2).map(|s| i64::from(i16::from_le_bytes([s[0], s[1]])).abs()).sum::<i64>();
    assert!(a.iter().all(|w| energy(w) > 1_000_000), "{:?}", a.iter().map(|w| energy(w)).collect::<Vec<_>>());
    let _ = tc;
    let _ = std::fs::remove_dir_all(&tmp);
}
