//! Feedback to adaptation, sans IO in virtual time: receiver reports cross
//! between a real gateway engine and real clients while a filter drops
//! datagrams, and the senders' profiles follow.

use lowband_core::adapt::ladder;
use lowband_core::client::{Client, ClientConfig, Transmit};
use lowband_core::codec::CHUNK;
use lowband_core::feedback::LinkQuality;
use lowband_core::gateway::{Gateway, GatewayConfig, Output};
use lowband_core::Time;

/// Shared speech (the gateway mixes only what sounds like voice), looped.
fn speech() -> Vec<i16> {
    // lowband-codec-tests depends on this crate, so its `shared_file` is not available here.
    let dir = std::env::var_os("LOWBAND_DATA").map_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"), Into::into);
    let path = dir.join("speech/synthetic-case-presentation-16k.wav");
    hound::WavReader::open(&path).unwrap_or_else(|e| panic!("{}: {e} (set LOWBAND_DATA)", path.display())).samples::<i16>().map(Result::unwrap).collect()
}

/// Client 1 talks, client 2 listens. `drop_up(n, k)` / `drop_down(n, k)` drop the
/// k-th datagram sent in chunk n.
struct Call {
    gw: Gateway,
    clients: Vec<Client>,
    n: u64,
    speech: Vec<i16>,
    up_sent: u64,
    down_sent: u64,
}

impl Call {
    fn new() -> Call {
        let mut gw = Gateway::new(GatewayConfig::default());
        let mut clients = Vec::new();
        for (k, name) in ["talker", "listener"].into_iter().enumerate() {
            gw.handle_connect(k as u64);
            clients.push(Client::new(ClientConfig::new(name, "r")).unwrap());
        }
        Call { gw, clients, n: 0, speech: speech(), up_sent: 0, down_sent: 0 }
    }

    fn run(&mut self, seconds: u64, up_loss: impl Fn(u64) -> bool, down_loss: impl Fn(u64) -> bool) {
        for _ in 0..seconds * 50 {
            let now = Time::from_millis(self.n * 20);
            let at = (self.n as usize * CHUNK) % (self.speech.len() - CHUNK);
            self.clients[0].push_capture(&self.speech[at..at + CHUNK]).unwrap();
            for c in &mut self.clients {
                c.handle_timeout(now);
            }
            for (k, c) in self.clients.iter_mut().enumerate() {
                while let Some(t) = c.poll_transmit() {
                    match t {
                        Transmit::Control(b) => self.gw.handle_control(now, k as u64, &b),
                        Transmit::Datagram(d) => {
                            self.up_sent += 1;
                            if !(k == 0 && up_loss(self.up_sent)) {
                                self.gw.handle_datagram(now, k as u64, &d);
                            }
                        }
                    }
                }
            }
            self.gw.handle_timeout(now);
            while let Some(o) = self.gw.poll_output() {
                match o {
                    Output::Control { conn, data } => self.clients[conn as usize].handle_control(&data).unwrap(),
                    Output::Datagram { conn, data } => {
                        if conn == 1 {
                            self.down_sent += 1;
                            if down_loss(self.down_sent) {
                                continue;
                            }
                        }
                        self.clients[conn as usize].handle_datagram(now, &data);
                    }
                    _ => {}
                }
            }
            let mut out = [0i16; CHUNK];
            for c in &mut self.clients {
                c.pull_playout(now, &mut out);
                while c.poll_event().is_some() {}
            }
            self.n += 1;
        }
    }

    fn talker_rung(&self) -> usize {
        let name = &self.clients[0].profile().name;
        ladder().iter().position(|p| &p.name == name).unwrap()
    }
}

fn clean(_: u64) -> bool {
    false
}

#[test]
fn uplink_loss_moves_the_talker_down_at_once_and_back_up_only_slowly() {
    let mut call = Call::new();
    call.run(3, clean, clean);
    let start = call.talker_rung();
    assert_eq!(call.clients[0].link().quality, LinkQuality::Good);
    // 20 % loss: within two reports the talker is on a leaner profile.
    call.run(3, |k| k % 5 == 0, clean);
    assert!(call.talker_rung() > start, "still on rung {start}");
    assert_ne!(call.clients[0].link().quality, LinkQuality::Good);
    // Clean again (after the last lossy report has landed): no step up for several seconds, then one.
    call.run(1, clean, clean);
    let low = call.talker_rung();
    call.run(6, clean, clean);
    assert_eq!(call.talker_rung(), low, "stepped up too soon");
    call.run(10, clean, clean);
    assert!(call.talker_rung() < low, "never stepped back up");
}

#[test]
fn a_lossy_downlink_moves_that_listener_to_a_leaner_mix() {
    let mut call = Call::new();
    call.run(3, clean, clean);
    let start = call.gw.downlink_rung(1).unwrap();
    call.run(4, clean, |k| k % 4 == 0);
    assert!(call.gw.downlink_rung(1).unwrap() > start, "{} sent {}", call.clients[1].link(), call.down_sent);
    // The talker's own downlink (it hears nothing but comfort) is untouched.
    assert_eq!(call.gw.downlink_rung(0), Some(start));
}

#[test]
fn an_uplink_that_passes_nothing_trips_the_breaker_and_probes_back_by_itself() {
    let mut call = Call::new();
    call.run(2, clean, clean);
    call.run(12, |k| k % 10 != 0, clean);
    assert!(call.clients[0].link().receive_only, "breaker did not trip: {}", call.clients[0].link());
    assert_eq!(call.clients[0].link().quality, LinkQuality::Bad);
    // The link heals: after the probe pause the talker sends again, on the leanest rung.
    call.run(12, clean, clean);
    assert!(!call.clients[0].link().receive_only);
    assert_eq!(call.talker_rung(), ladder().len() - 1);
}
