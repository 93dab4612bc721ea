//! Floor control: roles, host actions, raised hands, and the attendance
//! events every join and leave produces. Every change is broadcast so each
//! roster stays the same as the gateway's.

use std::collections::BTreeSet;

use crate::time::Time;
use crate::wire::{ErrorCode, HostAction, ParticipantId, Role, RosterEntry, RosterUpdate, ServerMsg};

use super::{ConnId, ConnState, Gateway, Output};

/// A room's floor state beside its mixer.
#[derive(Debug, Default)]
pub(super) struct Floor {
    pub(super) locked: bool,
    /// Hands are numbered from this room-wide counter: lower = raised earlier.
    next_hand: u32,
    /// Muted by a host: they may not unmute themselves until given the floor.
    pub(super) host_muted: BTreeSet<ParticipantId>,
    /// Names a host removed; they stay out for the life of the room.
    pub(super) removed: BTreeSet<String>,
}

/// Why a person entered or left a room, for the attendance journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Joined,
    /// Said goodbye.
    Left,
    /// The connection was lost (timeout, network, client crash).
    Lost,
    /// The gateway closed it (protocol error, codec failure).
    Dropped,
    /// A host removed them.
    Removed,
}

impl Presence {
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Joined => "join",
            Presence::Left => "leave",
            Presence::Lost => "lost",
            Presence::Dropped => "dropped",
            Presence::Removed => "removed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttendanceEvent {
    pub room: String,
    pub id: ParticipantId,
    pub name: String,
    pub role: Role,
    pub presence: Presence,
    /// Wall-clock time, Unix milliseconds.
    pub at_unix_ms: u64,
}

impl Gateway {
    pub(super) fn attendance(&mut self, now: Time, room: &str, entry: &RosterEntry, presence: Presence) {
        self.out.push_back(Output::Attendance(AttendanceEvent {
            room: room.to_string(),
            id: entry.id,
            name: entry.name.clone(),
            role: entry.role,
            presence,
            at_unix_ms: self.config.unix_ms_at_zero + now.as_micros() / 1000,
        }));
    }

    /// Tells the peer it may not do that, without closing.
    fn reject(&mut self, conn: ConnId, code: ErrorCode, text: &str) {
        self.send(conn, &ServerMsg::Error { code, text: text.to_string() });
    }

    fn entry_mut(&mut self, room: &str, id: ParticipantId) -> Option<&mut RosterEntry> {
        self.rooms.get_mut(room)?.participants.get_mut(&id).map(|p| &mut p.entry)
    }

    fn set_muted(&mut self, room: &str, id: ParticipantId, muted: bool) {
        if let Some(e) = self.entry_mut(room, id) {
            if e.muted != muted {
                e.muted = muted;
                self.broadcast(room, None, &ServerMsg::Roster(RosterUpdate::Muted { id, muted }));
            }
        }
    }

    fn set_hand(&mut self, room: &str, id: ParticipantId, hand: Option<u32>) {
        if let Some(e) = self.entry_mut(room, id) {
            if e.hand != hand {
                e.hand = hand;
                self.broadcast(room, None, &ServerMsg::Roster(RosterUpdate::Hand { id, hand }));
            }
        }
    }

    fn set_role(&mut self, room: &str, id: ParticipantId, role: Role) {
        if let Some(e) = self.entry_mut(room, id) {
            if e.role != role {
                e.role = role;
                self.broadcast(room, None, &ServerMsg::Roster(RosterUpdate::Role { id, role }));
            }
        }
    }

    /// An open room never runs without a host: when the last one leaves, the
    /// longest-present participant takes over. With tokens, roles come only from tokens.
    pub(super) fn keep_a_host(&mut self, room: &str) {
        if self.config.require_tokens {
            return;
        }
        let Some(r) = self.rooms.get(room) else { return };
        if r.participants.values().any(|p| p.entry.role == Role::Host) {
            return;
        }
        if let Some(&id) = r.participants.keys().next() {
            self.set_role(room, id, Role::Host);
        }
    }

    /// Lifts a host mute too: used when the floor is given.
    fn give_voice(&mut self, room: &str, id: ParticipantId) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.floor.host_muted.remove(&id);
        }
        self.set_muted(room, id, false);
    }

    pub(super) fn self_mute(&mut self, conn: ConnId, room: &str, id: ParticipantId, muted: bool) {
        let host_muted = self.rooms.get(room).is_some_and(|r| r.floor.host_muted.contains(&id));
        if !muted && host_muted {
            return self.reject(conn, ErrorCode::NotPermitted, "the host muted you: raise your hand to ask for the floor");
        }
        self.set_muted(room, id, muted);
    }

    pub(super) fn raise_hand(&mut self, room: &str, id: ParticipantId, raised: bool) {
        let Some(r) = self.rooms.get_mut(room) else { return };
        let Some(p) = r.participants.get(&id) else { return };
        let hand = match (raised, p.entry.hand) {
            (true, Some(_)) | (false, None) => return,
            (true, None) => {
                r.floor.next_hand += 1;
                Some(r.floor.next_hand)
            }
            (false, Some(_)) => None,
        };
        self.set_hand(room, id, hand);
    }

    pub(super) fn host_action(&mut self, now: Time, conn: ConnId, room: &str, by: ParticipantId, action: HostAction) {
        let Some(r) = self.rooms.get(room) else { return };
        if r.participants.get(&by).map(|p| p.entry.role) != Some(Role::Host) {
            return self.reject(conn, ErrorCode::NotPermitted, "only a host may do that");
        }
        let target = match &action {
            HostAction::Mute { id, .. } | HostAction::Remove { id } | HostAction::SetPresenter { id } | HostAction::GrantFloor { id } => Some(*id),
            HostAction::MuteAllButPresenter | HostAction::Lock { .. } => None,
        };
        if let Some(id) = target {
            if !r.participants.contains_key(&id) {
                return self.reject(conn, ErrorCode::NotPermitted, &format!("participant #{id} is not in the room"));
            }
        }
        match action {
            HostAction::Mute { id, muted } => {
                if let Some(r) = self.rooms.get_mut(room) {
                    if muted {
                        r.floor.host_muted.insert(id);
                    } else {
                        r.floor.host_muted.remove(&id);
                    }
                }
                self.set_muted(room, id, muted);
            }
            HostAction::MuteAllButPresenter => {
                let Some(r) = self.rooms.get_mut(room) else { return };
                let ids: Vec<ParticipantId> = r.participants.values().filter(|p| p.entry.role == Role::Participant).map(|p| p.entry.id).collect();
                r.floor.host_muted.extend(&ids);
                for id in ids {
                    self.set_muted(room, id, true);
                }
            }
            HostAction::Lock { locked } => {
                let Some(r) = self.rooms.get_mut(room) else { return };
                if r.floor.locked != locked {
                    r.floor.locked = locked;
                    self.broadcast(room, None, &ServerMsg::Roster(RosterUpdate::RoomLocked { locked }));
                }
            }
            HostAction::Remove { id } => {
                let Some(r) = self.rooms.get_mut(room) else { return };
                let Some(p) = r.participants.get(&id) else { return };
                let (victim, name) = (p.conn, p.entry.name.clone());
                r.floor.removed.insert(name);
                self.last_now = now;
                self.send(victim, &ServerMsg::Error { code: ErrorCode::Removed, text: "a host removed you from the room".into() });
                self.out.push_back(Output::Close { conn: victim, reason: "removed by a host".into() });
                if let Some(c) = self.conns.get_mut(&victim) {
                    c.state = ConnState::Closed;
                }
                self.remove_participant(room, id, Presence::Removed);
            }
            HostAction::SetPresenter { id } => {
                let Some(r) = self.rooms.get(room) else { return };
                if r.participants.get(&id).is_some_and(|p| p.entry.role == Role::Host) {
                    return self.reject(conn, ErrorCode::NotPermitted, "a host already has the floor; choose a participant as presenter");
                }
                let old: Vec<ParticipantId> = r.participants.values().filter(|p| p.entry.role == Role::Presenter && p.entry.id != id).map(|p| p.entry.id).collect();
                for o in old {
                    self.set_role(room, o, Role::Participant);
                }
                self.set_role(room, id, Role::Presenter);
                self.give_voice(room, id);
            }
            HostAction::GrantFloor { id } => {
                self.set_hand(room, id, None);
                self.give_voice(room, id);
                self.broadcast(room, None, &ServerMsg::Roster(RosterUpdate::FloorGranted { id }));
            }
        }
    }
}
