//! Which gateways this user trusts: pinned by `--fingerprint`, or trusted on
//! first use and remembered in `known_gateways` in the config directory
//! (one `address fingerprint` line each), like ssh's known_hosts.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// `$LOWBAND_CONFIG_DIR`, else the user's config dir + `lowband`.
pub fn config_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("LOWBAND_CONFIG_DIR") {
        return PathBuf::from(d);
    }
    dirs::config_dir().unwrap_or_else(|| PathBuf::from(".")).join("lowband")
}

pub struct KnownGateways {
    path: PathBuf,
}

impl KnownGateways {
    pub fn in_dir(dir: &Path) -> Self {
        KnownGateways { path: dir.join("known_gateways") }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The remembered fingerprint for `address`; unreadable files count as empty.
    pub fn get(&self, address: &str) -> Option<String> {
        let text = fs::read_to_string(&self.path).ok()?;
        text.lines().filter_map(|l| l.split_once(' ')).find(|(a, _)| *a == address).map(|(_, f)| f.trim().to_string())
    }

    /// Remembers `address` → `fingerprint`, replacing an older entry.
    pub fn remember(&self, address: &str, fingerprint: &str) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir)?;
        }
        let old = fs::read_to_string(&self.path).unwrap_or_default();
        let mut text: String = old
            .lines()
            .filter(|l| l.split_once(' ').is_none_or(|(a, _)| a != address))
            .map(|l| format!("{l}\n"))
            .collect();
        text.push_str(&format!("{address} {fingerprint}\n"));
        // Unique per process: two clients starting at once must not share it.
        let tmp = self.path.with_extension(format!("tmp.{}", std::process::id()));
        let mut f = fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembering_replaces_only_that_gateway() {
        let dir = std::env::temp_dir().join(format!("lowband-known-{}", std::process::id()));
        let known = KnownGateways::in_dir(&dir);
        known.remember("hub:4433", "aa").unwrap();
        known.remember("other:4433", "bb").unwrap();
        known.remember("hub:4433", "cc").unwrap();
        assert_eq!(known.get("hub:4433").as_deref(), Some("cc"));
        assert_eq!(known.get("other:4433").as_deref(), Some("bb"));
        assert_eq!(known.get("nobody:1"), None);
        fs::remove_dir_all(dir).unwrap();
    }
}
