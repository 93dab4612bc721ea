//! Gateway configuration: built-in defaults, then an optional TOML file
//! (unknown keys are an error, so a typo never silently does nothing), then
//! command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lowband_core::gateway::{default_tiers, DEFAULT_TIER};
use lowband_core::profile::Profile;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// Where the certificate (and later keys, attendance, recordings) live.
    pub state_dir: PathBuf,
    /// Receive buffer delay for each talker, in milliseconds.
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
    /// Downlink tiers offered, by name (see `lowband_core::gateway::default_tiers`):
    /// each costs one shared encode per room while someone hears it.
    pub tiers: Vec<String>,
    /// The tier a new participant hears until its link says otherwise.
    pub default_tier: String,
    /// Most talkers mixed at once per room (the presenter takes a slot).
    pub max_talkers: usize,
    /// A talker keeps its slot this long after its last speech.
    pub talker_hangover_ms: u64,
    /// Mixer engines (rooms are spread over them by name); 0 = one per core.
    pub engines: usize,
    /// Talkers' uplink decoder complexity (≥ 5 deep PLC, 6 LACE, 7 NoLACE).
    pub decoder_complexity: u8,
    /// Overrides the tiers' encoder complexity (0-10): lower is cheaper per mix encode.
    pub encoder_complexity: Option<u8>,
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
            tiers: default_tiers().into_iter().map(|p| p.name).collect(),
            default_tier: DEFAULT_TIER.into(),
            max_talkers: 3,
            talker_hangover_ms: 600,
            engines: 0,
            decoder_complexity: 5,
            encoder_complexity: None,
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
    #[error("unknown downlink tier {0:?} (known: {1})")]
    UnknownTier(String, String),
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

    /// The configured tiers as profiles, and the default tier's index.
    pub fn tier_profiles(&self) -> Result<(Vec<Profile>, usize), ConfigError> {
        let known = default_tiers();
        let names = || known.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ");
        let find = |name: &str| known.iter().find(|p| p.name == name).cloned().ok_or_else(|| ConfigError::UnknownTier(name.into(), names()));
        let mut tiers = if self.tiers.is_empty() { known.clone() } else { self.tiers.iter().map(|n| find(n)).collect::<Result<Vec<_>, _>>()? };
        if let Some(c) = self.encoder_complexity {
            tiers.iter_mut().for_each(|t| t.complexity = c.min(10));
        }
        let default = tiers.iter().position(|p| p.name == self.default_tier).ok_or_else(|| ConfigError::UnknownTier(self.default_tier.clone(), self.tiers.join(", ")))?;
        Ok((tiers, default))
    }

    /// Engines to run: the configured number, or one per core.
    pub fn engine_count(&self) -> usize {
        match self.engines {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
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
    fn tiers_are_chosen_by_name_and_an_unknown_one_is_an_error() {
        let c: Config = toml::from_str("tiers = [\"2g\"]\ndefault_tier = \"2g\"\nmax_talkers = 2\n").unwrap();
        let (tiers, default) = c.tier_profiles().unwrap();
        assert_eq!((tiers.len(), tiers[default].name.as_str()), (1, "2g"));
        let c: Config = toml::from_str("tiers = [\"5g\"]\n").unwrap();
        assert!(matches!(c.tier_profiles(), Err(ConfigError::UnknownTier(..))));
    }

    #[test]
    fn keys_not_given_keep_their_defaults() {
        let c: Config = toml::from_str("jitter_target_ms = 120\n").unwrap();
        assert_eq!(c.jitter_target_ms, 120);
        assert_eq!(c.listen, Config::default().listen);
    }
}
