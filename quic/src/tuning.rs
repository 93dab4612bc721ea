use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::{AckFrequencyConfig, ConnectionStats, EndpointConfig, IdleTimeout, TransportConfig, VarInt};

/// ALPN of lowband's protocol v1.
pub const ALPN: &[u8] = b"lowband/1";
/// IPv4 (20) + UDP (8) header bytes around every QUIC packet.
pub const IPV4_UDP_OVERHEAD: u64 = 28;

/// quinn's transport settings for audio over cellular links. Both ends use it.
pub fn transport_config() -> TransportConfig {
    let mut t = TransportConfig::default();
    // DATAGRAM sends drop the oldest when the queue is full. The 1 MiB default
    // is seconds of stale audio; 4 KiB is ~400 ms at 16 kbit/s with headers.
    t.datagram_send_buffer_size(4 * 1024);
    // Received datagrams wait here only until the IO task reads them.
    t.datagram_receive_buffer_size(Some(64 * 1024));
    // By default a pure listener ACKs every 2nd packet: 8-12 kbit/s of ACKs
    // upstream. Ask the peer to ACK every 4th ack-eliciting packet or 100 ms.
    let mut ack = AckFrequencyConfig::default();
    ack.ack_eliciting_threshold(VarInt::from_u32(4)).max_ack_delay(Some(Duration::from_millis(100)));
    t.ack_frequency_config(Some(ack));
    // Our packets are ~100-200 bytes: MTU probes only cost bytes.
    t.mtu_discovery_config(None);
    // Cellular RTTs are 300-1000 ms; quinn's 333 ms default makes the first
    // handshake retransmit spuriously on 2G.
    t.initial_rtt(Duration::from_millis(600));
    // Silence (DTX) can leave a connection idle; keep NAT bindings warm.
    t.keep_alive_interval(Some(Duration::from_secs(10)));
    // Must outlast 3G↔2G handover outages (up to ~10 s, sometimes more).
    t.max_idle_timeout(Some(IdleTimeout::from(VarInt::from_u32(30_000))));
    // Cubic with a window floor sized to the largest profile's wire rate
    // (~40 kbit/s): audio never queues behind a collapsed window.
    // LOWBAND_CONGESTION=cubic selects quinn's plain Cubic, for comparisons.
    if std::env::var("LOWBAND_CONGESTION").is_ok_and(|v| v == "cubic") {
        t.congestion_controller_factory(Arc::new(quinn::congestion::CubicConfig::default()));
    } else {
        t.congestion_controller_factory(Arc::new(crate::MediaFloorConfig::new(48_000)));
    }
    // One control stream per connection; nothing else is ever opened.
    t.max_concurrent_bidi_streams(VarInt::from_u32(1));
    t.max_concurrent_uni_streams(VarInt::from_u32(0));
    t
}

/// Length of the gateway's connection ids. Every uplink packet carries one:
/// 4 bytes instead of quinn's 8 save 4 bytes a packet (0.27 kbit/s at 120 ms
/// packets) and, unlike zero-length ids, still let clients migrate on a
/// handover. 2^32 ids; quinn draws again on a collision.
pub const GATEWAY_CID_LEN: usize = 4;

/// The gateway's endpoint on `bind`, with [`GATEWAY_CID_LEN`]-byte connection ids.
pub fn server_endpoint(server: quinn::ServerConfig, bind: SocketAddr) -> std::io::Result<quinn::Endpoint> {
    let mut config = EndpointConfig::default();
    config.cid_generator(|| Box::new(quinn_proto::RandomConnectionIdGenerator::new(GATEWAY_CID_LEN)));
    let socket = std::net::UdpSocket::bind(bind)?;
    let runtime = quinn::default_runtime().ok_or_else(|| std::io::Error::other("no async runtime"))?;
    quinn::Endpoint::new(config, Some(server), socket, runtime)
}

/// A client endpoint on `bind`, with zero-length connection ids: saves 8 bytes on
/// every downlink packet and still allows the client to migrate.
pub fn client_endpoint(bind: SocketAddr) -> std::io::Result<quinn::Endpoint> {
    let mut config = EndpointConfig::default();
    config.cid_generator(|| Box::new(quinn_proto::RandomConnectionIdGenerator::new(0)));
    let socket = std::net::UdpSocket::bind(bind)?;
    let runtime = quinn::default_runtime().ok_or_else(|| std::io::Error::other("no async runtime"))?;
    quinn::Endpoint::new(config, None, socket, runtime)
}

/// Bytes as IPv4 packets, per direction, from one connection's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireBytes {
    pub sent: u64,
    pub received: u64,
    pub packets_sent: u64,
    pub packets_received: u64,
}

impl WireBytes {
    pub fn plus(self, o: WireBytes) -> WireBytes {
        WireBytes {
            sent: self.sent + o.sent,
            received: self.received + o.received,
            packets_sent: self.packets_sent + o.packets_sent,
            packets_received: self.packets_received + o.packets_received,
        }
    }

    pub fn of(stats: &ConnectionStats) -> Self {
        WireBytes {
            sent: stats.udp_tx.bytes + IPV4_UDP_OVERHEAD * stats.udp_tx.datagrams,
            received: stats.udp_rx.bytes + IPV4_UDP_OVERHEAD * stats.udp_rx.datagrams,
            packets_sent: stats.udp_tx.datagrams,
            packets_received: stats.udp_rx.datagrams,
        }
    }
}

/// QUIC's view of a connection's path, as the core's adapters take it.
pub fn path_stats(conn: &quinn::Connection) -> lowband_core::feedback::PathStats {
    let s = conn.stats();
    lowband_core::feedback::PathStats { rtt: conn.rtt(), cwnd: s.path.cwnd, sent_packets: s.path.sent_packets, lost_packets: s.path.lost_packets }
}

/// Shared by both shells so they build identical configs.
pub fn shared_transport() -> Arc<TransportConfig> {
    Arc::new(transport_config())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profiles_wire_overhead_counts_the_gateways_connection_id_length() {
        // IPv4 + UDP, flags, gateway CID, 2-byte packet number, DATAGRAM type + 2-byte length, AEAD tag.
        assert_eq!(lowband_core::profile::WIRE_OVERHEAD_BYTES, 28 + 1 + GATEWAY_CID_LEN + 2 + 3 + 16);
    }
}
