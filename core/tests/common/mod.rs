//! Shared by the sans-IO call tests: moving bytes between clients and the
//! gateway, and test signals. Each test binary uses a part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;

use lowband_core::client::{Client, Transmit};
use lowband_core::codec::CHUNK;
use lowband_core::gateway::{ConnId, Gateway};
use lowband_core::Time;

/// Hands everything the clients queued (control and audio) to the gateway.
pub fn deliver_to_gateway(gw: &mut Gateway, clients: &mut BTreeMap<ConnId, Client>, now: Time) {
    for (&conn, c) in clients {
        while let Some(t) = c.poll_transmit() {
            match t {
                Transmit::Control(b) => gw.handle_control(now, conn, &b),
                Transmit::Datagram(d) => gw.handle_datagram(now, conn, &d),
            }
        }
    }
}

/// Speech-like chunk `n`: a tone with vibrato under a syllable-rate envelope.
pub fn voice(n: usize) -> Vec<i16> {
    use std::f64::consts::TAU;
    (0..CHUNK)
        .map(|i| {
            let t = (n * CHUNK + i) as f64 / 16_000.0;
            let envelope = 0.55 + 0.45 * (TAU * 3.0 * t).sin();
            ((TAU * 180.0 * t + 8.0 * (TAU * 5.0 * t).sin()).sin() * 8000.0 * envelope) as i16
        })
        .collect()
}

/// A buzzy, vowel-like chunk `i`, so the encoder never goes into DTX.
pub fn voiced(i: usize) -> Vec<i16> {
    (0..CHUNK)
        .map(|k| {
            let t = (i * CHUNK + k) as f32 / 16_000.0;
            ((t * 2.0 * std::f32::consts::PI * 140.0).sin() * 6000.0 + (t * 2.0 * std::f32::consts::PI * 700.0).sin() * 2000.0) as i16
        })
        .collect()
}
