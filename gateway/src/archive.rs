//! The archive thread: owns each room's session, its attendance journal and
//! its recording, so fsyncs and Opus encodes never stall the mixer. The
//! engine sends it events through an unbounded channel (attendance must not
//! be dropped); it closes everything cleanly when the channel closes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lowband_core::gateway::{AttendanceEvent, Presence};
use tracing::{error, info};

use crate::attendance::{compact_utc, slug, Journal, Record};
use crate::recorder::Recorder;

/// Journals get an `alive` line this often while a session is open, so a crash
/// bounds everyone's presence to within this of the truth.
const ALIVE_EVERY_MS: u64 = 10_000;

pub enum ArchiveMsg {
    Attendance(AttendanceEvent),
    Recording { room: String, pcm: Vec<i16> },
}

#[derive(Debug, Clone)]
pub struct ArchiveConfig {
    pub attendance_dir: PathBuf,
    /// `None`: no recording.
    pub record_dir: Option<PathBuf>,
    /// A room empty this long ends its session.
    pub session_gap: Duration,
}

struct Session {
    id: String,
    journal: Journal,
    recorder: Option<Recorder>,
    /// Who is in now: id → (name, role).
    present: BTreeMap<u32, (String, String)>,
    seen: HashSet<String>,
    empty_since: Option<u64>,
    last_alive: u64,
}

struct Archive {
    config: ArchiveConfig,
    sessions: HashMap<String, Session>,
}

pub fn unix_ms_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

pub fn spawn(config: ArchiveConfig) -> std::io::Result<(mpsc::Sender<ArchiveMsg>, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new().name("archive".into()).spawn(move || {
        let mut a = Archive { config, sessions: HashMap::new() };
        loop {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(ArchiveMsg::Attendance(ev)) => a.attendance(ev),
                Ok(ArchiveMsg::Recording { room, pcm }) => a.record(&room, &pcm),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            a.housekeep(unix_ms_now());
        }
        let rooms: Vec<String> = a.sessions.keys().cloned().collect();
        for room in rooms {
            a.end(&room, unix_ms_now());
        }
    })?;
    Ok((tx, handle))
}

impl Archive {
    fn write(s: &mut Session, r: &Record) {
        if let Err(e) = s.journal.append(r) {
            error!(path = %s.journal.path.display(), "attendance not written: {e}");
        }
    }

    fn open(&mut self, room: &str, at: u64) -> Option<&mut Session> {
        if !self.sessions.contains_key(room) {
            let mut id = format!("{}-{}", compact_utc(at), slug(room));
            let mut n = 1;
            while self.config.attendance_dir.join(format!("{id}.jsonl")).exists() {
                n += 1;
                id = format!("{}-{}-{n}", compact_utc(at), slug(room));
            }
            let journal = match Journal::create(&self.config.attendance_dir, &id) {
                Ok(j) => j,
                Err(e) => {
                    error!(dir = %self.config.attendance_dir.display(), "cannot open an attendance journal: {e}");
                    return None;
                }
            };
            let recorder = self.config.record_dir.as_ref().and_then(|dir| match Recorder::create(dir, &id, room) {
                Ok(r) => Some(r),
                Err(e) => {
                    error!("recording of room {room:?} not started: {e}");
                    None
                }
            });
            info!(room, session = %id, "session started");
            let mut s = Session { id, journal, recorder, present: BTreeMap::new(), seen: HashSet::new(), empty_since: None, last_alive: at };
            Self::write(&mut s, &Record { room: Some(room.to_string()), ..Record::new(at, "session_start") });
            self.sessions.insert(room.to_string(), s);
        }
        self.sessions.get_mut(room)
    }

    fn attendance(&mut self, ev: AttendanceEvent) {
        let Some(s) = self.open(&ev.room, ev.at_unix_ms) else { return };
        let role = format!("{:?}", ev.role);
        let event = match ev.presence {
            Presence::Joined => {
                s.present.insert(ev.id, (ev.name.clone(), role.clone()));
                s.empty_since = None;
                if s.seen.insert(ev.name.clone()) { "join" } else { "reconnect" }
            }
            other => {
                s.present.remove(&ev.id);
                if s.present.is_empty() {
                    s.empty_since = Some(ev.at_unix_ms);
                }
                other.as_str()
            }
        };
        let r = Record { id: Some(ev.id), name: Some(ev.name), role: Some(role), ..Record::new(ev.at_unix_ms, event) };
        Self::write(s, &r);
    }

    fn record(&mut self, room: &str, pcm: &[i16]) {
        let Some(s) = self.sessions.get_mut(room) else { return };
        if let Some(r) = &mut s.recorder {
            if let Err(e) = r.push(pcm) {
                error!(session = %s.id, "recording stopped: {e}");
                s.recorder = None;
            }
        }
    }

    fn housekeep(&mut self, now: u64) {
        let gap = self.config.session_gap.as_millis() as u64;
        let ended: Vec<String> = self.sessions.iter().filter(|(_, s)| s.empty_since.is_some_and(|t| now.saturating_sub(t) >= gap)).map(|(r, _)| r.clone()).collect();
        for room in ended {
            self.end(&room, now);
        }
        for s in self.sessions.values_mut() {
            if now.saturating_sub(s.last_alive) >= ALIVE_EVERY_MS {
                s.last_alive = now;
                Self::write(s, &Record::new(now, "alive"));
            }
        }
    }

    fn end(&mut self, room: &str, now: u64) {
        let Some(mut s) = self.sessions.remove(room) else { return };
        // Whoever is still in (the gateway is stopping) is out now.
        for (id, (name, role)) in std::mem::take(&mut s.present) {
            Self::write(&mut s, &Record { id: Some(id), name: Some(name), role: Some(role), ..Record::new(now, "ended") });
        }
        Self::write(&mut s, &Record::new(now, "session_end"));
        if let Some(r) = s.recorder.take() {
            let secs = r.seconds();
            match r.finish() {
                Ok(()) => info!(session = %s.id, "recording finished: {secs:.0} s"),
                Err(e) => error!(session = %s.id, "recording not finished cleanly: {e}"),
            }
        }
        info!(room, session = %s.id, "session ended");
    }
}
