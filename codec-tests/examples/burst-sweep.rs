//! 3g with another burst redundancy, at 20 % loss in bursts of 3 and clean:
//! how the profile's `bursts` setting was chosen.
//!
//! `cargo run -p lowband-codec-tests --example burst-sweep -- FRAME_MS PRIMARY_BPS COPIES COPY_BPS MAX_SPACING DRED_MS [full|long|items]`
//! (default: the real recording under 6 seeds; `full`: as codec-report; `long`: the two long talks;
//! `items`: per-item scores). DRED_MS is the DRED depth, 0 = off.
use lowband_codec_tests::channel::{LossPattern, Mode};
use lowband_codec_tests::report;
use lowband_core::profile::Profile;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let n = |i: usize| a[i].parse::<u32>().unwrap();
    let mut p = Profile::named("3g").unwrap();
    p.redundancy.bursts = Some(lowband_core::profile::BurstRedundancy {
        frame_ms: n(0),
        bitrate_bps: n(1),
        copies: n(2) as u8,
        copy_bitrate_bps: n(3),
        max_spacing: n(4) as u8,
    });
    p.redundancy.dred_ms = n(5);
    p.wire_budget_bps = 0;
    let quick = a.get(6).map_or(true, |s| s != "full" && s != "long");
    let mut items = report::speech_items(6, quick).unwrap();
    if a.get(6).is_some_and(|s| s == "long") {
        items.drain(..6);
    }
    let pats = LossPattern::all();
    if a.get(6).is_some_and(|s| s == "items") {
        let items = report::speech_items(6, false).unwrap();
        per_item(&p, &pats[3], Mode::Protected, &items);
        per_item(&p, &pats[3], Mode::Unprotected, &items[6..]);
        per_item(&p, &pats[0], Mode::Protected, &items[6..]);
        return;
    }
    for pat in [pats[3], pats[0]] {
        let r = report::measure(&p, &pat, Mode::Protected, &items, false).unwrap();
        println!("{:?} {:<16} {:6.2} kbit/s lost {:4.1} resid {:4.1} PESQ {:.3}", a, pat.name, r.wire_kbps, r.lost_pct, r.residual_pct, r.pesq_wb);
    }
}

fn per_item(p: &Profile, pat: &LossPattern, mode: Mode, items: &[report::Item]) {
    let max_delay = (lowband_codec_tests::channel::playout_delay(p).as_millis() as usize + 300) * 16;
    for it in items {
        let o = lowband_codec_tests::channel::run(p, mode, pat, it.seed, &it.speech).unwrap();
        let s = lowband_codec_tests::score::score_aligned(&it.speech, &o.heard, o.said_at, max_delay, false).unwrap();
        println!("  {:<45} {:?} lost {:5.1}% rebuilt {:5.1}% kbps {:5.1} PESQ {:.2}", it.name, mode, 100.0 * o.lost as f64 / o.packets as f64, 100.0 * o.rebuilt() as f64 / o.packets as f64, o.wire_kbps(), s.pesq_wb);
    }
}
