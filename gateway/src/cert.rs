//! The gateway's identity: a self-signed ECDSA P-256 certificate made on first
//! start and kept in the state directory. Clients trust it by fingerprint.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub struct Identity {
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
    /// SHA-256 of the certificate, hex.
    pub fingerprint: String,
    /// True when this start created it.
    pub created: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("state directory {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("generating the certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CertError + '_ {
    move |source| CertError::Io { path: path.to_path_buf(), source }
}

/// Writes via a temporary file and rename, so a crash never leaves half a key.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8], private: bool) -> Result<(), CertError> {
    let tmp = path.with_extension("tmp");
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = opts.open(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

pub fn load_or_create(state_dir: &Path) -> Result<Identity, CertError> {
    fs::create_dir_all(state_dir).map_err(io(state_dir))?;
    let cert_path = state_dir.join("gateway-cert.der");
    let key_path = state_dir.join("gateway-key.der");
    let created = !(cert_path.exists() && key_path.exists());
    if created {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let params = rcgen::CertificateParams::new(vec!["lowband-gateway".to_string(), "localhost".to_string()])?;
        let cert = params.self_signed(&key)?;
        write_atomically(&key_path, &key.serialize_der(), true)?;
        write_atomically(&cert_path, cert.der(), false)?;
    }
    let cert = CertificateDer::from(fs::read(&cert_path).map_err(io(&cert_path))?);
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(fs::read(&key_path).map_err(io(&key_path))?));
    let fingerprint = lowband_quic::fingerprint(&cert);
    Ok(Identity { cert, key, fingerprint, created })
}
