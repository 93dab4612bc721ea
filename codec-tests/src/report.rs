//! The codec report: every link profile × loss pattern, protected, with
//! protection off, and with plain Opus concealment — on-wire kbit/s,
//! PESQ-WB and ViSQOL — as a table, JSON and a quality-versus-bitrate PNG.

use std::path::Path;
use std::sync::Mutex;

use lowband_core::profile::Profile;
use serde::Serialize;

use crate::channel::{self, LossPattern, Mode};
use crate::data::{read_speech, shared_file};
use crate::score::score_aligned;

/// One piece of speech run through the link, with its loss seed.
pub struct Item {
    pub name: String,
    pub speech: Vec<i16>,
    pub seed: u64,
    /// ViSQOL is slow (~0.1 s per second of audio): scored on the real recording only.
    pub visqol: bool,
}

/// The real recording under `seeds` loss seeds, plus (unless `quick`) the two long synthetic talks.
pub fn speech_items(seeds: u64, quick: bool) -> Result<Vec<Item>, String> {
    let arctic = read_speech(&shared_file("speech/arctic_a0007.wav")?)?;
    let mut items: Vec<Item> = (1..=seeds).map(|s| Item { name: format!("arctic_a0007 seed {s}"), speech: arctic.clone(), seed: s, visqol: true }).collect();
    if !quick {
        for (i, f) in ["speech/synthetic-case-presentation-16k.wav", "speech/synthetic-hub-reply-16k.wav"].iter().enumerate() {
            items.push(Item { name: (*f).into(), speech: read_speech(&shared_file(f)?)?, seed: 100 + i as u64, visqol: false });
        }
    }
    Ok(items)
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub profile: String,
    pub pattern: LossPattern,
    pub mode: Mode,
    /// IPv4 kbit/s on the wire while talking (all datagrams sent, protection included).
    pub wire_kbps: f64,
    /// Datagrams actually lost, %.
    pub lost_pct: f64,
    /// Datagrams lost and not rebuilt from redundancy, % of those sent.
    pub residual_pct: f64,
    /// Lost datagrams rebuilt from redundancy (RED, LBRR, DRED).
    pub recovered: u64,
    /// Means over the speech items.
    pub pesq_wb: f64,
    pub visqol: Option<f64>,
}

pub fn measure(profile: &Profile, pattern: &LossPattern, mode: Mode, items: &[Item], with_visqol: bool) -> Result<Row, String> {
    let (mut bytes, mut talk, mut packets, mut lost, mut recovered) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut pesq, mut vis) = (Vec::new(), Vec::new());
    let max_delay = (channel::playout_delay(profile).as_millis() as usize + 300) * 16;
    for item in items {
        let o = channel::run(profile, mode, pattern, item.seed, &item.speech)?;
        bytes += o.wire_bytes;
        talk += o.talk_ms;
        packets += o.packets;
        lost += o.lost;
        recovered += o.rebuilt();
        let s = score_aligned(&item.speech, &o.heard, o.said_at, max_delay, with_visqol && item.visqol).map_err(|e| format!("{}: {e}", item.name))?;
        pesq.push(s.pesq_wb);
        vis.extend(s.visqol);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    Ok(Row {
        profile: profile.name.clone(),
        pattern: *pattern,
        mode,
        wire_kbps: if talk == 0 { 0.0 } else { bytes as f64 * 8.0 / talk as f64 },
        lost_pct: 100.0 * lost as f64 / packets.max(1) as f64,
        residual_pct: 100.0 * lost.saturating_sub(recovered) as f64 / packets.max(1) as f64,
        recovered,
        pesq_wb: mean(&pesq),
        visqol: (!vis.is_empty()).then(|| mean(&vis)),
    })
}

/// Measures every combination, on `jobs` threads; rows come back in a fixed order.
pub fn measure_all(profiles: &[Profile], patterns: &[LossPattern], items: &[Item], with_visqol: bool, jobs: usize) -> Result<Vec<Row>, String> {
    let work: Vec<(usize, &Profile, &LossPattern, Mode)> = profiles
        .iter()
        .flat_map(|p| patterns.iter().flat_map(move |l| Mode::ALL.iter().map(move |m| (p, l, *m))))
        .enumerate()
        .map(|(i, (p, l, m))| (i, p, l, m))
        .collect();
    let next = Mutex::new(0usize);
    let done: Mutex<Vec<(usize, Result<Row, String>)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap_or_else(|e| e.into_inner());
                    let i = *n;
                    *n += 1;
                    i
                };
                let Some(&(idx, p, l, m)) = work.get(i) else { break };
                let r = measure(p, l, m, items, with_visqol);
                if let Ok(row) = &r {
                    eprintln!("{:<5} {:<16} {:<11?} {:6.1} kbit/s  lost {:4.1}% residual {:4.1}%  PESQ-WB {:.2}", row.profile, l.name, m, row.wire_kbps, row.lost_pct, row.residual_pct, row.pesq_wb);
                }
                done.lock().unwrap_or_else(|e| e.into_inner()).push((idx, r));
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(|e| e.into_inner());
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

fn find<'a>(rows: &'a [Row], profile: &str, pattern: &str, mode: Mode) -> Option<&'a Row> {
    rows.iter().find(|r| r.profile == profile && r.pattern.name == pattern && r.mode == mode)
}

fn opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

/// A markdown table: one line per profile × loss pattern, the three modes side by side.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| profile | loss | kbit/s on wire | PESQ-WB | ViSQOL | lost % | residual % | kbit/s, protection off | PESQ-WB off | ViSQOL off | PESQ-WB plain PLC | ViSQOL plain PLC |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    let mut seen: Vec<(String, &str)> = Vec::new();
    for r in rows {
        let key = (r.profile.clone(), r.pattern.name);
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let p = find(rows, &r.profile, r.pattern.name, Mode::Protected);
        let u = find(rows, &r.profile, r.pattern.name, Mode::Unprotected);
        let c = find(rows, &r.profile, r.pattern.name, Mode::PlainPlc);
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.profile,
            r.pattern.name,
            p.map_or("-".into(), |x| format!("{:.1}", x.wire_kbps)),
            p.map_or("-".into(), |x| format!("{:.2}", x.pesq_wb)),
            opt(p.and_then(|x| x.visqol)),
            p.map_or("-".into(), |x| format!("{:.1}", x.lost_pct)),
            p.map_or("-".into(), |x| format!("{:.1}", x.residual_pct)),
            u.map_or("-".into(), |x| format!("{:.1}", x.wire_kbps)),
            u.map_or("-".into(), |x| format!("{:.2}", x.pesq_wb)),
            opt(u.and_then(|x| x.visqol)),
            c.map_or("-".into(), |x| format!("{:.2}", x.pesq_wb)),
            opt(c.and_then(|x| x.visqol)),
        ));
    }
    out
}

/// The goals, checked against measured rows.
pub fn goals(rows: &[Row]) -> Vec<(String, bool)> {
    let mut g = Vec::new();
    let get = |p: &str, l: &str| find(rows, p, l, Mode::Protected);
    if let (Some(clean), Some(ten)) = (get("2g", "0%"), get("2g", "10% random")) {
        let wire = rows.iter().filter(|r| r.profile == "2g" && r.mode == Mode::Protected).map(|r| r.wire_kbps).fold(0.0, f64::max);
        g.push((format!("2g on wire ≤ 18 kbit/s (worst row): {wire:.1}"), wire <= 18.0));
        let drop = clean.pesq_wb - ten.pesq_wb;
        g.push((format!("2g PESQ-WB drop at 10% random ≤ 0.5: {:.2} − {:.2} = {drop:.2}", clean.pesq_wb, ten.pesq_wb), drop <= 0.5));
    }
    if let (Some(clean), Some(burst)) = (get("3g", "0%"), get("3g", "20% bursts of 3")) {
        let wire = rows.iter().filter(|r| r.profile == "3g" && r.mode == Mode::Protected).map(|r| r.wire_kbps).fold(0.0, f64::max);
        g.push((format!("3g on wire ≤ 28 kbit/s (worst row): {wire:.1}"), wire <= 28.0));
        g.push((format!("3g PESQ-WB at 20% bursty ≥ 3.0: {:.2}", burst.pesq_wb), burst.pesq_wb >= 3.0));
        g.push((format!("3g PESQ-WB clean ≥ 3.6: {:.2}", clean.pesq_wb), clean.pesq_wb >= 3.6));
    }
    g
}

pub fn write_json(path: &Path, rows: &[Row]) -> Result<(), String> {
    let s = serde_json::to_string_pretty(rows).map_err(|e| e.to_string())?;
    std::fs::write(path, s).map_err(|e| format!("{}: {e}", path.display()))
}
