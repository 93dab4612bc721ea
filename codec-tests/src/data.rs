//! The shared test material (speech, traces, presets) lives outside the repo,
//! in `$LOWBAND_DATA`, default `../shared` from the workspace root.

use std::path::{Path, PathBuf};

/// The shared material directory: `$LOWBAND_DATA`, else `../shared` next to the workspace.
pub fn shared_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("LOWBAND_DATA") {
        return PathBuf::from(d);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

/// A file under the shared directory, with a clear message when it is missing.
pub fn shared_file(relative: &str) -> Result<PathBuf, String> {
    let p = shared_dir().join(relative);
    if p.exists() {
        Ok(p)
    } else {
        Err(format!(
            "test material {} is missing: set LOWBAND_DATA to the shared/ directory (now {})",
            relative,
            shared_dir().display()
        ))
    }
}

/// Reads a 16 kHz mono 16-bit WAV (what `shared/speech` holds).
pub fn read_speech(path: &Path) -> Result<Vec<i16>, String> {
    let mut r = hound::WavReader::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let s = r.spec();
    if s.sample_rate != 16_000 || s.channels != 1 || s.bits_per_sample != 16 {
        return Err(format!("{}: need 16 kHz mono 16-bit, got {} Hz × {} × {} bit", path.display(), s.sample_rate, s.channels, s.bits_per_sample));
    }
    r.samples::<i16>().collect::<Result<_, _>>().map_err(|e| format!("{}: {e}", path.display()))
}
