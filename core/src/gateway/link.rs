//! Per-listener link feedback at the gateway: a [`ReceiverReport`] on each
//! talker's uplink once a second, and each listener's reports (plus QUIC's
//! path stats) choosing the profile of the mix sent to them.

use std::collections::HashMap;

use crate::adapt::{AdaptConfig, Decision, PathSignal, RateAdapter};
use crate::feedback::{PathStats, ReportBuilder, REPORT_INTERVAL};
use crate::time::Time;
use crate::wire::arrivals::ArrivalLog;
use crate::wire::{AudioHeader, ReceiverReport, ServerMsg};

use super::{ConnId, ConnState, Gateway, Output};


/// A connection this quiet (no audio, no report) is presumed dead.
const SILENT: std::time::Duration = std::time::Duration::from_secs(4);

/// One connection's feedback state.
pub(super) struct SeatLink {
    pub(super) feedback: ReportBuilder,
    pub(super) adapter: RateAdapter,
    pub(super) rung: usize,
    /// The downlink breaker tripped: the listener's mix is not sent until a probe.
    pub(super) paused: bool,
    pub(super) path: Option<PathStats>,
    /// Last datagram or report from this connection.
    pub(super) last_heard: Time,
    /// Per-packet arrivals, for a client that asked (its link recorder).
    pub(super) arrivals: Option<ArrivalLog>,
}

/// Links of all connections, by connection.
#[derive(Default)]
pub(super) struct Links {
    pub(super) by_conn: HashMap<ConnId, SeatLink>,
    pub(super) next_report: Option<Time>,
}

impl SeatLink {
    pub(super) fn new(rungs: usize, start: usize) -> Self {
        SeatLink { feedback: ReportBuilder::default(), adapter: RateAdapter::new(AdaptConfig::default(), rungs, start), rung: start, paused: false, path: None, last_heard: Time::ZERO, arrivals: None }
    }
}

impl Gateway {
    /// Tiers richest first (the adapter's rung 0), whatever order the config lists them in.
    fn tiers_by_richness(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.config.tiers.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(self.config.tiers[i].bitrate_bps));
        order
    }

    pub(super) fn tier_of_rung(&self, rung: usize) -> usize {
        self.tiers_by_richness().get(rung).copied().unwrap_or(0)
    }

    pub(super) fn rung_of_tier(&self, tier: usize) -> usize {
        self.tiers_by_richness().iter().position(|&i| i == tier).unwrap_or(0)
    }

    pub(super) fn link_on_datagram(&mut self, now: Time, conn: ConnId, h: &AudioHeader) {
        if let Some(l) = self.links.by_conn.get_mut(&conn) {
            l.feedback.on_packet(now, h);
            l.last_heard = now;
            if let Some(a) = l.arrivals.as_mut().and_then(|log| log.on_packet(now, h.seq)) {
                self.out.push_back(Output::Control { conn, data: crate::wire::control::encode_frame(&ServerMsg::Arrivals(a)) });
            }
        }
    }

    /// Start logging this connection's uplink arrivals (once joined).
    pub(super) fn link_want_arrivals(&mut self, conn: ConnId) {
        if let Some(l) = self.links.by_conn.get_mut(&conn) {
            l.arrivals.get_or_insert_with(ArrivalLog::default);
        }
    }

    /// QUIC's view of one connection's path, from the shell (e.g. once a second).
    pub fn handle_path(&mut self, conn: ConnId, path: PathStats) {
        if let Some(l) = self.links.by_conn.get_mut(&conn) {
            l.path = Some(path);
        }
    }

    /// The listener's report on the mix we send it: adapt its downlink.
    pub(super) fn link_on_report(&mut self, now: Time, conn: ConnId, r: &ReceiverReport) {
        let Some(l) = self.links.by_conn.get_mut(&conn) else { return };
        l.last_heard = now;
        let signal = PathSignal { rtt: l.path.map(|p| p.rtt), window_starved: false };
        if let Some(d) = l.adapter.on_report(now, r, signal) {
            self.apply_downlink(conn, d);
        }
    }

    fn apply_downlink(&mut self, conn: ConnId, d: Decision) {
        let Some(l) = self.links.by_conn.get_mut(&conn) else { return };
        match d {
            Decision::ReceiveOnly => l.paused = true,
            Decision::Rung(r) => {
                l.paused = false;
                if r == l.rung {
                    return;
                }
                l.rung = r;
                let name = self.config.tiers[self.tier_of_rung(r)].name.clone();
                // Only fails for a connection that is no longer joined.
                let _ = self.set_downlink_tier(conn, &name);
            }
        }
    }

    /// Once a second: a report to each joined connection on its uplink, and
    /// the adapters' silence and probe timers.
    pub(super) fn link_timeout(&mut self, now: Time) {
        let due = *self.links.next_report.get_or_insert(now + REPORT_INTERVAL + self.config.report_phase);
        if now < due {
            return;
        }
        self.links.next_report = Some(now + REPORT_INTERVAL);
        let mut decisions = Vec::new();
        for (&conn, l) in self.links.by_conn.iter_mut() {
            let Some(ConnState::Joined { room, id }) = self.conns.get(&conn).map(|c| &c.state) else { continue };
            let Some(p) = self.rooms.get(room).and_then(|r| r.participants.get(id)) else { continue };
            if let Some(a) = l.arrivals.as_mut().and_then(ArrivalLog::take) {
                self.out.push_back(Output::Control { conn, data: crate::wire::control::encode_frame(&ServerMsg::Arrivals(a)) });
            }
            if let Some(r) = l.feedback.take(now, &p.uplink.stats().jitter) {
                self.out.push_back(Output::Control { conn, data: crate::wire::control::encode_frame(&ServerMsg::Report(r)) });
            }
            if let Some(d) = l.adapter.tick(now) {
                decisions.push((conn, d));
            }
        }
        for (conn, d) in decisions {
            self.apply_downlink(conn, d);
        }
    }

    /// Nothing has come from this connection for a while: a reconnect may take its seat.
    pub(super) fn link_silent(&self, conn: ConnId, now: Time) -> bool {
        self.links.by_conn.get(&conn).is_none_or(|l| now.saturating_since(l.last_heard) >= SILENT)
    }

    /// Whether audio to this connection is held back by its breaker.
    pub(super) fn link_paused(&self, conn: ConnId) -> bool {
        self.links.by_conn.get(&conn).is_some_and(|l| l.paused)
    }

    /// The downlink rung chosen for a connection, 0 = richest tier (for tests and operators).
    pub fn downlink_rung(&self, conn: ConnId) -> Option<usize> {
        self.links.by_conn.get(&conn).map(|l| l.rung)
    }
}
