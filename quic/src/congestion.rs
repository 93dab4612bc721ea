//! Congestion control for a small, constant-rate audio flow.
//!
//! quinn's Cubic halves its window on loss and, while the sender is
//! app-limited (always, for audio), never grows it back; at 1 s RTT and
//! 10-20 % loss less than one packet may be in flight and audio queues for
//! seconds (FACTS.md). Audio is tiny next to the link, so its window gets a
//! floor sized to carry the media rate over one RTT with headroom. Reacting
//! to a link that cannot carry even that is the job of rate adaptation and
//! its circuit breaker, which act on the audio itself.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::congestion::{Controller, ControllerFactory, ControllerMetrics, CubicConfig};
use quinn_proto::RttEstimator;

/// Builds [`MediaFloor`] controllers.
#[derive(Debug, Clone)]
pub struct MediaFloorConfig {
    /// The most the media flow sends, in bytes per second on the wire.
    pub media_bytes_per_sec: u64,
}

impl MediaFloorConfig {
    pub fn new(media_bits_per_sec: u64) -> Self {
        MediaFloorConfig { media_bytes_per_sec: media_bits_per_sec / 8 }
    }
}

impl ControllerFactory for MediaFloorConfig {
    fn build(self: Arc<Self>, now: Instant, current_mtu: u16) -> Box<dyn Controller> {
        Box::new(MediaFloor {
            inner: Arc::new(CubicConfig::default()).build(now, current_mtu),
            media_bytes_per_sec: self.media_bytes_per_sec,
            srtt: None,
            mtu: u64::from(current_mtu),
            last_ack: now,
            unacked: 0,
            stale: false,
        })
    }
}

/// Cubic, whose window never falls below what the media rate needs.
pub struct MediaFloor {
    inner: Box<dyn Controller>,
    media_bytes_per_sec: u64,
    srtt: Option<Duration>,
    mtu: u64,
    last_ack: Instant,
    /// Bytes sent since the last ACK arrived.
    unacked: u64,
    /// No ACK for [`MediaFloor::stale_after`]: what is in flight is presumed lost.
    stale: bool,
}

/// Most of a dead path's in-flight bytes that stop counting against the window.
const MAX_WRITTEN_OFF: u64 = 64 * 1024;

/// Before any RTT sample, assume a slow cellular path.
const ASSUMED_RTT: Duration = Duration::from_millis(600);
/// Room for ACK delay (ACK frequency asks for up to 100 ms) and jitter.
const SLACK: Duration = Duration::from_millis(200);

impl MediaFloor {
    /// Bytes in flight the media needs: rate × (RTT + slack), twice over.
    pub fn floor(&self) -> u64 {
        let span = self.srtt.unwrap_or(ASSUMED_RTT) + SLACK;
        let need = (self.media_bytes_per_sec as f64 * span.as_secs_f64() * 2.0) as u64;
        need.max(2 * self.mtu)
    }

    /// After an outage nothing in flight gets ACKed until the next PTO probe,
    /// seconds later at 1 s RTT with backoff; until then the window is full and
    /// audio cannot go out even though the link is back. So a path silent for
    /// this long stops counting what it swallowed: audio keeps flowing at its
    /// own small rate and reaches the peer the moment the link returns.
    fn stale_after(&self) -> Duration {
        (self.srtt.unwrap_or(ASSUMED_RTT) * 2 + SLACK).max(Duration::from_secs(1))
    }
}

impl Controller for MediaFloor {
    fn on_sent(&mut self, now: Instant, bytes: u64, last_packet_number: u64) {
        self.unacked = self.unacked.saturating_add(bytes);
        self.stale = now.saturating_duration_since(self.last_ack) >= self.stale_after();
        self.inner.on_sent(now, bytes, last_packet_number);
    }

    fn on_ack(&mut self, now: Instant, sent: Instant, bytes: u64, app_limited: bool, rtt: &RttEstimator) {
        self.srtt = Some(rtt.get());
        self.last_ack = now;
        self.unacked = 0;
        self.stale = false;
        self.inner.on_ack(now, sent, bytes, app_limited, rtt);
    }

    fn on_end_acks(&mut self, now: Instant, in_flight: u64, app_limited: bool, largest_packet_num_acked: Option<u64>) {
        self.inner.on_end_acks(now, in_flight, app_limited, largest_packet_num_acked);
    }

    fn on_congestion_event(&mut self, now: Instant, sent: Instant, is_persistent_congestion: bool, lost_bytes: u64) {
        self.inner.on_congestion_event(now, sent, is_persistent_congestion, lost_bytes);
    }

    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.mtu = u64::from(new_mtu);
        self.inner.on_mtu_update(new_mtu);
    }

    fn window(&self) -> u64 {
        let written_off = if self.stale { self.unacked.min(MAX_WRITTEN_OFF) } else { 0 };
        self.inner.window().max(self.floor()) + written_off
    }

    fn metrics(&self) -> ControllerMetrics {
        let mut m = self.inner.metrics();
        m.congestion_window = self.window();
        m
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(MediaFloor {
            inner: self.inner.clone_box(),
            media_bytes_per_sec: self.media_bytes_per_sec,
            srtt: self.srtt,
            mtu: self.mtu,
            last_ack: self.last_ack,
            unacked: self.unacked,
            stale: self.stale,
        })
    }

    fn initial_window(&self) -> u64 {
        self.inner.initial_window().max(self.floor())
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_never_push_the_window_below_the_media_floor() {
        let now = Instant::now();
        let mut cc = Arc::new(MediaFloorConfig::new(40_000)).build(now, 1200);
        let floor = 5_000 * (ASSUMED_RTT + SLACK).as_millis() as u64 * 2 / 1000;
        // Each loss is of a packet sent after the last reduction, so each counts.
        let t = |i: u64| now + Duration::from_millis(i * 10);
        for i in 0..50 {
            cc.on_congestion_event(t(i), t(i), i % 10 == 9, 1200);
        }
        assert!(cc.window() >= floor, "window {} below floor {floor}", cc.window());
        // Without the floor, Cubic collapses to its minimum of two packets.
        let mut cubic = Arc::new(CubicConfig::default()).build(now, 1200);
        for i in 0..50 {
            cubic.on_congestion_event(t(i), t(i), i % 10 == 9, 1200);
        }
        assert!(cubic.window() < floor, "cubic kept {}", cubic.window());
    }

    #[test]
    fn a_path_silent_for_seconds_stops_counting_what_it_swallowed() {
        let now = Instant::now();
        let mut cc = Arc::new(MediaFloorConfig::new(40_000)).build(now, 1200);
        let base = cc.window();
        // Audio keeps being sent into an outage: 100 bytes every 40 ms, no ACKs.
        for i in 0..100u64 {
            cc.on_sent(now + Duration::from_millis(i * 40), 100, i);
        }
        assert!(cc.window() >= base + 9_000, "window {} with 10 kB unacked", cc.window());
    }

    #[test]
    fn a_path_that_acks_keeps_the_plain_window() {
        let now = Instant::now();
        let mut cc = Arc::new(MediaFloorConfig::new(40_000)).build(now, 1200);
        let base = cc.window();
        for i in 0..20u64 {
            cc.on_sent(now + Duration::from_millis(i * 40), 100, i);
        }
        assert_eq!(cc.window(), base, "written off before the path went silent long enough");
    }
}
