//! `aec-report` and `ns-report`: how well the client's voice processing
//! (`lowband_client::audio::process`) cleans a laptop microphone, measured
//! offline on the shared speech files.
//!
//! Echo: far-end speech goes through a simulated speaker-to-microphone path
//! (delay, a low-pass room response with reflections, attenuation) and is
//! added to near-end speech. ERLE is measured during far-end single talk
//! after the canceller has converged, at the AEC stage and after the whole
//! chain; near-end PESQ-WB during double talk against the clean near end.
//!
//! Noise: speech plus fan/hum or babble noise at 5 dB SNR, PESQ-WB before
//! and after noise suppression (and after the whole chain).

use anyhow::{anyhow, Context};
use lowband_client::audio::process::{Stages, VoiceProcessor};
use lowband_client::audio::wav::read_16k_mono;
use lowband_codec_tests::data::shared_file;
use lowband_codec_tests::score::score_turn;
use lowband_core::codec::CHUNK;
use lowband_core::rng::Rng;

const RATE: usize = 16_000;

fn speech(name: &str) -> anyhow::Result<Vec<i16>> {
    let p = shared_file(&format!("speech/{name}")).map_err(|e| anyhow!(e))?;
    read_16k_mono(&p).with_context(|| p.display().to_string())
}

fn energy(x: &[f32]) -> f64 {
    x.iter().map(|&s| f64::from(s).powi(2)).sum()
}

fn db(x: f64) -> f64 {
    10.0 * x.max(1e-20).log10()
}

fn to_i16(x: &[f32]) -> Vec<i16> {
    x.iter().map(|&s| s.round().clamp(-32768.0, 32767.0) as i16).collect()
}

/// Runs the chain over a whole recording; returns (AEC-stage output, final output).
fn process(stages: Stages, render: &[i16], mic: &[i16]) -> anyhow::Result<(Vec<i16>, Vec<i16>)> {
    let mut p = VoiceProcessor::new(stages)?;
    let (mut aec, mut out) = (Vec::with_capacity(mic.len()), Vec::with_capacity(mic.len()));
    let silence = [0i16; CHUNK];
    for (i, m) in mic.chunks_exact(CHUNK).enumerate() {
        p.render(render.get(i * CHUNK..(i + 1) * CHUNK).unwrap_or(&silence))?;
        let mut c = m.to_vec();
        p.capture(&mut c)?;
        aec.extend_from_slice(p.aec_output());
        out.extend_from_slice(&c);
    }
    Ok((aec, out))
}

/// A loudspeaker-to-microphone path: `delay_ms`, then a small room (direct
/// path and decaying reflections over ~40 ms), low-passed (laptop speakers
/// have little bass and no top), attenuated by `gain_db`.
fn echo_path(far: &[i16], delay_ms: usize, gain_db: f64, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut ir = vec![0f32; 40 * RATE / 1000];
    ir[0] = 1.0;
    for (i, h) in ir.iter_mut().enumerate().skip(16) {
        let decay = (-(i as f32) / (10.0 * RATE as f32 / 1000.0)).exp();
        *h = (rng.next_f64() as f32 * 2.0 - 1.0) * 0.5 * decay;
    }
    // Unit energy, so `gain_db` alone sets the echo level.
    let norm = ir.iter().map(|h| h * h).sum::<f32>().sqrt();
    ir.iter_mut().for_each(|h| *h /= norm);
    let g = 10f32.powf(gain_db as f32 / 20.0);
    let d = delay_ms * RATE / 1000;
    let mut out = vec![0f32; far.len() + d];
    for (n, &x) in far.iter().enumerate() {
        let x = f32::from(x) * g;
        if x == 0.0 {
            continue;
        }
        for (k, &h) in ir.iter().enumerate() {
            if let Some(o) = out.get_mut(n + d + k) {
                *o += x * h;
            }
        }
    }
    // One-pole low-pass at ~3.5 kHz and a high-pass at ~200 Hz.
    let a = (-2.0 * std::f32::consts::PI * 3500.0 / RATE as f32).exp();
    let b = (-2.0 * std::f32::consts::PI * 200.0 / RATE as f32).exp();
    let (mut lp, mut hp_x, mut hp_y) = (0f32, 0f32, 0f32);
    for o in out.iter_mut() {
        lp = (1.0 - a) * *o + a * lp;
        hp_y = b * (hp_y + lp - hp_x);
        hp_x = lp;
        *o = hp_y;
    }
    out
}

/// With `LOWBAND_REPORT_WAVS=DIR`, keeps each case's signals as WAVs to listen to.
fn save(case: &str, signals: &[(&str, &[i16])]) -> anyhow::Result<()> {
    let Some(dir) = std::env::var_os("LOWBAND_REPORT_WAVS") else { return Ok(()) };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    for (name, x) in signals {
        let mut w = hound::WavWriter::create(dir.join(format!("{case}-{name}.wav")), lowband_client::audio::wav::spec_16k_mono())?;
        for &s in x.iter() {
            w.write_sample(s)?;
        }
        w.finalize()?;
    }
    Ok(())
}

pub struct AecRow {
    pub delay_ms: usize,
    pub echo_db: f64,
    /// Near-end speech to echo ratio at the microphone during double talk.
    pub ser_db: f64,
    pub erle_aec_db: f64,
    pub erle_chain_db: f64,
    pub pesq_mic: f64,
    pub pesq_aec: f64,
    pub pesq_chain: f64,
}

/// Far end talks alone for 20 s, then the near end (real ARCTIC speech) talks over it.
pub fn aec_case(delay_ms: usize, echo_db: f64) -> anyhow::Result<AecRow> {
    let far = speech("synthetic-hub-reply-16k.wav")?;
    let near = speech("arctic_a0007.wav")?;
    let len = far.len().min(30 * RATE) / CHUNK * CHUNK;
    let far = &far[..len];
    let echo = echo_path(far, delay_ms, echo_db, delay_ms as u64);
    let near_at = 22 * RATE;
    let mut rng = Rng::new(7);
    // Mic self-noise at about −70 dBFS, so the measurement never divides by zero.
    let floor: Vec<f32> = (0..len).map(|_| (rng.next_f64() as f32 * 2.0 - 1.0) * 18.0).collect();
    let mic_echo: Vec<f32> = (0..len).map(|i| echo[i] + floor[i]).collect();
    let mut mic = mic_echo.clone();
    for (i, &s) in near.iter().enumerate() {
        if let Some(m) = mic.get_mut(near_at + i) {
            *m += f32::from(s);
        }
    }
    let mic = to_i16(&mic);
    let (aec, chain) = process(Stages::ALL, far, &mic)?;
    let e_near = near.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
    let e_echo = energy(&echo[near_at..(near_at + near.len()).min(len)]);
    save(&format!("aec-{delay_ms}ms-{echo_db}dB"), &[("mic", &mic), ("aec", &aec), ("chain", &chain)])?;

    // ERLE over far-end single talk after 10 s of convergence, on chunks carrying echo.
    let (from, to) = (10 * RATE, near_at);
    let (mut e_mic, mut e_aec, mut e_chain) = (0.0, 0.0, 0.0);
    for c in (from..to).step_by(CHUNK) {
        let m = &mic_echo[c..c + CHUNK];
        if db(energy(m) / CHUNK as f64) < db(18.0f64.powi(2) / 3.0) + 20.0 {
            continue; // far end silent here
        }
        e_mic += energy(m);
        e_aec += aec[c..c + CHUNK].iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
        e_chain += chain[c..c + CHUNK].iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
    }
    let score = |x: &[i16]| -> anyhow::Result<f64> { Ok(score_turn(&near, x, near_at, RATE / 5).map_err(|e| anyhow!(e))?.pesq_wb) };
    // No chunk carried audible echo (the reference row without echo): no ERLE to give.
    let erle = |e: f64| if e_mic > 0.0 { db(e_mic) - db(e) } else { f64::NAN };
    Ok(AecRow {
        delay_ms,
        echo_db,
        ser_db: db(e_near) - db(e_echo),
        erle_aec_db: erle(e_aec),
        erle_chain_db: erle(e_chain),
        pesq_mic: score(&mic)?,
        pesq_aec: score(&aec)?,
        pesq_chain: score(&chain)?,
    })
}

pub fn aec_report() -> anyhow::Result<()> {
    println!("echo cancellation: far end (synthetic-hub-reply) alone 0-22 s through a simulated");
    println!("speaker→mic path (delay, 40 ms room, 200 Hz-3.5 kHz, echo level), near end (arctic_a0007) from 22 s.");
    println!("ERLE during far-end single talk 10-22 s (after convergence); PESQ-WB of the near end in double talk.");
    println!(
        "{:>6} {:>6} {:>9} {:>10} {:>11} {:>9} {:>9} {:>11}",
        "delay", "echo", "near/echo", "ERLE AEC", "ERLE chain", "PESQ mic", "PESQ AEC", "PESQ chain"
    );
    for echo_db in [-60.0, -10.0, -4.0] {
        for d in [50, 100, 150] {
            let r = aec_case(d, echo_db)?;
            let erle = |x: f64| if x.is_nan() { "-".to_string() } else { format!("{:.1}dB", x.min(99.9)) };
            println!(
                "{:>4}ms {:>4.0}dB {:>7.1}dB {:>10} {:>11} {:>9.2} {:>9.2} {:>11.2}",
                r.delay_ms, r.echo_db, r.ser_db, erle(r.erle_aec_db), erle(r.erle_chain_db), r.pesq_mic, r.pesq_aec, r.pesq_chain
            );
        }
    }
    println!("(echo −60 dB: no measurable echo, so no ERLE; the row shows what double talk costs the near end by itself)");
    println!("(ERLE chain is capped at 99.9 dB: the whole chain often outputs digital silence during far-end single talk)");
    println!("(chain = AEC + RNNoise + AGC; PESQ mic = the unprocessed microphone, near end plus echo)");
    Ok(())
}

/// Fan and mains hum: low-passed noise with a slow blade wobble plus 50 Hz and its harmonics.
fn fan_noise(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let (mut lp1, mut lp2) = (0f32, 0f32);
    (0..len)
        .map(|i| {
            let w = rng.next_f64() as f32 * 2.0 - 1.0;
            lp1 = 0.9 * lp1 + 0.1 * w;
            lp2 = 0.7 * lp2 + 0.3 * w;
            let t = i as f32 / RATE as f32;
            let blade = 1.0 + 0.3 * (2.0 * std::f32::consts::PI * 23.0 * t).sin();
            let hum: f32 = [(50.0, 0.5), (100.0, 0.3), (150.0, 0.2), (250.0, 0.1)]
                .iter()
                .map(|&(f, a)| a * (2.0 * std::f32::consts::PI * f * t).sin())
                .sum();
            blade * (3.0 * lp1 + 0.4 * lp2) + 0.3 * hum
        })
        .collect()
}

/// Babble: the other speech files, several copies at different offsets, summed.
fn babble(len: usize) -> anyhow::Result<Vec<f32>> {
    let talkers = [speech("synthetic-hub-reply-16k.wav")?, speech("synthetic-case-presentation-16k.wav")?];
    let mut out = vec![0f32; len];
    for (k, offset_s) in [0usize, 7, 13, 21, 29, 3].iter().enumerate() {
        let t = &talkers[k % 2];
        let start = offset_s * RATE % t.len();
        for (i, o) in out.iter_mut().enumerate() {
            *o += f32::from(t[(start + i) % t.len()]);
        }
    }
    Ok(out)
}

pub struct NsRow {
    pub noise: &'static str,
    pub pesq_noisy: f64,
    pub pesq_ns: f64,
    pub pesq_chain: f64,
}

/// Speech at 5 dB SNR over `noise`, which starts 1 s before the speech.
pub fn ns_case(name: &'static str, clean: &[i16], noise: &[f32], snr_db: f64) -> anyhow::Result<NsRow> {
    let lead = RATE;
    let len = (lead + clean.len() + RATE / 2) / CHUNK * CHUNK;
    let speech_e = clean.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / clean.len() as f64;
    let noise_e = energy(&noise[..len]) / len as f64;
    let g = (speech_e / noise_e / 10f64.powf(snr_db / 10.0)).sqrt() as f32;
    let mut mix: Vec<f32> = noise[..len].iter().map(|&n| n * g).collect();
    for (i, &s) in clean.iter().enumerate() {
        mix[lead + i] += f32::from(s);
    }
    let noisy = to_i16(&mix);
    let none = Stages { aec: false, ns: false, agc: false };
    let (_, ns) = process(Stages { ns: true, ..none }, &[], &noisy)?;
    let (_, chain) = process(Stages::ALL, &[], &noisy)?;
    let score = |x: &[i16]| -> anyhow::Result<f64> { Ok(score_turn(clean, x, lead, RATE / 5).map_err(|e| anyhow!(e))?.pesq_wb) };
    Ok(NsRow { noise: name, pesq_noisy: score(&noisy)?, pesq_ns: score(&ns)?, pesq_chain: score(&chain)? })
}

pub fn ns_report() -> anyhow::Result<()> {
    println!("noise suppression: speech at 5 dB SNR over noise starting 1 s earlier; PESQ-WB against the clean speech.");
    println!("{:<34} {:<10} {:>8} {:>8} {:>11}", "speech", "noise", "noisy", "RNNoise", "full chain");
    let files = ["arctic_a0007.wav", "synthetic-case-presentation-16k.wav"];
    for f in files {
        let mut clean = speech(f)?;
        clean.truncate(12 * RATE);
        let len = clean.len() + 3 * RATE;
        let fan = fan_noise(len, 11);
        let mut bab = babble(len)?;
        if f.starts_with("synthetic-case") {
            // Do not babble with the talker's own words at the same offset.
            bab = babble(len + 5 * RATE)?.split_off(5 * RATE);
        }
        for (name, noise) in [("fan+hum", fan), ("babble", bab)] {
            let r = ns_case(name, &clean, &noise, 5.0)?;
            println!("{:<34} {:<10} {:>8.2} {:>8.2} {:>11.2}", f, r.noise, r.pesq_noisy, r.pesq_ns, r.pesq_chain);
        }
    }
    println!("(RNNoise = noise suppression alone; full chain = AEC + RNNoise + AGC, no far end)");
    Ok(())
}

