use std::fmt;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// SHA-256 of a certificate's DER, as 64 lowercase hex digits.
pub fn fingerprint(cert_der: &[u8]) -> String {
    hex::encode(Sha256::digest(cert_der))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a fingerprint is 64 hex digits (colons allowed), got {0:?}")]
pub struct FingerprintError(pub String);

/// Accepts `ab:cd:…` or `abcd…`, any case; returns the canonical form.
pub fn parse_fingerprint(s: &str) -> Result<String, FingerprintError> {
    let hexits: String = s.chars().filter(|c| *c != ':').collect::<String>().to_ascii_lowercase();
    if hexits.len() == 64 && hexits.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(hexits)
    } else {
        Err(FingerprintError(s.to_string()))
    }
}

/// Trusts the server certificate whose SHA-256 is `expected`, or — with no
/// expectation (trust on first use) — any, remembering what it saw so the
/// caller can store it. Handshake signatures are always verified.
pub struct FingerprintVerifier {
    expected: Option<String>,
    seen: Mutex<Option<String>>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for FingerprintVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FingerprintVerifier").field("expected", &self.expected).finish()
    }
}

impl FingerprintVerifier {
    pub fn new(expected: Option<String>, provider: Arc<CryptoProvider>) -> Self {
        FingerprintVerifier { expected, seen: Mutex::new(None), provider }
    }

    /// The fingerprint the server presented, once it has.
    pub fn seen(&self) -> Option<String> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl ServerCertVerifier for FingerprintVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = fingerprint(end_entity);
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(got.clone());
        match &self.expected {
            Some(want) if *want != got => Err(rustls::Error::General(format!(
                "gateway certificate fingerprint {got} does not match the trusted {want}"
            ))),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_with_or_without_colons() {
        let plain = "ab".repeat(32);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(parse_fingerprint(&plain).unwrap(), plain);
        assert_eq!(parse_fingerprint(&colons).unwrap(), plain);
        assert!(parse_fingerprint("abc").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
    }
}
