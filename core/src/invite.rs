//! Invitations: one line a host pastes into a message and a clinician pastes
//! after `lowband join`:
//! `lowband://hub.example.org:4433/echo-hiv?token=lb1.…&fp=<hex>`.
//! The room is percent-encoded; `token`, `fp` (certificate fingerprint) and
//! `name` are optional. Pure: written by the gateway's `token --invite`,
//! read by the client.

use std::fmt;

pub const SCHEME: &str = "lowband://";
/// Default gateway port when the invitation names none.
pub const DEFAULT_PORT: u16 = 4433;
const MAX_LEN: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// `host:port` (IPv6 hosts in brackets).
    pub gateway: String,
    pub room: String,
    pub token: Option<String>,
    pub fingerprint: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InviteError {
    #[error("an invitation starts with {SCHEME} (got {0:?})")]
    Scheme(String),
    #[error("the invitation is too long ({0} characters): was it copied whole?")]
    TooLong(usize),
    #[error("the invitation names no gateway host")]
    NoHost,
    #[error("the gateway port {0:?} is not a number from 1 to 65535")]
    Port(String),
    #[error("the invitation names no room (expected lowband://host:port/ROOM?...)")]
    NoRoom,
    #[error("the invitation has a broken %-escape in {0:?}")]
    Escape(String),
    #[error("the invitation has an unknown field {0:?} (known: token, fp, name)")]
    UnknownField(String),
    #[error("the fingerprint in the invitation is not 64 hex digits")]
    Fingerprint,
}

impl Invitation {
    pub fn parse(text: &str) -> Result<Invitation, InviteError> {
        let text = text.trim();
        if text.len() > MAX_LEN {
            return Err(InviteError::TooLong(text.len()));
        }
        let rest = text
            .get(..SCHEME.len())
            .filter(|s| s.eq_ignore_ascii_case(SCHEME))
            .map(|_| &text[SCHEME.len()..])
            .ok_or_else(|| InviteError::Scheme(text.chars().take(20).collect()))?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let gateway = parse_authority(authority)?;
        let room = decode(path.trim_end_matches('/'))?;
        if room.is_empty() {
            return Err(InviteError::NoRoom);
        }
        let mut inv = Invitation { gateway, room, token: None, fingerprint: None, name: None };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = decode(v)?;
            let v = (!v.is_empty()).then_some(v);
            match k {
                "token" => inv.token = v,
                "fp" => {
                    if let Some(fp) = &v {
                        if fp.len() != 64 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
                            return Err(InviteError::Fingerprint);
                        }
                    }
                    inv.fingerprint = v;
                }
                "name" => inv.name = v,
                other => return Err(InviteError::UnknownField(other.chars().take(20).collect())),
            }
        }
        Ok(inv)
    }
}

fn parse_authority(a: &str) -> Result<String, InviteError> {
    let (host, port) = if let Some(v6) = a.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or(InviteError::NoHost)?;
        (format!("[{h}]"), after.strip_prefix(':'))
    } else {
        match a.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (a.to_string(), None),
        }
    };
    if host.is_empty() || host == "[]" || host.contains(['@', ' ', '/']) {
        return Err(InviteError::NoHost);
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(|| InviteError::Port(p.chars().take(10).collect()))?,
    };
    Ok(format!("{host}:{port}"))
}

fn decode(s: &str) -> Result<String, InviteError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
                out.push(hex.ok_or_else(|| InviteError::Escape(s.chars().take(20).collect()))?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| InviteError::Escape(s.chars().take(20).collect()))
}

fn encode(s: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
            write!(f, "{}", c as char)?;
        } else {
            write!(f, "%{c:02X}")?;
        }
    }
    Ok(())
}

impl fmt::Display for Invitation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/", self.gateway)?;
        encode(&self.room, f)?;
        let mut sep = '?';
        for (k, v) in [("token", &self.token), ("fp", &self.fingerprint), ("name", &self.name)] {
            if let Some(v) = v {
                write!(f, "{sep}{k}=")?;
                encode(v, f)?;
                sep = '&';
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12";

    #[test]
    fn an_invitation_round_trips_through_its_text() {
        let inv = Invitation {
            gateway: "hub.example.org:4433".into(),
            room: "echo hiv/tb".into(),
            token: Some("lb1.abc-_x.y".into()),
            fingerprint: Some(FP.into()),
            name: Some("Clinic 7".into()),
        };
        let text = inv.to_string();
        assert!(!text.contains(' '), "{text}");
        assert_eq!(Invitation::parse(&text), Ok(inv));
    }

    #[test]
    fn a_plain_invitation_gets_the_default_port() {
        let inv = Invitation::parse("lowband://10.0.0.5/echo-hiv").unwrap();
        assert_eq!(inv.gateway, "10.0.0.5:4433");
        assert_eq!(inv.room, "echo-hiv");
        assert_eq!(inv.token, None);
        assert_eq!(Invitation::parse("lowband://[::1]:5000/r").unwrap().gateway, "[::1]:5000");
    }

    #[test]
    fn broken_invitations_are_errors_that_say_what_is_wrong() {
        let cases = [
            ("https://hub/echo", "starts with"),
            ("lowband://hub:99999/echo", "port"),
            ("lowband://hub:4433/", "no room"),
            ("lowband://:4433/echo", "no gateway host"),
            ("lowband://hub/echo?fp=zz", "fingerprint"),
            ("lowband://hub/echo%zz", "%-escape"),
            ("lowband://hub/echo?colour=red", "unknown field"),
            ("lowband://hub/ech%C3", "%-escape"),
        ];
        for (text, says) in cases {
            let e = Invitation::parse(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
        assert!(Invitation::parse(&format!("lowband://h/{}", "x".repeat(5000))).is_err());
    }
}
