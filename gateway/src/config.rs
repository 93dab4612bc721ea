//! Gateway configuration: built-in defaults, then an optional TOML file
//! (unknown keys are an error, so a typo never silently does nothing), then
//! command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// Where the certificate (and later keys, attendance, recordings) live.
    pub state_dir: PathBuf,
    /// Start delay of each talker's adaptive receive buffer, in milliseconds.
    pub jitter_target_ms: u64,
    pub max_room_size: usize,
    /// Refuse joins without a valid token (`lowband-gateway token`). Off:
    /// open rooms, whose first participant becomes host (for quick tests).
    pub require_tokens: bool,
    /// TCP address of `/metrics` and `/health`; none: not served.
    pub metrics_listen: Option<SocketAddr>,
    /// Where each session's mix is recorded (WAV + Ogg Opus); none: not recorded.
    pub record_dir: Option<PathBuf>,
    /// Attendance journals [default: <state_dir>/attendance].
    pub attendance_dir: Option<PathBuf>,
    /// A room empty this long ends its session (attendance file and recording).
    pub session_gap_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "0.0.0.0:4433".parse().expect("valid literal"),
            state_dir: default_state_dir(),
            jitter_target_ms: 80,
            max_room_size: 500,
            require_tokens: false,
            metrics_listen: None,
            record_dir: None,
            attendance_dir: None,
            session_gap_secs: 600,
        }
    }
}

/// `$LOWBAND_STATE_DIR`, else the user's state directory, else `./lowband-gateway-state`.
pub fn default_state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("LOWBAND_STATE_DIR") {
        return PathBuf::from(d);
    }
    dirs::state_dir().map(|d| d.join("lowband-gateway")).unwrap_or_else(|| PathBuf::from("lowband-gateway-state"))
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {source}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
}

impl Config {
    pub fn from_toml_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.into(), source: Box::new(source) })
    }

    pub fn attendance_dir(&self) -> PathBuf {
        self.attendance_dir.clone().unwrap_or_else(|| self.state_dir.join("attendance"))
    }

    pub fn jitter_target(&self) -> Duration {
        Duration::from_millis(self.jitter_target_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_key_is_rejected() {
        let err = toml::from_str::<Config>("listen = \"127.0.0.1:1\"\njiter_target_ms = 5\n").unwrap_err();
        assert!(err.to_string().contains("jiter_target_ms"), "{err}");
    }

    #[test]
    fn the_sample_config_in_deploy_parses() {
        let c: Config = toml::from_str(include_str!("../../deploy/gateway.toml")).unwrap();
        assert!(c.require_tokens && c.metrics_listen.is_some() && c.record_dir.is_some());
    }

    #[test]
    fn keys_not_given_keep_their_defaults() {
        let c: Config = toml::from_str("jitter_target_ms = 120\n").unwrap();
        assert_eq!(c.jitter_target_ms, 120);
        assert_eq!(c.listen, Config::default().listen);
    }
}
