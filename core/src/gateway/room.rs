//! A room's mixer: every 20 ms, pull one chunk from each talker's receive
//! stream, sum them once, and give each participant the sum minus itself.

use std::collections::{BTreeMap, VecDeque};

use crate::codec::CHUNK;
use crate::mixer::Mix;
use crate::stream::{ChunkKind, ReceiveStream, SendStream};
use crate::time::Time;
use crate::wire::{ParticipantId, RosterEntry};

use super::{ConnId, GatewayStats, Output};

pub(super) struct Participant {
    pub(super) conn: ConnId,
    pub(super) entry: RosterEntry,
    pub(super) uplink: ReceiveStream,
    pub(super) downlink: SendStream,
    pub(super) chunk: [i16; CHUNK],
    pub(super) talking: bool,
}

pub(super) struct Room {
    pub(super) participants: BTreeMap<ParticipantId, Participant>,
    pub(super) next_id: ParticipantId,
    pub(super) next_tick: Time,
    pub(super) mix: Mix,
    pub(super) floor: super::floor::Floor,
}

impl Room {
    /// One 20 ms mixer step. Returns connections whose codec failed.
    pub(super) fn tick(&mut self, now: Time, out: &mut VecDeque<Output>, stats: &mut GatewayStats) -> Vec<ConnId> {
        stats.ticks += 1;
        self.mix.clear();
        for p in self.participants.values_mut() {
            let kind = p.uplink.pull_chunk(now, &mut p.chunk);
            // The gateway enforces mute: a muted talker's audio never reaches the mix.
            p.talking = matches!(kind, ChunkKind::Audio | ChunkKind::Concealed) && !p.entry.muted;
            if p.talking {
                self.mix.add(&p.chunk);
            }
        }
        let mut failed = Vec::new();
        let mut mixed = [0i16; CHUNK];
        for p in self.participants.values_mut() {
            self.mix.minus(p.talking.then_some(&p.chunk[..]), &mut mixed);
            match p.downlink.push_chunk(&mixed) {
                Ok(Some(data)) => {
                    stats.datagrams_out += 1;
                    out.push_back(Output::Datagram { conn: p.conn, data });
                }
                Ok(None) => {}
                Err(_) => failed.push(p.conn),
            }
        }
        failed
    }
}

