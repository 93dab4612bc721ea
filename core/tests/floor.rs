//! Floor control in virtual time, sans IO: the gateway itself keeps a
//! host-muted talker out of every mix and out of the recording, even when the
//! talker's client ignores the mute and keeps sending.

mod common;

use std::collections::BTreeMap;

use lowband_core::client::{Client, ClientConfig};
use lowband_core::codec::CHUNK;
use lowband_core::gateway::{Gateway, GatewayConfig, Output, Presence};
use lowband_core::wire::Role;
use lowband_core::Time;

fn tone(n: u64) -> Vec<i16> {
    (0..CHUNK).map(|i| ((((n as usize * CHUNK + i) as f64) * 440.0 * std::f64::consts::TAU / 16_000.0).sin() * 8000.0) as i16).collect()
}

fn rms(x: &[i16]) -> f64 {
    (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

struct Room {
    gw: Gateway,
    clients: BTreeMap<u64, Client>,
    /// Connections whose control messages from the gateway are dropped (a client that ignores the host).
    deaf: Vec<u64>,
    recorded: Vec<i16>,
    attendance: Vec<(String, Presence, Role)>,
}

impl Room {
    fn pump(&mut self, now: Time) {
        common::deliver_to_gateway(&mut self.gw, &mut self.clients, now);
        while let Some(out) = self.gw.poll_output() {
            match out {
                Output::Control { conn, data } if !self.deaf.contains(&conn) => self.clients.get_mut(&conn).unwrap().handle_control(&data).unwrap(),
                Output::Datagram { conn, data } => self.clients.get_mut(&conn).unwrap().handle_datagram(now, &data),
                Output::Recording { pcm, .. } => self.recorded.extend(pcm),
                Output::Attendance(a) => self.attendance.push((a.name, a.presence, a.role)),
                _ => {}
            }
        }
    }

    /// Runs `chunks` × 20 ms: conn 2 talks; returns what conn 3 heard.
    fn run(&mut self, from: u64, chunks: u64) -> Vec<i16> {
        let mut heard = Vec::new();
        for n in from..from + chunks {
            let now = Time::from_millis(n * 20);
            self.clients.get_mut(&2).unwrap().push_capture(&tone(n)).unwrap();
            self.pump(now);
            self.gw.handle_timeout(now);
            self.pump(now);
            let mut out = [0i16; CHUNK];
            self.clients.get_mut(&3).unwrap().pull_playout(now, &mut out);
            heard.extend_from_slice(&out);
        }
        heard
    }
}

#[test]
fn the_gateway_keeps_a_host_muted_talker_out_of_every_mix_and_the_recording_even_if_the_client_ignores_it() {
    let mut room = Room {
        gw: Gateway::new(GatewayConfig { record: true, ..GatewayConfig::default() }),
        clients: BTreeMap::new(),
        deaf: vec![],
        recorded: vec![],
        attendance: vec![],
    };
    for (conn, name) in [(1, "Hub"), (2, "Talker"), (3, "Listener")] {
        room.gw.handle_connect(conn);
        room.clients.insert(conn, Client::new(ClientConfig::new(name, "r")).unwrap());
        room.pump(Time::ZERO);
    }
    assert_eq!(room.attendance.iter().map(|a| (a.0.as_str(), a.2)).collect::<Vec<_>>(), [("Hub", Role::Host), ("Talker", Role::Participant), ("Listener", Role::Participant)]);
    let talker = room.clients[&2].you().unwrap();
    room.deaf.push(2);

    let before = room.run(0, 50);
    room.clients.get_mut(&1).unwrap().mute_participant(talker, true);
    room.run(50, 10);
    let rec_mark = room.recorded.len();
    let after = room.run(60, 50);
    assert!(rms(&before[CHUNK * 20..]) > 1000.0, "the listener never heard the talker: {}", rms(&before));
    assert!(rms(&after) < 1.0, "the muted talker still reached the mix: rms {}", rms(&after));
    assert!(rms(&room.recorded[CHUNK * 20..CHUNK * 50]) > 1000.0 && rms(&room.recorded[rec_mark..]) < 1.0, "the recording did not follow the mute");
    assert!(room.clients[&3].entry(talker).unwrap().muted, "the listener's roster does not show the mute");
    assert!(!room.clients[&2].is_muted(), "the deaf talker was told (test setup)");
}

#[test]
fn a_token_holder_who_reconnects_replaces_their_stale_seat() {
    use lowband_core::gateway::TokenKey;
    use lowband_core::token::{issue, Claims};
    let key = b"k".repeat(32);
    let config = GatewayConfig { token_key: Some(TokenKey(key.clone())), require_tokens: true, unix_ms_at_zero: 1_000_000, ..GatewayConfig::default() };
    let mut room = Room { gw: Gateway::new(config), clients: BTreeMap::new(), deaf: vec![], recorded: vec![], attendance: vec![] };
    let token = issue(&key, &Claims { room: "r".into(), name: "Clinic 7".into(), role: Role::Participant, expires: 2_000 });
    for conn in [1, 2] {
        room.gw.handle_connect(conn);
        let mut c = ClientConfig::new("typed name", "r");
        c.token = Some(token.clone());
        room.clients.insert(conn, Client::new(c).unwrap());
        room.pump(Time::from_millis(conn * 100));
    }
    let roster = room.gw.roster("r");
    assert_eq!(roster.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["Clinic 7"]);
    let events: Vec<Presence> = room.attendance.iter().map(|a| a.1).collect();
    assert_eq!(events, [Presence::Joined, Presence::Lost, Presence::Joined]);
}

#[test]
fn when_the_host_of_an_open_room_leaves_the_longest_present_participant_takes_over() {
    let mut room = Room { gw: Gateway::new(GatewayConfig::default()), clients: BTreeMap::new(), deaf: vec![], recorded: vec![], attendance: vec![] };
    for (conn, name) in [(1, "Hub"), (2, "Early"), (3, "Late")] {
        room.gw.handle_connect(conn);
        room.clients.insert(conn, Client::new(ClientConfig::new(name, "r")).unwrap());
        room.pump(Time::ZERO);
    }
    room.gw.handle_disconnect(1);
    room.pump(Time::from_millis(10));
    // The seat is held for a reconnect first.
    assert!(!room.clients[&2].is_host());
    room.gw.handle_timeout(Time::from_millis(61_000));
    room.pump(Time::from_millis(61_000));
    let early = room.clients[&2].you().unwrap();
    assert!(room.clients[&2].is_host());
    assert_eq!(room.clients[&3].entry(early).unwrap().role, Role::Host);
}

#[test]
fn everyone_is_told_who_speaks_and_a_silent_talker_drops_off_after_the_hangover() {
    let mut room = Room { gw: Gateway::new(GatewayConfig::default()), clients: BTreeMap::new(), deaf: vec![], recorded: vec![], attendance: vec![] };
    for (conn, name) in [(1, "Hub"), (2, "Talker"), (3, "Listener")] {
        room.gw.handle_connect(conn);
        room.clients.insert(conn, Client::new(ClientConfig::new(name, "r")).unwrap());
        room.pump(Time::ZERO);
    }
    let talker = room.clients[&2].you().unwrap();
    room.run(0, 50);
    assert_eq!(room.clients[&3].talkers(), [talker], "the listener is not shown the talker speaking");
    assert_eq!(room.clients[&1].talkers(), [talker]);
    // Silence from the talker: the indicator goes off within a second.
    for n in 50..100 {
        let now = Time::from_millis(n * 20);
        room.clients.get_mut(&2).unwrap().push_capture(&[0; CHUNK]).unwrap();
        room.pump(now);
        room.gw.handle_timeout(now);
        room.pump(now);
    }
    assert!(room.clients[&3].talkers().is_empty(), "still shown speaking: {:?}", room.clients[&3].talkers());
}
