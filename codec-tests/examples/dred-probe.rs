//! How much DRED a packet carries: encodes the long talk at FRAME_MS / BPS / loss %
//! with DRED 1 s and prints the mean payload bytes, and the history each packet's
//! DRED covers before its own start (opus_dred_parse).
//!
//! `cargo run -p lowband-codec-tests --example dred-probe -- FRAME_MS BPS LOSS_PERCENT [DRED_MS]`
use lowband_codec_tests::data::{read_speech, shared_file};
use lowband_core::codec::{Dred, Encoder, SAMPLES_PER_MS};
use lowband_core::profile::Profile;

fn main() {
    let a: Vec<u32> = std::env::args().skip(1).map(|s| s.parse().unwrap()).collect();
    let (frame_ms, bps, loss) = (a[0], a[1], a[2]);
    let dred_ms = a.get(3).copied().unwrap_or(1000);
    let speech = read_speech(&shared_file("speech/synthetic-case-presentation-16k.wav").unwrap()).unwrap();
    let p = Profile::named("3g").unwrap();
    let mut enc = Encoder::new(&p).unwrap();
    enc.set_frame_samples(frame_ms as usize * SAMPLES_PER_MS);
    enc.set_bitrate(bps).unwrap();
    enc.set_dred_ms(dred_ms).unwrap();
    enc.set_expected_loss(loss as u8).unwrap();
    let mut dred = Dred::new().unwrap();
    let mut out = [0u8; 1500];
    let (mut n, mut bytes, mut with, mut reach) = (0usize, 0usize, 0usize, 0usize);
    let mut hist = [0usize; 12];
    for frame in speech.chunks_exact(enc.frame_samples()) {
        let len = enc.encode(frame, &mut out).unwrap();
        if len <= 3 {
            continue;
        }
        n += 1;
        bytes += len;
        let got = dred.parse(&out[..len]);
        if got > 0 {
            with += 1;
            reach += got;
        }
        hist[(got / SAMPLES_PER_MS / 100).min(11)] += 1;
        if std::env::var("PROBE_SEQ").is_ok() {
            print!("{}:{} ", len, got / SAMPLES_PER_MS);
        }
    }
    println!(
        "frame {frame_ms} ms {bps} bps loss {loss}%: {n} speech packets, {:.1} B each ({:.1} kbit/s payload), DRED in {with}, mean reach {:.0} ms before packet start; hist per 100 ms {:?}",
        bytes as f64 / n as f64,
        bytes as f64 * 8.0 / (n as f64 * frame_ms as f64),
        if with > 0 { reach as f64 / with as f64 / SAMPLES_PER_MS as f64 } else { 0.0 },
        hist
    );
}
