//! Join tokens: who may join which room, in which role, until when, signed
//! with HMAC-SHA256 under a key only the gateway holds. Pure: the key bytes
//! and the current Unix time are arguments.
//!
//! Text form: `lb1.` + base64url(postcard(claims)) + `.` + base64url(mac),
//! where the MAC covers the `lb1.<claims>` prefix. Copy-paste safe (no
//! padding, no characters a shell or chat app mangles).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::wire::Role;

const PREFIX: &str = "lb1.";
/// Longest token text accepted, so a hostile Hello cannot make us decode megabytes.
pub const MAX_TOKEN_LEN: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub room: String,
    /// The name the holder is shown and credited under (attendance).
    pub name: String,
    pub role: Role,
    /// Unix seconds after which the token is refused.
    pub expires: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("this gateway requires a join token: ask the hub for one")]
    Missing,
    #[error("the join token is damaged or not a lowband token (check it was copied whole)")]
    Malformed,
    #[error("the join token's signature is invalid: it was altered, or issued by another gateway")]
    BadSignature,
    #[error("the join token expired {ago_s} s ago: ask the hub for a new one")]
    Expired { ago_s: u64 },
    #[error("the join token is for room {token_room:?}, not {room:?}")]
    WrongRoom { token_room: String, room: String },
}

fn mac(key: &[u8], signed: &[u8]) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(signed);
    m
}

/// Signs `claims` into a token.
pub fn issue(key: &[u8], claims: &Claims) -> String {
    let body = postcard::to_stdvec(claims).expect("claims always serialize");
    let signed = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(body));
    let tag = mac(key, signed.as_bytes()).finalize().into_bytes();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// Reads the claims without checking the signature: for the holder's own
/// display (its name and room), never for admission.
pub fn peek(token: &str) -> Result<Claims, TokenError> {
    let token = token.trim();
    if token.len() > MAX_TOKEN_LEN || !token.starts_with(PREFIX) {
        return Err(TokenError::Malformed);
    }
    let (signed, _) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let body = URL_SAFE_NO_PAD.decode(&signed[PREFIX.len()..]).map_err(|_| TokenError::Malformed)?;
    crate::wire::control::decode_body(&body).map_err(|_| TokenError::Malformed)
}

/// Checks signature, expiry and room, in that order (a forged token never
/// learns whether its room or expiry would have passed).
pub fn verify(key: &[u8], token: &str, room: &str, now_unix: u64) -> Result<Claims, TokenError> {
    let token = token.trim();
    if token.len() > MAX_TOKEN_LEN || !token.starts_with(PREFIX) {
        return Err(TokenError::Malformed);
    }
    let (signed, tag) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| TokenError::Malformed)?;
    mac(key, signed.as_bytes()).verify_slice(&tag).map_err(|_| TokenError::BadSignature)?;
    let body = URL_SAFE_NO_PAD.decode(&signed[PREFIX.len()..]).map_err(|_| TokenError::Malformed)?;
    let claims: Claims = crate::wire::control::decode_body(&body).map_err(|_| TokenError::Malformed)?;
    if now_unix >= claims.expires {
        return Err(TokenError::Expired { ago_s: now_unix - claims.expires });
    }
    if claims.room != room {
        return Err(TokenError::WrongRoom { token_room: claims.room, room: room.to_string() });
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn claims() -> Claims {
        Claims { room: "echo-hiv".into(), name: "Dr. Ama".into(), role: Role::Host, expires: 1_000 }
    }

    #[test]
    fn a_valid_token_gives_back_its_claims() {
        let t = issue(KEY, &claims());
        assert_eq!(verify(KEY, &t, "echo-hiv", 999), Ok(claims()));
    }

    #[test]
    fn a_holder_can_read_its_own_claims_but_not_from_garbage() {
        let t = issue(KEY, &claims());
        assert_eq!(peek(&t), Ok(claims()));
        assert_eq!(peek("lb1.%%%.x"), Err(TokenError::Malformed));
    }

    #[test]
    fn an_expired_token_is_refused_as_expired() {
        let t = issue(KEY, &claims());
        assert_eq!(verify(KEY, &t, "echo-hiv", 1_060), Err(TokenError::Expired { ago_s: 60 }));
    }

    #[test]
    fn a_token_for_another_room_is_refused_naming_both_rooms() {
        let t = issue(KEY, &claims());
        let e = verify(KEY, &t, "echo-tb", 10).unwrap_err();
        assert!(matches!(&e, TokenError::WrongRoom { token_room, room } if token_room == "echo-hiv" && room == "echo-tb"), "{e}");
    }

    #[test]
    fn altering_any_claim_or_using_another_key_breaks_the_signature() {
        let t = issue(KEY, &claims());
        assert_eq!(verify(b"another key", &t, "echo-hiv", 10), Err(TokenError::BadSignature));
        let forged_claims = Claims { role: Role::Host, expires: u64::MAX, ..claims() };
        let forged_body = issue(b"x", &forged_claims);
        let (_, tag) = t.rsplit_once('.').unwrap();
        let (body, _) = forged_body.rsplit_once('.').unwrap();
        assert_eq!(verify(KEY, &format!("{body}.{tag}"), "echo-hiv", 10), Err(TokenError::BadSignature));
    }

    #[test]
    fn garbage_never_panics_and_is_malformed() {
        for junk in ["", "lb1.", "lb1..", "lb1.!!.??", "hello", &"lb1.a".repeat(200)] {
            assert!(verify(KEY, junk, "r", 0).is_err(), "{junk}");
        }
    }
}
