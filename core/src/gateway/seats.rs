//! Seats survive dropped connections: when a joined connection is lost, the
//! gateway holds the seat for a grace period (the roster shows the person as
//! reconnecting, not gone), and a join with the same identity — the same
//! token name, or the same name in an open room — takes the seat back with
//! its id, role, hand and audio streams. A seat not reclaimed in time is
//! removed as if they had left.

use crate::time::Time;
use crate::wire::{ParticipantId, RosterUpdate, ServerMsg};

use super::floor::Presence;
use super::{ConnId, ConnState, Gateway};

/// A seat whose connection was lost.
#[derive(Debug, Clone, Copy)]
pub(super) struct Held {
    pub(super) until: Time,
}

impl Gateway {
    /// The joined connection was lost: hold its seat instead of removing it.
    pub(super) fn hold_seat(&mut self, room: &str, id: ParticipantId) {
        let grace = self.config.seat_grace;
        let now = self.last_now;
        let Some(entry) = self.rooms.get(room).and_then(|r| r.participants.get(&id)).map(|p| p.entry.clone()) else { return };
        if grace.is_zero() {
            return self.remove_participant(room, id, Presence::Lost);
        }
        self.held.insert((room.to_string(), id), Held { until: now + grace });
        // Attendance counts them as gone from now; a reclaim is a reconnect.
        self.attendance(now, room, &entry, Presence::Lost);
        self.broadcast(room, Some(id), &ServerMsg::Roster(RosterUpdate::Reconnecting { id, reconnecting: true }));
    }

    /// A seat this join may take back: a held seat with that name, or one
    /// whose connection has gone quiet (the gateway has not noticed it died
    /// yet), or — for a token holder, whose identity is proven — any of theirs.
    pub(super) fn reclaimable_seat(&self, now: Time, room: &str, name: &str, proven: bool) -> Option<ParticipantId> {
        let r = self.rooms.get(room)?;
        r.participants
            .values()
            .filter(|p| p.entry.name == name)
            .find(|p| proven || self.held.contains_key(&(room.to_string(), p.entry.id)) || self.link_silent(p.conn, now))
            .map(|p| p.entry.id)
    }

    /// Moves the seat `id` to connection `conn`, closing the one it had.
    pub(super) fn reclaim_seat(&mut self, now: Time, conn: ConnId, room: &str, id: ParticipantId) {
        let was_held = self.held.remove(&(room.to_string(), id)).is_some();
        let Some(p) = self.rooms.get_mut(room).and_then(|r| r.participants.get_mut(&id)) else { return };
        let old = std::mem::replace(&mut p.conn, conn);
        let entry = p.entry.clone();
        if !was_held {
            self.out.push_back(super::Output::Close { conn: old, reason: "replaced by a newer connection".into() });
            if let Some(c) = self.conns.get_mut(&old) {
                c.state = ConnState::Closed;
            }
            self.attendance(now, room, &entry, Presence::Lost);
        }
        if let Some(mut l) = self.links.by_conn.remove(&old) {
            // The old path's adapter state says nothing about the new one.
            l.path = None;
            self.links.by_conn.insert(conn, l);
        }
        self.conns.get_mut(&conn).expect("present").state = ConnState::Joined { room: room.to_string(), id };
        let r = &self.rooms[room];
        let roster = r.participants.values().map(|p| p.entry.clone()).collect();
        let locked = r.floor.locked;
        self.send(conn, &ServerMsg::Joined { room: room.to_string(), you: id, roster });
        if locked {
            self.send(conn, &ServerMsg::Roster(RosterUpdate::RoomLocked { locked: true }));
        }
        for ((_, other), _) in self.held.iter().filter(|((r, _), _)| r == room) {
            self.out.push_back(super::Output::Control {
                conn,
                data: crate::wire::control::encode_frame(&ServerMsg::Roster(RosterUpdate::Reconnecting { id: *other, reconnecting: true })),
            });
        }
        self.attendance(now, room, &entry, Presence::Joined);
        if was_held {
            self.broadcast(room, Some(id), &ServerMsg::Roster(RosterUpdate::Reconnecting { id, reconnecting: false }));
        }
    }

    /// Removes seats whose grace period is over.
    pub(super) fn expire_seats(&mut self, now: Time) {
        let expired: Vec<(String, ParticipantId)> = self.held.iter().filter(|(_, h)| h.until <= now).map(|(k, _)| k.clone()).collect();
        for (room, id) in expired {
            self.held.remove(&(room.clone(), id));
            self.unseat(&room, id);
        }
    }

    /// Whether the seat is held for someone reconnecting.
    pub fn is_held(&self, room: &str, id: ParticipantId) -> bool {
        self.held.contains_key(&(room.to_string(), id))
    }
}
