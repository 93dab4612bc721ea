//! A recorded link replays to the loss pattern it recorded.

use std::time::Duration;

use lowband_core::link::record::{Dir, LinkRecorder, RecordedLink};
use lowband_core::link::{Capacity, Link, LinkConfig, LossSpec};
use lowband_core::Time;

/// Sends `n` 20 ms audio packets (seq, ts) through `link`; returns which were lost
/// and the recorder's text as the client would have written it.
fn run(link: &mut Link<u16>, n: u16) -> (Vec<bool>, String) {
    let mut rec = LinkRecorder::new();
    let mut arrived = vec![false; n as usize];
    let mut deliver = |link: &mut Link<u16>, now: Time, rec: &mut LinkRecorder| {
        while let Some(seq) = link.poll_deliver(now) {
            arrived[seq as usize] = true;
            rec.on_down(now, seq, seq.wrapping_mul(8), 70);
        }
    };
    for seq in 0..n {
        let now = Time::from_millis(u64::from(seq) * 20);
        deliver(link, now, &mut rec);
        link.push(now, seq, 70 + 48);
    }
    while let Some(t) = link.poll_timeout() {
        deliver(link, t, &mut rec);
    }
    let text = rec.take();
    (arrived.iter().map(|a| !a).collect(), text)
}

#[test]
fn a_recorded_link_file_replays_to_the_loss_pattern_it_recorded() {
    // A bursty lossy link with a slow byte rate and jitter: the "real" link.
    let real = LinkConfig {
        capacity: Capacity::Rate { kbps: 60.0 },
        delay: Duration::from_millis(300),
        jitter: Duration::from_millis(40),
        loss: LossSpec::GilbertElliott { loss: 0.1, mean_burst: 3.0 },
        ..Default::default()
    };
    let (lost, text) = run(&mut Link::new(real, 7), 3000);
    // The first and last packets must arrive for the record to see the gaps.
    let first = lost.iter().position(|l| !l).unwrap();
    let last = lost.iter().rposition(|l| !l).unwrap();
    let seen = &lost[first..=last];
    assert!(seen.iter().filter(|&&l| l).count() > 100, "the link should lose packets");

    let recorded = RecordedLink::parse(&text).unwrap();
    assert_eq!(recorded.loss_pattern(Dir::Down), seen);
    let replay = LinkConfig { recorded: Some(recorded.fates(Dir::Down, Duration::from_millis(300)).unwrap()), ..Default::default() };
    let (replayed, _) = run(&mut Link::new(replay, 99), seen.len() as u16);
    assert_eq!(replayed, seen, "replay loses exactly the recorded packets");
}
