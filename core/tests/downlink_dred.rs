//! The gateway's shared encode of a tier carries DRED only while its
//! listeners report loss and every one of them runs the gateway's libopus.

mod common;

use lowband_core::codec::{libopus_version, Dred};
use lowband_core::gateway::{ConnId, Gateway, GatewayConfig, Output};
use lowband_core::profile::Profile;
use lowband_core::stream::SendStream;
use lowband_core::wire::control::{encode_frame, PROTOCOL_VERSION};
use lowband_core::wire::{AudioPacket, ClientMsg, ReceiverReport};

use lowband_core::Time;
use common::voice;

/// One talker (conn 1) and listeners running `libopus` each, reporting
/// `lost` of 17 packets; returns the share of each listener's packets with DRED.
fn dred_shares(listeners: &[(&str, u16)]) -> Vec<f64> {
    let mut gw = Gateway::new(GatewayConfig { adapt_downlink: false, ..GatewayConfig::default() });
    let join = |gw: &mut Gateway, conn: ConnId, libopus: &str| {
        gw.handle_connect(conn);
        for msg in [
            ClientMsg::Hello { version: PROTOCOL_VERSION, name: format!("p{conn}"), token: None },
            ClientMsg::Codec { libopus: libopus.into() },
            ClientMsg::Join { room: "r".into() },
        ] {
            gw.handle_control(Time::ZERO, conn, &encode_frame(&msg));
        }
    };
    join(&mut gw, 1, libopus_version());
    for (i, (libopus, _)) in listeners.iter().enumerate() {
        join(&mut gw, i as ConnId + 2, libopus);
    }
    let mut talker = SendStream::new(Profile::named("3g").unwrap(), None, true).unwrap();
    let mut dred = Dred::new().unwrap();
    let mut counts = vec![(0usize, 0usize); listeners.len()];
    for n in 0..200usize {
        let now = Time::from_millis(n as u64 * 20);
        if n % 50 == 1 {
            for (i, (_, lost)) in listeners.iter().enumerate() {
                let r = ReceiverReport { interval_ms: 1000, expected: 17, lost: *lost, max_burst: (*lost).min(1), ..ReceiverReport::default() };
                gw.handle_control(now, i as ConnId + 2, &encode_frame(&ClientMsg::Report(r)));
            }
        }
        if let Some(d) = talker.push_chunk(&voice(n)).unwrap() {
            gw.handle_datagram(now, 1, &d);
        }
        gw.handle_timeout(now);
        while let Some(out) = gw.poll_output() {
            if let Output::Datagram { conn, data } = out {
                if conn >= 2 && n > 60 {
                    let p = AudioPacket::decode(&data).unwrap();
                    let c = &mut counts[conn as usize - 2];
                    c.0 += 1;
                    c.1 += usize::from(dred.parse(p.primary) > 0);
                }
            }
        }
    }
    counts
        .iter()
        .map(|&(packets, with)| {
            assert!(packets > 20, "only {packets} packets reached a listener");
            with as f64 / packets as f64
        })
        .collect()
}

#[test]
fn a_lossy_listener_with_the_same_libopus_hears_a_mix_with_dred() {
    let shares = dred_shares(&[(libopus_version(), 3)]);
    assert!(shares[0] > 0.5, "{shares:?}");
}

#[test]
fn a_clean_listener_hears_no_dred() {
    assert_eq!(dred_shares(&[(libopus_version(), 0)]), vec![0.0]);
}

#[test]
fn one_listener_with_another_libopus_keeps_dred_off_the_whole_tier() {
    assert_eq!(dred_shares(&[(libopus_version(), 3), ("libopus 0.9-other", 3)]), vec![0.0, 0.0]);
}
