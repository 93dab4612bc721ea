//! The join-token key: 32 random bytes made on first use and kept (mode 0600)
//! in the state directory beside the certificate. Deleting it revokes every
//! token issued so far.

use std::fs;
use std::path::Path;

use lowband_core::token::{self, Claims};

use crate::cert::{io, write_atomically, CertError};

const KEY_FILE: &str = "token-key";

pub fn load_or_create(state_dir: &Path) -> Result<Vec<u8>, CertError> {
    fs::create_dir_all(state_dir).map_err(io(state_dir))?;
    let path = state_dir.join(KEY_FILE);
    match fs::read(&path) {
        Ok(k) if k.len() >= 32 => return Ok(k),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&path)(e)),
    }
    let mut key = vec![0u8; 32];
    getrandom::getrandom(&mut key).map_err(|e| io(&path)(std::io::Error::other(e.to_string())))?;
    write_atomically(&path, &key, true)?;
    Ok(key)
}

/// Signs a token with the gateway's key.
pub fn issue(state_dir: &Path, claims: &Claims) -> Result<String, CertError> {
    Ok(token::issue(&load_or_create(state_dir)?, claims))
}
