//! Attendance: a journal per session (JSON lines, appended and fsynced as
//! each join or leave happens, so a crash loses nothing already reported),
//! and the CSV export continuing-education credit is computed from.
//!
//! A **session** of a room starts with the first join and ends once the room
//! has stayed empty for `session_gap_secs` (a hub whose only link drops for a
//! minute keeps one session). Its id is `<UTC start>-<room>`, e.g.
//! `20261122-041500-echo-hiv`, which also names the recording files.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One line of a journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// UTC, ISO 8601 with milliseconds (for people reading the file).
    pub t: String,
    pub unix_ms: u64,
    /// session_start, join, reconnect, leave, lost, removed, dropped, alive,
    /// ended (still in when the gateway stopped), session_end.
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

impl Record {
    pub fn new(unix_ms: u64, event: &str) -> Record {
        Record { t: utc(unix_ms), unix_ms, event: event.into(), room: None, id: None, name: None, role: None }
    }

    fn is_arrival(&self) -> bool {
        matches!(self.event.as_str(), "join" | "reconnect")
    }

    fn is_departure(&self) -> bool {
        matches!(self.event.as_str(), "leave" | "lost" | "removed" | "dropped" | "ended")
    }
}

/// An open journal file; every record is on disk before `append` returns.
pub struct Journal {
    file: File,
    pub path: PathBuf,
}

impl Journal {
    pub fn create(dir: &Path, session: &str) -> std::io::Result<Journal> {
        fs::create_dir_all(dir)?;
        let path = dir.join(format!("{session}.jsonl"));
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        // The new name must survive a power cut too, not only its contents.
        #[cfg(unix)]
        File::open(dir)?.sync_all()?;
        Ok(Journal { file, path })
    }

    pub fn append(&mut self, r: &Record) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(r).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()
    }
}

/// Reads a journal; a torn last line (crash mid-write) is skipped, other bad lines are errors.
pub fn read_journal(path: &Path) -> anyhow::Result<Vec<Record>> {
    let lines: Vec<String> = BufReader::new(File::open(path)?).lines().collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(r) => out.push(r),
            Err(_) if i + 1 == lines.len() => {}
            Err(e) => anyhow::bail!("{}:{}: {e}", path.display(), i + 1),
        }
    }
    Ok(out)
}

/// Session ids found in the attendance directory, oldest first.
pub fn sessions(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut ids: Vec<String> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok()?.strip_suffix(".jsonl").map(str::to_string))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    ids.sort();
    Ok(ids)
}

/// One person's attendance in a session.
#[derive(Debug, Clone, PartialEq)]
pub struct Attendee {
    pub name: String,
    pub role: String,
    pub first_join_ms: u64,
    pub last_leave_ms: u64,
    /// Time with at least one connection in the room.
    pub present_ms: u64,
    pub joins: u32,
    /// True when the record ends while they were still in (the gateway stopped or crashed):
    /// their presence is counted up to the last record.
    pub open_at_end: bool,
}

/// Presence per name: overlapping connections under one name count once.
pub fn summarize(records: &[Record]) -> Vec<Attendee> {
    struct State {
        a: Attendee,
        open: BTreeMap<u32, ()>,
        since: u64,
    }
    let end = records.iter().map(|r| r.unix_ms).max().unwrap_or(0);
    let mut people: BTreeMap<String, State> = BTreeMap::new();
    for r in records {
        let (Some(name), Some(id)) = (&r.name, r.id) else { continue };
        let s = people.entry(name.clone()).or_insert_with(|| State {
            a: Attendee { name: name.clone(), role: String::new(), first_join_ms: r.unix_ms, last_leave_ms: r.unix_ms, present_ms: 0, joins: 0, open_at_end: false },
            open: BTreeMap::new(),
            since: r.unix_ms,
        });
        if r.is_arrival() {
            if s.open.is_empty() {
                s.since = r.unix_ms;
            }
            s.open.insert(id, ());
            s.a.joins += 1;
            if let Some(role) = &r.role {
                s.a.role = role.clone();
            }
        } else if r.is_departure() && s.open.remove(&id).is_some() {
            s.a.last_leave_ms = r.unix_ms;
            if s.open.is_empty() {
                s.a.present_ms += r.unix_ms - s.since;
            }
        }
    }
    let mut out: Vec<Attendee> = people
        .into_values()
        .map(|mut s| {
            if !s.open.is_empty() {
                s.a.present_ms += end - s.since;
                s.a.last_leave_ms = end;
                s.a.open_at_end = true;
            }
            s.a
        })
        .collect();
    out.sort_by_key(|a| (a.first_join_ms, a.name.clone()));
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// CSV with a header row: one line per person.
pub fn to_csv(attendees: &[Attendee]) -> String {
    let mut out = String::from("name,role,first_join_utc,last_leave_utc,minutes_present,joins,note\n");
    for a in attendees {
        let note = if a.open_at_end { "still in when the record ends (gateway stopped)" } else { "" };
        out.push_str(&format!(
            "{},{},{},{},{:.1},{},{}\n",
            csv_field(&a.name),
            a.role,
            utc(a.first_join_ms),
            utc(a.last_leave_ms),
            a.present_ms as f64 / 60_000.0,
            a.joins,
            note
        ));
    }
    out
}

/// Unix ms as `2026-11-22T04:15:00.123Z`.
pub fn utc(unix_ms: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix_ms / 1000);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z", unix_ms % 1000)
}

/// Unix ms as `20261122-041500`, for file names.
pub fn compact_utc(unix_ms: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix_ms / 1000);
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}")
}

/// Gregorian date and time of Unix seconds (Howard Hinnant's days-to-civil).
fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let sod = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, (sod / 3600) as u32, (sod % 3600 / 60) as u32, (sod % 60) as u32)
}

/// A room name made safe for a file name.
pub fn slug(room: &str) -> String {
    room.chars().take(48).map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ms: u64, event: &str, id: u32, name: &str) -> Record {
        Record { id: Some(id), name: Some(name.into()), role: Some("Participant".into()), ..Record::new(ms, event) }
    }

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(1_709_210_096_789), "2024-02-29T12:34:56.789Z");
        assert_eq!(compact_utc(1_709_210_096_789), "20240229-123456");
    }

    #[test]
    fn a_reconnect_counts_both_stints_but_not_the_gap() {
        let recs = vec![
            Record::new(0, "session_start"),
            rec(0, "join", 1, "Clinic 7"),
            rec(10 * 60_000, "lost", 1, "Clinic 7"),
            rec(12 * 60_000, "reconnect", 2, "Clinic 7"),
            rec(30 * 60_000, "leave", 2, "Clinic 7"),
        ];
        let a = &summarize(&recs)[0];
        assert_eq!((a.present_ms, a.joins, a.first_join_ms, a.last_leave_ms, a.open_at_end), (28 * 60_000, 2, 0, 30 * 60_000, false));
        assert!(to_csv(&summarize(&recs)).contains("Clinic 7,Participant,1970-01-01T00:00:00.000Z,1970-01-01T00:30:00.000Z,28.0,2,\n"));
    }

    #[test]
    fn overlapping_connections_under_one_name_count_once() {
        let recs = vec![rec(0, "join", 1, "A"), rec(60_000, "join", 2, "A"), rec(120_000, "lost", 1, "A"), rec(180_000, "leave", 2, "A")];
        assert_eq!(summarize(&recs)[0].present_ms, 180_000);
    }

    #[test]
    fn someone_still_in_when_the_record_stops_is_counted_to_its_last_line() {
        let recs = vec![rec(0, "join", 1, "A"), rec(0, "join", 2, "B, MD"), rec(60_000, "leave", 2, "B, MD"), Record::new(90_000, "alive")];
        let s = summarize(&recs);
        assert_eq!((s[0].present_ms, s[0].open_at_end), (90_000, true));
        assert!(to_csv(&s).contains("\"B, MD\",Participant"));
    }

    #[test]
    fn a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::create(dir.path(), "s").unwrap();
        j.append(&rec(5, "join", 1, "A")).unwrap();
        std::fs::OpenOptions::new().append(true).open(&j.path).unwrap().write_all(b"{\"t\":\"19").unwrap();
        assert_eq!(read_journal(&j.path).unwrap(), vec![rec(5, "join", 1, "A")]);
    }
}
