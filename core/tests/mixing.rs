//! The mixer at scale, sans IO, in virtual time: at most K talkers are mixed,
//! listeners who are not talking share one encode per tier, and a listener
//! can change tier or start talking mid-call without a gap or an overlap.

mod common;

use std::collections::BTreeMap;

use lowband_core::client::{Client, ClientConfig};
use lowband_core::codec::{packet_samples, Decoder, CHUNK, MAX_FRAME_SAMPLES};
use lowband_core::gateway::{ConnId, Gateway, GatewayConfig, Output};
use lowband_core::wire::audio::TICK_SAMPLES;
use lowband_core::wire::control::FrameReader;
use lowband_core::wire::{AudioPacket, ServerMsg};
use lowband_core::Time;

/// A voice-like test signal: a tone with vibrato and a syllable-rate envelope,
/// which Opus's voice activity detector keeps calling speech (a steady tone it does not).
fn tone(n: u64, hz: f64, amp: f64) -> Vec<i16> {
    use std::f64::consts::TAU;
    (0..CHUNK)
        .map(|i| {
            let t = (n as usize * CHUNK + i) as f64 / 16_000.0;
            let envelope = 0.55 + 0.45 * (TAU * 3.0 * t).sin();
            let phase = TAU * hz * t + 8.0 * (TAU * 5.0 * t).sin();
            (phase.sin() * amp * envelope) as i16
        })
        .collect()
}

struct Call {
    gw: Gateway,
    clients: BTreeMap<ConnId, Client>,
    /// Datagrams each connection received: (chunk number, datagram).
    got: BTreeMap<ConnId, Vec<(u64, Vec<u8>)>>,
    talker_lists: Vec<Vec<u32>>,
    readers: BTreeMap<ConnId, FrameReader>,
}

impl Call {
    fn new(config: GatewayConfig, people: u64) -> Self {
        let mut call = Call { gw: Gateway::new(config), clients: BTreeMap::new(), got: BTreeMap::new(), talker_lists: vec![], readers: BTreeMap::new() };
        for conn in 1..=people {
            call.gw.handle_connect(conn);
            call.clients.insert(conn, Client::new(ClientConfig::new(&format!("p{conn}"), "r")).unwrap());
            call.pump(0);
        }
        call
    }

    fn pump(&mut self, n: u64) {
        let now = Time::from_millis(n * 20);
        common::deliver_to_gateway(&mut self.gw, &mut self.clients, now);
        while let Some(out) = self.gw.poll_output() {
            match out {
                Output::Control { conn, data } => {
                    let r = self.readers.entry(conn).or_default();
                    r.push(&data);
                    while let Ok(Some(m)) = r.next::<ServerMsg>() {
                        if let ServerMsg::ActiveTalkers { ids } = &m {
                            if conn == 1 {
                                self.talker_lists.push(ids.clone());
                            }
                        }
                    }
                    self.clients.get_mut(&conn).unwrap().handle_control(&data).unwrap();
                }
                Output::Datagram { conn, data } => {
                    self.got.entry(conn).or_default().push((n, data.clone()));
                    self.clients.get_mut(&conn).unwrap().handle_datagram(now, &data);
                }
                _ => {}
            }
        }
    }

    /// One 20 ms step: `talk(conn)` gives what each client captures (None: silence).
    fn step(&mut self, n: u64, talk: impl Fn(ConnId) -> Option<Vec<i16>>) {
        for (&conn, c) in &mut self.clients {
            let pcm = talk(conn).unwrap_or_else(|| vec![0; CHUNK]);
            c.push_capture(&pcm).unwrap();
        }
        self.pump(n);
        self.gw.handle_timeout(Time::from_millis(n * 20));
        self.pump(n);
        for c in self.clients.values_mut() {
            let mut out = [0i16; CHUNK];
            c.pull_playout(Time::from_millis(n * 20), &mut out);
        }
    }
}

fn payload(datagram: &[u8]) -> Vec<u8> {
    AudioPacket::decode(datagram).unwrap().primary.to_vec()
}

#[test]
fn at_most_k_talkers_are_mixed_and_silent_listeners_share_one_encode() {
    let config = GatewayConfig { max_talkers: 3, ..GatewayConfig::default() };
    let mut call = Call::new(config, 8);
    // Connections 2-6 talk at once, each at its own pitch; 1, 7 and 8 listen.
    for n in 0..150 {
        call.step(n, |c| (2..=6).contains(&c).then(|| tone(n, 200.0 + 90.0 * c as f64, 3000.0 + 800.0 * c as f64)));
    }
    assert!(!call.talker_lists.is_empty(), "no talker list was ever sent");
    assert!(call.talker_lists.iter().all(|l| l.len() <= 3), "more than K talkers mixed: {:?}", call.talker_lists);
    assert_eq!(call.talker_lists.last().unwrap().len(), 3, "{:?}", call.talker_lists);

    let (a, b, c) = (&call.got[&1], &call.got[&7], &call.got[&8]);
    assert!(a.len() > 30, "listener got {} packets", a.len());
    let key = |v: &Vec<(u64, Vec<u8>)>| v.iter().map(|(n, d)| (*n, payload(d))).collect::<Vec<_>>();
    assert_eq!(key(a), key(b), "two silent listeners got different encodes");
    assert_eq!(key(a), key(c), "two silent listeners got different encodes");
    // Talkers each get their own mix-minus: different from the shared one.
    // The loudest talker is selected and gets its own mix-minus, not the shared one.
    let t = key(&call.got[&6]);
    assert!(t != key(a), "a selected talker got the shared mix (its own voice included)");
}

/// Every packet starts where the previous one ended, in media time.
fn assert_contiguous(packets: &[(u64, Vec<u8>)]) {
    let mut end: Option<u16> = None;
    for (n, d) in packets {
        let p = AudioPacket::decode(d).unwrap();
        if let Some(e) = end {
            if !p.header.marker {
                assert_eq!(p.header.ts, e, "gap or overlap at chunk {n}");
            }
        }
        let samples = packet_samples(p.primary).unwrap();
        end = Some(p.header.ts.wrapping_add((samples / TICK_SAMPLES) as u16));
    }
}

#[test]
fn a_listener_changes_tier_and_starts_talking_mid_call_without_a_gap_or_overlap() {
    let mut call = Call::new(GatewayConfig::default(), 3);
    let tiers: Vec<String> = call.gw.downlink_tiers().map(String::from).collect();
    assert!(tiers.len() >= 2, "{tiers:?}");
    let start = call.gw.downlink_tier(3).unwrap().to_string();
    // The leanest tier: its packets are longer than the default's.
    let other = tiers[0].clone();
    assert_ne!(start, other);
    for n in 0..300 {
        if n == 101 {
            call.gw.set_downlink_tier(3, &other).unwrap();
            assert_eq!(call.gw.downlink_tier(3), Some(other.as_str()));
        }
        // 2 talks throughout; 3 joins in from chunk 200.
        call.step(n, |c| match c {
            2 => Some(tone(n, 300.0, 6000.0)),
            3 if n >= 200 => Some(tone(n, 520.0, 6000.0)),
            _ => None,
        });
    }
    assert!(call.gw.set_downlink_tier(3, "no-such-tier").is_err());
    let got = &call.got[&3];
    let samples = |from: u64, to: u64| -> Vec<usize> {
        got.iter().filter(|(n, _)| (from..to).contains(n)).map(|(_, d)| packet_samples(AudioPacket::decode(d).unwrap().primary).unwrap()).collect()
    };
    let before = samples(30, 100);
    let after = samples(130, 300);
    assert!(!before.is_empty() && !after.is_empty());
    assert!(before.iter().all(|&s| s == before[0]) && after.iter().all(|&s| s == after[0]) && before[0] != after[0], "frame sizes did not follow the tier: {before:?} then {after:?}");
    assert_contiguous(&got[10..]);
    let markers: Vec<u64> = got.iter().filter(|(n, d)| *n > 30 && AudioPacket::decode(d).unwrap().header.marker).map(|(n, _)| *n).collect();
    assert!(markers.is_empty(), "the listener's stream restarted during the call at chunks {markers:?}");
}

/// Largest sample-to-sample step of `pcm[from..to]`.
fn max_step(pcm: &[i16], from: usize, to: usize) -> i32 {
    pcm[from..to.min(pcm.len())].windows(2).map(|w| (i32::from(w[1]) - i32::from(w[0])).abs()).max().unwrap_or(0)
}

#[test]
fn a_talker_who_stops_goes_back_to_the_shared_mix_without_a_click() {
    let mut call = Call::new(GatewayConfig::default(), 3);
    // 2 talks throughout; 3 talks from chunk 100 to 200, then only listens again.
    for n in 0..400 {
        call.step(n, |c| match c {
            2 => Some(tone(n, 300.0, 6000.0)),
            3 if (100..200).contains(&n) => Some(tone(n, 520.0, 6000.0)),
            _ => None,
        });
    }
    // 3 had its own mix-minus while talking and shares listener 1's encode after.
    let between = |c: ConnId, from: u64, to: u64| call.got[&c].iter().filter(|(n, _)| (from..to).contains(n)).map(|(n, d)| (*n, payload(d))).collect::<Vec<_>>();
    assert_ne!(between(3, 150, 190), between(1, 150, 190), "3 never had its own mix-minus");
    assert_eq!(between(3, 300, 400), between(1, 300, 400), "3 did not go back to the shared encode");
    // What 3 hears, decoded as its client would, chunk number → first sample.
    let mut decoder = Decoder::new(5).unwrap();
    let mut pcm = Vec::new();
    let mut at = std::collections::BTreeMap::new();
    let mut buf = vec![0i16; MAX_FRAME_SAMPLES];
    for (n, d) in &call.got[&3] {
        at.entry(*n).or_insert(pcm.len());
        let got = decoder.decode(AudioPacket::decode(d).unwrap().primary, &mut buf).unwrap();
        pcm.extend_from_slice(&buf[..got]);
    }
    let sample = |n: u64| at.range(n..).next().map_or(pcm.len(), |(_, &s)| s);
    let steady = max_step(&pcm, sample(40), sample(95));
    // Back to the shared encode after the talker hangover (600 ms = 30 chunks).
    let switch = max_step(&pcm, sample(200), sample(300));
    println!("largest step: steady {steady}, around the switch back to the shared mix {switch}");
    assert!(switch <= steady * 3 / 2, "a click going back to the shared mix: step {switch} against {steady} in steady state");
}

#[test]
fn digital_silence_in_a_mix_sends_nothing_once_in_dtx_not_even_comfort_noise_updates() {
    let mut call = Call::new(GatewayConfig::default(), 3);
    // 2 talks alone from chunk 0 to 300; then nobody talks until 500.
    for n in 0..500 {
        call.step(n, |c| (c == 2 && n < 300).then(|| tone(n, 300.0, 6000.0)));
    }
    let count = |call: &Call, c: ConnId, from: u64, to: u64| call.got.get(&c).map_or(0, |g| g.iter().filter(|(n, _)| (from..to).contains(n)).count());
    assert!(count(&call, 1, 50, 300) > 60, "the listener did not hear the talker");
    // The lone talker's own mix-minus is digital silence throughout: after
    // settling into DTX, no packets (libopus alone would refresh comfort noise every 400 ms).
    assert_eq!(count(&call, 2, 50, 300), 0, "the talker was sent its own silence");
    // After the talk and the hangover, the shared mix is silence too.
    assert_eq!(count(&call, 1, 380, 500), 0, "a silent room was sent comfort noise");
    // Speech resumes at once after skipped silence.
    for n in 500..560 {
        call.step(n, |c| (c == 3).then(|| tone(n, 520.0, 6000.0)));
    }
    assert!(count(&call, 1, 500, 560) > 10, "the listener did not hear the next talker");
    assert_contiguous(&call.got[&1].iter().filter(|(n, _)| *n >= 500).cloned().collect::<Vec<_>>());
}

#[test]
fn a_room_on_a_tick_grid_ticks_on_it_whenever_its_first_join_arrives() {
    let grid = Time::from_millis(1000);
    for join_ms in [0u64, 1007, 1020, 1419] {
        let mut gw = Gateway::new(GatewayConfig { tick_grid: Some(grid), ..GatewayConfig::default() });
        let mut clients = BTreeMap::from([(1, Client::new(ClientConfig::new("p1", "r")).unwrap())]);
        gw.handle_connect(1);
        common::deliver_to_gateway(&mut gw, &mut clients, Time::from_millis(join_ms));
        let first = gw.poll_timeout().expect("the room ticks");
        assert!(first > Time::from_millis(join_ms) || first == grid, "first tick {first:?} not after the join at {join_ms} ms");
        assert!(first - Time::from_millis(join_ms.max(1000)) <= std::time::Duration::from_millis(20), "first tick {first:?} more than a tick after the join at {join_ms} ms");
        assert_eq!((first - grid).as_micros() % 20_000, 0, "first tick {first:?} is off the grid (join at {join_ms} ms)");
    }
}
