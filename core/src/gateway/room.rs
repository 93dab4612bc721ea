//! A room's mixer: every 20 ms, pull one chunk from each talker's receive
//! stream, sum them once, and give each participant the sum minus itself.

use std::collections::{BTreeMap, VecDeque};

use crate::codec::CHUNK;
use crate::mixer::Mix;
use crate::stream::{ChunkKind, ReceiveStream, SendStream};
use crate::time::Time;
use crate::wire::control::{encode_frame, ServerMsg};
use crate::wire::{ParticipantId, RosterEntry};

use super::{ConnId, GatewayStats, Output};

pub(super) struct Participant {
    pub(super) conn: ConnId,
    pub(super) entry: RosterEntry,
    pub(super) uplink: ReceiveStream,
    pub(super) downlink: SendStream,
    pub(super) chunk: [i16; CHUNK],
    pub(super) talking: bool,
    /// Chunks left before the speaking indicator goes off (hangover).
    pub(super) voice_hold: u8,
}

pub(super) struct Room {
    pub(super) participants: BTreeMap<ParticipantId, Participant>,
    pub(super) next_id: ParticipantId,
    pub(super) next_tick: Time,
    pub(super) mix: Mix,
    pub(super) floor: super::floor::Floor,
    /// Who the room was last told is speaking.
    pub(super) talkers: Vec<ParticipantId>,
}

/// Speaking indicators: a chunk above this level lights one up ...
const VOICE_DBFS: f64 = -50.0;
/// ... for this many chunks, so it does not flicker between words.
const VOICE_HOLD: u8 = 15;

fn is_voice(chunk: &[i16]) -> bool {
    let e = chunk.iter().map(|&s| i64::from(s) * i64::from(s)).sum::<i64>() as f64 / chunk.len() as f64;
    e > 32768.0f64.powi(2) * 10f64.powf(VOICE_DBFS / 10.0)
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
            p.voice_hold = if p.talking && is_voice(&p.chunk) { VOICE_HOLD } else { p.voice_hold.saturating_sub(1) };
        }
        self.announce_talkers(out);
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

    /// Sends `ActiveTalkers` to everyone when the set of speakers changes.
    fn announce_talkers(&mut self, out: &mut VecDeque<Output>) {
        let now: Vec<ParticipantId> = self.participants.iter().filter(|(_, p)| p.voice_hold > 0).map(|(&id, _)| id).collect();
        if now == self.talkers {
            return;
        }
        let data = encode_frame(&ServerMsg::ActiveTalkers { ids: now.clone() });
        for p in self.participants.values() {
            out.push_back(Output::Control { conn: p.conn, data: data.clone() });
        }
        self.talkers = now;
    }
}

