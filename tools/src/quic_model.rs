//! QUIC as `sim` models it: what quinn, tuned as `quic/src/tuning.rs` tunes
//! it, does to audio datagrams on a thin link. Measured against `netem`
//! with the real binaries, these are what decide loss when a trace stalls:
//!
//! - a congestion window (Cubic, never below lowband's media floor): while
//!   a stall keeps ACKs away, the sender stops putting packets on the link;
//! - the 4 KiB datagram send buffer, dropping the oldest when full;
//! - coalescing: datagrams that waited go out together in one packet, so a
//!   queue bounded in packets holds several of them per slot;
//! - ACKs every 4th ack-eliciting packet or after 100 ms (ACK frequency),
//!   riding in a packet going the other way or in a packet of their own;
//! - probe timeouts, which restart sending after a stall;
//! - lowband's write-off (quic/src/congestion.rs): once no ACK has come for
//!   max(2 × RTT + 200 ms, 1 s), the next packet sent (a probe, in a stall)
//!   makes what went out since the last ACK stop counting against the
//!   window, so audio keeps flowing into a stalled link at its own rate;
//! - persistent congestion (RFC 9002 §7.6): Cubic drops to its minimum;
//! - the control stream: its frames share packets, window and link with
//!   the audio (so reports are RTT samples while a client is silent), are
//!   never dropped, and go again when their packet is declared lost.
//!
//! Left out: pacing, retransmission (datagrams are never retransmitted),
//! Cubic's growth (audio is application-limited, so it does not grow).

use std::collections::VecDeque;
use std::time::Duration;

use lowband_core::feedback::PathStats;
use lowband_core::link::{Link, LinkConfig};
use lowband_core::Time;

/// IPv4 + UDP + QUIC short header + AEAD tag around the frames of one packet
/// from a client (the gateway's 4-byte connection id) and from the gateway
/// (clients use zero-length ids).
pub const PACKET_UP: usize = 28 + 1 + lowband_quic::GATEWAY_CID_LEN + 1 + 16;
pub const PACKET_DOWN: usize = 28 + 1 + 1 + 16;
/// DATAGRAM frame type and length.
pub const DATAGRAM_FRAME: usize = 2;
/// STREAM frame type, stream id, offset and length.
pub const STREAM_FRAME: usize = 5;
/// An ACK frame (with ACK-frequency's few ranges).
pub const ACK_FRAME: usize = 6;
const IP_UDP: usize = 28;
/// quinn's MTU (UDP payload) with path-MTU discovery off.
const MTU: usize = 1200;
/// quinn's `datagram_send_buffer_size` in quic/src/tuning.rs.
const SEND_BUFFER: usize = 4 * 1024;
/// Cubic's initial window (RFC 9002) and its minimum of two packets.
const INITIAL_WINDOW: usize = 14_720;
const MIN_WINDOW: usize = 2 * MTU;
/// quic/src/congestion.rs: most of a silent path's bytes written off.
const MAX_WRITTEN_OFF: usize = 64 * 1024;
/// quic/src/tuning.rs: the media floor is sized to 48 kbit/s.
const MEDIA_BYTES_PER_SEC: f64 = 48_000.0 / 8.0;
/// quic/src/congestion.rs: RTT slack added to the floor's span.
const FLOOR_SLACK: Duration = Duration::from_millis(200);
const INITIAL_RTT: Duration = Duration::from_millis(600);
const ACK_THRESHOLD: u32 = 4;
/// quinn's ACK-frequency reordering threshold (its default): a packet
/// arriving this far past the largest seen means a gap, ACKed at once.
const REORDER_THRESHOLD: u64 = 2;
pub const MAX_ACK_DELAY: Duration = Duration::from_millis(100);

/// What an ACK tells its receiver: the newest packet it acknowledges (by
/// send time) and how long the acknowledging end held the ACK back.
#[derive(Debug, Clone, Copy)]
pub struct Ack {
    pub largest_sent: Time,
    pub delay: Duration,
}

/// The ACKs one end owes for the ack-eliciting packets it received.
#[derive(Debug, Default)]
pub struct AckState {
    pending: u32,
    first_at: Option<Time>,
    largest: Option<(Time, Time)>,
    /// Largest packet number received, kept across ACKs.
    largest_pn: Option<u64>,
    immediate: bool,
}

impl AckState {
    /// Any packet `pn` arrived (ACK-only ones elicit nothing but count for gaps).
    pub fn saw(&mut self, pn: u64) {
        self.largest_pn = Some(self.largest_pn.map_or(pn, |l| l.max(pn)));
    }

    /// An ack-eliciting packet `pn` sent at `sent` arrived.
    pub fn on_receive(&mut self, now: Time, sent: Time, pn: u64) {
        if self.largest_pn.is_some_and(|l| pn > l + REORDER_THRESHOLD) {
            self.immediate = true;
        }
        self.saw(pn);
        self.pending += 1;
        self.first_at.get_or_insert(now);
        if self.largest.is_none_or(|(s, _)| sent >= s) {
            self.largest = Some((sent, now));
        }
    }

    /// When an ACK-only packet must go if nothing carries the ACK first.
    pub fn deadline(&self) -> Option<Time> {
        self.first_at.map(|t| t + MAX_ACK_DELAY)
    }

    pub fn due(&self, now: Time) -> bool {
        self.immediate || self.pending >= ACK_THRESHOLD || self.deadline().is_some_and(|t| t <= now)
    }

    pub fn take(&mut self, now: Time) -> Option<Ack> {
        let (largest_sent, arrived) = self.largest?;
        *self = AckState { largest_pn: self.largest_pn, ..AckState::default() };
        Some(Ack { largest_sent, delay: now - arrived })
    }
}

/// An Initial (padded to 1200 bytes) and the server's reply, on IPv4.
const HANDSHAKE_PACKET: usize = MTU + IP_UDP;

/// When a client whose links start at zero finishes the QUIC handshake: its
/// Initial crosses `up`, the server's flight crosses `down` (one RTT; quinn's
/// client may send application data then). A lost flight is sent again
/// after twice the initial RTT, doubling. Uses copies of the links with the
/// same seeds, so the call's own links are untouched.
pub fn handshake_done(up: &LinkConfig, down: &LinkConfig, seeds: (u64, u64)) -> Time {
    let mut links = (Link::new(up.clone(), seeds.0), Link::new(down.clone(), seeds.1));
    links.0.start(Time::ZERO);
    links.1.start(Time::ZERO);
    let mut now = Time::ZERO;
    for dir in 0..2 {
        let link = if dir == 0 { &mut links.0 } else { &mut links.1 };
        let mut backoff = INITIAL_RTT * 2;
        loop {
            link.push(now, (), HANDSHAKE_PACKET);
            let retry = now + backoff;
            let arrived = loop {
                match link.poll_timeout() {
                    Some(t) if t < retry => {
                        if link.poll_deliver(t).is_some() {
                            break Some(t);
                        }
                    }
                    _ => break None,
                }
            };
            match arrived {
                Some(t) => {
                    now = t;
                    break;
                }
                None => {
                    now = retry;
                    backoff *= 2;
                }
            }
            if now > Time::from_micros(120_000_000) {
                break;
            }
        }
    }
    now
}

struct Flight {
    sent: Time,
    bytes: usize,
    lost: bool,
    /// Control frames it carried, sent again if it is declared lost.
    control: Vec<Control>,
}

/// A control-stream frame and its place in the stream.
pub type Control = (u64, Vec<u8>);

/// One end's sending side of one connection.
pub struct Sender {
    /// Bytes around the frames of each packet ([`PACKET_UP`] or [`PACKET_DOWN`]).
    overhead: usize,
    /// Datagrams waiting for the window, with when they were handed to quinn.
    buffer: VecDeque<(Vec<u8>, Time)>,
    buffered: usize,
    /// Control-stream frames waiting (in stream order), and the next frame's index.
    control: VecDeque<Control>,
    next_control: u64,
    flight: VecDeque<Flight>,
    in_flight: usize,
    srtt: Option<(Duration, Duration)>,
    /// Cubic's window: cut by 0.7 per congestion event (one per recovery
    /// period), never grown (audio is application-limited).
    cubic: usize,
    recovery_start: Option<Time>,
    last_eliciting: Time,
    /// Last ACK (or the first send), bytes sent since, and whether they are written off.
    last_ack: Option<Time>,
    unacked: usize,
    stale: bool,
    pto_count: u32,
    next_pn: u64,
    /// Datagrams dropped from the full send buffer.
    pub dropped: u64,
    /// Packets sent, and declared lost (once an ACK settles them).
    sent_packets: u64,
    lost_packets: u64,
}

/// A packet ready for the link: datagrams (with when each was queued) and its size on the wire.
pub struct Packet {
    pub datagrams: Vec<(Vec<u8>, Time)>,
    pub control: Vec<Control>,
    pub size: usize,
}

impl Sender {
    pub fn new(overhead: usize) -> Self {
        Sender {
            overhead,
            buffer: VecDeque::new(),
            buffered: 0,
            control: VecDeque::new(),
            next_control: 0,
            flight: VecDeque::new(),
            in_flight: 0,
            srtt: None,
            cubic: INITIAL_WINDOW,
            recovery_start: None,
            last_eliciting: Time::ZERO,
            last_ack: None,
            unacked: 0,
            stale: false,
            pto_count: 0,
            next_pn: 0,
            dropped: 0,
            sent_packets: 0,
            lost_packets: 0,
        }
    }

    /// The packet number of the next packet this end sends (ACK-only ones too).
    pub fn take_pn(&mut self) -> u64 {
        self.next_pn += 1;
        self.next_pn - 1
    }

    /// The handshake's round trip: quinn's first RTT sample, before any ACK of audio.
    pub fn seed_rtt(&mut self, rtt: Duration) {
        self.srtt.get_or_insert((rtt, rtt / 2));
    }

    /// What `lowband_quic::path_stats` reads from quinn: the adapters' path signal.
    pub fn path(&self) -> PathStats {
        PathStats { rtt: self.srtt(), cwnd: self.window() as u64, sent_packets: self.sent_packets, lost_packets: self.lost_packets }
    }

    /// quinn's smoothed RTT (the initial 600 ms before any sample).
    pub fn srtt(&self) -> Duration {
        self.srtt.map_or(INITIAL_RTT, |s| s.0)
    }

    /// Cubic's window with lowband's floor: rate × (RTT + slack) × 2, plus
    /// what a silent path swallowed once it is written off.
    pub fn window(&self) -> usize {
        let floor = (MEDIA_BYTES_PER_SEC * (self.srtt() + FLOOR_SLACK).as_secs_f64() * 2.0) as usize;
        let written_off = if self.stale { self.unacked.min(MAX_WRITTEN_OFF) } else { 0 };
        self.cubic.max(floor).max(MIN_WINDOW) + written_off
    }

    /// quic/src/congestion.rs `stale_after`.
    fn stale_after(&self) -> Duration {
        (self.srtt() * 2 + FLOOR_SLACK).max(Duration::from_secs(1))
    }

    /// quinn's `send_datagram`: queue, dropping the oldest when the buffer is full.
    /// Returns how many datagrams were dropped.
    pub fn queue(&mut self, now: Time, datagram: Vec<u8>) -> u64 {
        let mut dropped = 0;
        while self.buffered + datagram.len() > SEND_BUFFER {
            let Some((d, _)) = self.buffer.pop_front() else { break };
            self.buffered -= d.len();
            dropped += 1;
        }
        self.buffered += datagram.len();
        self.buffer.push_back((datagram, now));
        self.dropped += dropped;
        dropped
    }

    /// A control-stream write: reliable, so it waits for the window, never dropped.
    pub fn queue_control(&mut self, data: Vec<u8>) {
        self.control.push_back((self.next_control, data));
        self.next_control += 1;
    }

    fn pto(&self) -> Duration {
        self.pto_base() * 2u32.pow(self.pto_count.min(6))
    }

    fn pto_base(&self) -> Duration {
        let (srtt, var) = self.srtt.unwrap_or((INITIAL_RTT, INITIAL_RTT / 2));
        srtt + (var * 4).max(Duration::from_millis(1)) + MAX_ACK_DELAY
    }

    /// When a probe timeout fires: packets are in flight and nothing was acknowledged.
    pub fn timeout(&self) -> Option<Time> {
        (!self.flight.is_empty()).then(|| self.last_eliciting + self.pto())
    }

    /// The next packet quinn would put on the wire now, if any: as many
    /// waiting datagrams as fit one MTU, when the window has room, or a probe
    /// (waiting datagrams or a PING) when the probe timer has fired.
    pub fn poll_packet(&mut self, now: Time) -> Option<Packet> {
        let probe = self.timeout().is_some_and(|t| t <= now);
        if self.buffer.is_empty() && self.control.is_empty() && !probe {
            return None;
        }
        let mut size = self.overhead;
        let mut control = Vec::new();
        while let Some((_, c)) = self.control.front() {
            let add = c.len() + STREAM_FRAME;
            if !control.is_empty() && size + add > MTU + IP_UDP {
                break;
            }
            if !probe && self.in_flight + size + add - IP_UDP > self.window() {
                break;
            }
            size += add;
            control.push(self.control.pop_front().expect("front exists"));
        }
        let mut datagrams = Vec::new();
        while let Some((d, _)) = self.buffer.front() {
            let add = d.len() + DATAGRAM_FRAME;
            if (!datagrams.is_empty() || !control.is_empty()) && size + add > MTU + IP_UDP {
                break;
            }
            // quinn counts UDP payload bytes against the window, not IP/UDP headers.
            if !probe && self.in_flight + size + add - IP_UDP > self.window() {
                break;
            }
            size += add;
            let (d, at) = self.buffer.pop_front().expect("front exists");
            self.buffered -= d.len();
            datagrams.push((d, at));
        }
        if datagrams.is_empty() && control.is_empty() {
            if !probe {
                return None;
            }
            size += 1; // PING
        }
        if probe {
            self.pto_count += 1;
        }
        Some(Packet { datagrams, control, size })
    }

    /// The packet went on the link (`lost`: the link will never deliver it).
    pub fn on_sent(&mut self, now: Time, size: usize, lost: bool, control: Vec<Control>) {
        let bytes = size.saturating_sub(IP_UDP);
        self.flight.push_back(Flight { sent: now, bytes, lost, control });
        self.sent_packets += 1;
        self.in_flight += bytes;
        self.last_eliciting = now;
        // As MediaFloor::on_sent: staleness is judged when something is sent.
        self.unacked += bytes;
        let last_ack = *self.last_ack.get_or_insert(now);
        self.stale = now.saturating_since(last_ack) >= self.stale_after();
    }

    /// An ACK arrived: everything sent up to the packet it acknowledges is
    /// settled (delivered, or declared lost as older than an acknowledged
    /// packet). Returns the RTT sample.
    pub fn on_ack(&mut self, now: Time, ack: Ack) -> Duration {
        // Persistent congestion: lost packets, none delivered between, spanning 3 PTOs.
        let persistent = self.srtt.map(|_| self.pto_base() * 3);
        let mut lost_run: Option<(Time, Time)> = None;
        let mut resend = Vec::new();
        while self.flight.front().is_some_and(|f| f.sent <= ack.largest_sent) {
            let f = self.flight.pop_front().expect("front exists");
            self.in_flight -= f.bytes;
            if f.lost {
                self.lost_packets += 1;
                resend.extend(f.control);
                let run = lost_run.get_or_insert((f.sent, f.sent));
                run.1 = f.sent;
                if persistent.is_some_and(|p| run.1 - run.0 >= p) {
                    self.cubic = MIN_WINDOW;
                }
                if self.recovery_start.is_none_or(|r| f.sent > r) {
                    self.cubic = (self.cubic * 7 / 10).max(MIN_WINDOW);
                    self.recovery_start = Some(now);
                }
            } else {
                lost_run = None;
            }
        }
        // Lost control frames go again first, in stream order.
        for c in resend.into_iter().rev() {
            self.control.push_front(c);
        }
        self.last_ack = Some(now);
        self.unacked = 0;
        self.stale = false;
        self.pto_count = 0;
        let rtt = (now - ack.largest_sent).saturating_sub(ack.delay);
        self.srtt = Some(match self.srtt {
            None => (rtt, rtt / 2),
            Some((s, v)) => {
                let dev = if s > rtt { s - rtt } else { rtt - s };
                ((s * 7 + rtt) / 8, (v * 3 + dev) / 4)
            }
        });
        rtt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stalled_window_holds_datagrams_back_and_sends_them_coalesced() {
        let mut s = Sender::new(PACKET_DOWN);
        let mut sent = 0;
        let mut t = Time::ZERO;
        // 1000-byte datagrams every 40 ms, never acknowledged: the window fills
        // before the path counts as silent (its bytes are then written off).
        for _ in 0..200 {
            s.queue(t, vec![0; 1000]);
            while let Some(p) = s.poll_packet(t) {
                assert_eq!(p.datagrams.len(), 1, "one datagram per packet while the window is open");
                s.on_sent(t, p.size, false, p.control);
                sent += 1;
            }
            if s.timeout().is_some_and(|to| to <= t + Duration::from_millis(40)) {
                break;
            }
            t = t + Duration::from_millis(40);
        }
        assert!(sent * (1000 + PACKET_DOWN + DATAGRAM_FRAME - IP_UDP) <= s.window() + 2000);
        assert!(sent < 30, "the window must close before the probe timer");
        // Small ones push the big ones out of the send buffer.
        for _ in 0..40 {
            s.queue(t, vec![0; 100]);
        }
        // An ACK for everything opens the window: the backlog leaves in MTU-sized packets.
        s.on_ack(t, Ack { largest_sent: t, delay: Duration::ZERO });
        let p = s.poll_packet(t).expect("window open");
        assert!(p.datagrams.len() > 5 && p.size <= MTU + 28, "{} datagrams, {} bytes", p.datagrams.len(), p.size);
    }

    #[test]
    fn a_silent_path_is_written_off_so_audio_keeps_flowing_into_a_stall() {
        let mut s = Sender::new(PACKET_UP);
        let mut t = Time::ZERO;
        let mut sent = 0;
        // 10 s of 100-byte datagrams every 40 ms and never an ACK: without the
        // write-off the window (~115 such packets) would stop the sender at 4.6 s.
        for _ in 0..250 {
            s.queue(t, vec![0; 100]);
            while let Some(p) = s.poll_packet(t) {
                s.on_sent(t, p.size, false, p.control);
                sent += p.datagrams.len();
            }
            t = t + Duration::from_millis(40);
        }
        assert_eq!(sent, 250, "every datagram went onto the link");
        s.on_ack(t, Ack { largest_sent: t, delay: Duration::ZERO });
        assert!(s.window() < 20_000, "an ACK ends the write-off");
    }

    #[test]
    fn the_handshake_waits_for_the_links_first_opportunities() {
        use lowband_core::link::mahimahi::MahimahiTrace;
        let up = LinkConfig::trace(MahimahiTrace::parse("600\n1000\n").unwrap(), Duration::from_millis(100));
        let down = LinkConfig::trace(MahimahiTrace::parse("50\n1000\n").unwrap(), Duration::from_millis(100));
        // Up: the 600 ms opportunity, +100 ms; down: the next one after 700 ms is at 1000, +100 ms.
        assert_eq!(handshake_done(&up, &down, (1, 2)), Time::from_millis(1100));
    }

    #[test]
    fn control_frames_in_a_lost_packet_go_again_and_are_never_dropped() {
        let mut s = Sender::new(PACKET_UP);
        s.queue_control(vec![1; 30]);
        for i in 0..60 {
            s.queue(Time::from_millis(i), vec![0; 100]);
        }
        let p = s.poll_packet(Time::ZERO).expect("window open");
        assert_eq!(p.control.len(), 1, "control survives a full send buffer and goes first");
        s.on_sent(Time::ZERO, p.size, true, p.control);
        s.queue_control(vec![2; 30]);
        // The next packet is delivered and acknowledged: the first is declared lost.
        let q = s.poll_packet(Time::from_millis(10)).unwrap();
        assert_eq!(q.control[0].0, 1);
        s.on_sent(Time::from_millis(10), q.size, false, q.control);
        s.on_ack(Time::from_millis(500), Ack { largest_sent: Time::from_millis(10), delay: Duration::ZERO });
        let r = s.poll_packet(Time::from_millis(500)).unwrap();
        assert_eq!(r.control.iter().map(|c| c.0).collect::<Vec<_>>(), vec![0], "the lost frame, again");
    }

    #[test]
    fn a_full_send_buffer_drops_the_oldest() {
        let mut s = Sender::new(PACKET_UP);
        let dropped: u64 = (0..60).map(|i| s.queue(Time::from_millis(i), vec![0; 100])).sum();
        assert_eq!(dropped, 60 - (SEND_BUFFER / 100) as u64);
        assert_eq!(s.buffer.front().map(|d| d.1), Some(Time::from_millis(60 - (SEND_BUFFER / 100) as u64)));
    }
}
