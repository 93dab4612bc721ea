//! A running call's state for a user interface: roster, speakers, and link
//! figures over the last two seconds, published by the call driver twice a
//! second through a `watch` channel (the UI reads the latest, never queues).

use std::collections::VecDeque;
use std::time::Duration;

use lowband_core::client::{Client, LinkStatus};
use lowband_core::codec::CHUNK;
use lowband_core::wire::RosterEntry;
use lowband_quic::WireBytes;
use tokio::sync::watch;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallStatus {
    pub you: Option<u32>,
    pub roster: Vec<RosterEntry>,
    /// Who the gateway hears speaking.
    pub talkers: Vec<u32>,
    pub muted: bool,
    pub locked: bool,
    pub seconds: f64,
    pub rtt_ms: f64,
    /// On the wire (IP + UDP + QUIC + payload).
    pub up_kbps: f64,
    pub down_kbps: f64,
    /// QUIC packets we sent that were declared lost.
    pub loss_up_pct: f64,
    /// Share of played audio that was concealed (lost or late downlink packets).
    pub concealed_pct: f64,
    /// The core's judgement of the link: quality, uplink profile, receive-only.
    pub link: LinkStatus,
    /// Between a lost connection and the gateway taking us back.
    pub reconnecting: bool,
}

#[derive(Clone, Copy)]
struct Sample {
    t: Duration,
    wire: WireBytes,
    sent_packets: u64,
    lost_packets: u64,
    concealed: u64,
    played: u64,
}

/// Publishes [`CallStatus`] from the call driver's tick.
pub struct StatusFeed {
    tx: watch::Sender<CallStatus>,
    window: VecDeque<Sample>,
    next: Duration,
}

const EVERY: Duration = Duration::from_millis(500);
const WINDOW: usize = 5;

impl StatusFeed {
    pub fn new(tx: watch::Sender<CallStatus>) -> Self {
        StatusFeed { tx, window: VecDeque::new(), next: Duration::ZERO }
    }

    /// `conn` is `None` while the call is reconnecting.
    pub fn tick(&mut self, t: Duration, client: &Client, conn: Option<&quinn::Connection>) {
        if t < self.next {
            return;
        }
        self.next = t + EVERY;
        let Some(conn) = conn else {
            // No path: the figures of the last one would mislead.
            self.window.clear();
            let _ = self.tx.send(CallStatus { seconds: t.as_secs_f64(), link: client.link().clone(), reconnecting: true, ..self.base(client) });
            return;
        };
        let qs = conn.stats();
        let s = client.stats();
        let now = Sample {
            t,
            wire: WireBytes::of(&qs),
            sent_packets: qs.path.sent_packets,
            lost_packets: qs.path.lost_packets,
            concealed: s.receive.jitter.concealed_samples,
            played: s.chunks_played * CHUNK as u64,
        };
        self.window.push_back(now);
        if self.window.len() > WINDOW {
            self.window.pop_front();
        }
        let first = self.window[0];
        let secs = (now.t - first.t).as_secs_f64();
        let kbps = |a: u64, b: u64| if secs > 0.0 { (b - a) as f64 * 8.0 / secs / 1000.0 } else { 0.0 };
        let pct = |num: u64, den: u64| if den > 0 { 100.0 * num as f64 / den as f64 } else { 0.0 };
        let status = CallStatus {
            seconds: t.as_secs_f64(),
            rtt_ms: conn.rtt().as_secs_f64() * 1000.0,
            up_kbps: kbps(first.wire.sent, now.wire.sent),
            down_kbps: kbps(first.wire.received, now.wire.received),
            loss_up_pct: pct(now.lost_packets - first.lost_packets, now.sent_packets - first.sent_packets),
            concealed_pct: pct(now.concealed.saturating_sub(first.concealed), now.played - first.played),
            link: client.link().clone(),
            reconnecting: false,
            ..self.base(client)
        };
        let _ = self.tx.send(status);
    }

    /// What the client engine knows without a path: the room and our state.
    fn base(&self, client: &Client) -> CallStatus {
        CallStatus {
            you: client.you(),
            roster: client.roster().cloned().collect(),
            talkers: client.talkers().to_vec(),
            muted: client.is_muted(),
            locked: client.is_locked(),
            ..CallStatus::default()
        }
    }
}
