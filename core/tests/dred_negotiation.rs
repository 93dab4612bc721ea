//! Deep redundancy (DRED) is an experimental libopus extension: a client puts
//! it in its uplink only after the gateway said it runs the same libopus.

mod common;

use lowband_core::client::{Client, ClientConfig, Transmit};
use lowband_core::codec::{libopus_version, Dred};
use lowband_core::gateway::{Gateway, GatewayConfig, Output};
use lowband_core::profile::Profile;
use lowband_core::wire::control::{encode_frame, FrameReader, PROTOCOL_VERSION};
use lowband_core::wire::{AudioPacket, ClientMsg, ReceiverReport, ServerMsg};

use lowband_core::Time;
use common::voice;

/// Share of a client's 3g uplink packets that carry DRED, after the gateway
/// announced `gateway_libopus`.
fn dred_share(gateway_libopus: &str) -> f64 {
    let mut client = Client::new(ClientConfig::new("Clinic 7", "echo").fixed(Profile::named("3g").unwrap())).unwrap();
    for msg in [
        ServerMsg::Welcome { version: PROTOCOL_VERSION, gateway: "test".into() },
        ServerMsg::Codec { libopus: gateway_libopus.into() },
        ServerMsg::Joined { room: "echo".into(), you: 1, roster: vec![] },
        // libopus gives DRED bits only when loss is expected: report 12 % scattered
        // (bursts would switch 3g to 120 ms packets with spaced copies, tests/bursts.rs).
        ServerMsg::Report(ReceiverReport { interval_ms: 1000, expected: 17, lost: 2, max_burst: 1, ..ReceiverReport::default() }),
    ] {
        client.handle_control(&encode_frame(&msg)).unwrap();
    }
    let mut dred = Dred::new().unwrap();
    let (mut packets, mut with_dred) = (0, 0);
    for n in 0..150 {
        client.push_capture(&voice(n)).unwrap();
        while let Some(t) = client.poll_transmit() {
            if let Transmit::Datagram(d) = t {
                let p = AudioPacket::decode(&d).unwrap();
                packets += 1;
                with_dred += usize::from(dred.parse(p.primary) > 0);
            }
        }
    }
    assert!(packets > 40, "only {packets} packets in 3 s");
    with_dred as f64 / packets as f64
}

#[test]
fn a_client_sends_dred_only_to_a_gateway_with_the_same_libopus() {
    let same = dred_share(libopus_version());
    let other = dred_share("libopus 0.9-other");
    assert!(same > 0.8, "{same:.2} of packets carried DRED with the same libopus");
    assert_eq!(other, 0.0, "DRED sent to a different libopus");
}

#[test]
fn the_gateway_announces_its_libopus_and_accepts_the_client_s() {
    let mut gw = Gateway::new(GatewayConfig::default());
    gw.handle_connect(1);
    for msg in [
        ClientMsg::Hello { version: PROTOCOL_VERSION, name: "Clinic 7".into(), token: None },
        ClientMsg::Codec { libopus: libopus_version().into() },
        ClientMsg::Join { room: "echo".into() },
    ] {
        gw.handle_control(Time::ZERO, 1, &encode_frame(&msg));
    }
    let mut reader = FrameReader::default();
    let mut said = vec![];
    while let Some(out) = gw.poll_output() {
        if let Output::Control { data, .. } = out {
            reader.push(&data);
            while let Some(m) = reader.next::<ServerMsg>().unwrap() {
                said.push(m);
            }
        }
    }
    assert!(said.contains(&ServerMsg::Codec { libopus: libopus_version().into() }), "{said:?}");
    assert!(said.iter().any(|m| matches!(m, ServerMsg::Joined { .. })), "{said:?}");
}
