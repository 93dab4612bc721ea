//! What `lowband join` connects to: an invitation
//! ([`lowband_core::invite::Invitation`]) or a gateway address and room,
//! with explicit options taking precedence over the invitation's fields.

use lowband_core::invite::{InviteError, Invitation, SCHEME};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinTarget {
    pub gateway: String,
    pub room: String,
    pub name: String,
    pub token: Option<String>,
    pub fingerprint: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("this invitation cannot be used: {0}")]
    Invite(#[from] InviteError),
    #[error("which room? `lowband join HOST:PORT ROOM`, or paste the whole invitation (lowband://…)")]
    NoRoom,
    #[error("the invitation already names room {0:?}; leave out the extra room argument")]
    TwoRooms(String),
    #[error("what is your name? add --name \"Clinic 7\" (or join with a token that carries one)")]
    NoName,
}

impl JoinTarget {
    pub fn resolve(gateway: &str, room: Option<&str>, name: Option<&str>, token: Option<&str>, fingerprint: Option<&str>) -> Result<JoinTarget, TargetError> {
        let inv = if gateway.get(..SCHEME.len()).is_some_and(|s| s.eq_ignore_ascii_case(SCHEME)) {
            let inv = Invitation::parse(gateway)?;
            if room.is_some_and(|r| r != inv.room) {
                return Err(TargetError::TwoRooms(inv.room));
            }
            inv
        } else {
            Invitation { gateway: gateway.to_string(), room: room.ok_or(TargetError::NoRoom)?.to_string(), token: None, fingerprint: None, name: None }
        };
        let token = token.map(str::to_string).or(inv.token);
        let claimed = token.as_deref().and_then(|t| lowband_core::token::peek(t).ok()).map(|c| c.name);
        let name = name.map(str::to_string).or(inv.name).or(claimed).ok_or(TargetError::NoName)?;
        Ok(JoinTarget { gateway: inv.gateway, room: inv.room, name, token, fingerprint: fingerprint.map(str::to_string).or(inv.fingerprint) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lowband_core::token::{issue, Claims};
    use lowband_core::wire::Role;

    #[test]
    fn an_invitation_with_a_token_needs_nothing_else() {
        let t = issue(b"k", &Claims { room: "echo-hiv".into(), name: "Dr. Ama".into(), role: Role::Host, expires: 9 });
        let fp = "ab".repeat(32);
        let inv = format!("lowband://hub.example.org:4433/echo-hiv?token={t}&fp={fp}");
        let j = JoinTarget::resolve(&inv, None, None, None, None).unwrap();
        assert_eq!(j, JoinTarget { gateway: "hub.example.org:4433".into(), room: "echo-hiv".into(), name: "Dr. Ama".into(), token: Some(t), fingerprint: Some(fp) });
    }

    #[test]
    fn options_override_the_invitation_and_address_form_still_works() {
        let j = JoinTarget::resolve("lowband://h/r?name=A", None, Some("B"), None, None).unwrap();
        assert_eq!(j.name, "B");
        let j = JoinTarget::resolve("h:4433", Some("r"), Some("C"), None, None).unwrap();
        assert_eq!((j.gateway.as_str(), j.room.as_str()), ("h:4433", "r"));
    }

    #[test]
    fn missing_or_conflicting_parts_are_explained() {
        assert!(matches!(JoinTarget::resolve("h:4433", None, Some("C"), None, None), Err(TargetError::NoRoom)));
        assert!(matches!(JoinTarget::resolve("lowband://h/r", None, None, None, None), Err(TargetError::NoName)));
        assert!(matches!(JoinTarget::resolve("lowband://h/r", Some("x"), Some("C"), None, None), Err(TargetError::TwoRooms(_))));
        assert!(matches!(JoinTarget::resolve("lowband://h:0/r", None, Some("C"), None, None), Err(TargetError::Invite(_))));
    }
}
