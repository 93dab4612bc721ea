//! Shared by the sans-IO call tests: moving bytes between clients and the gateway.

use std::collections::BTreeMap;

use lowband_core::client::{Client, Transmit};
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
