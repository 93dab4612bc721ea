//! Records a room's mix to WAV (16 kHz mono, for archiving and editing) and
//! to Ogg Opus (~2 kB/s, small enough to send to a spoke over 2G). Both are
//! made playable on disk every second, so after a crash (even `kill -9`) they
//! play up to at most a second before it.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use lowband_core::codec::{Encoder, CHUNK, MAX_PACKET_BYTES, SAMPLE_RATE};
use lowband_core::profile::{Bandwidth, Profile};

use crate::ogg::{self, OggWriter, GRANULE_RATE};

/// Chunks (20 ms) between the points where both files are complete on disk.
const SYNC_EVERY_CHUNKS: u64 = 50;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Wav { path: PathBuf, source: hound::Error },
    #[error("Opus encoder: {0}")]
    Codec(#[from] lowband_core::codec::CodecError),
}

/// The recording profile: speech at 16 kbit/s wideband (PESQ-WB ≈ 3.9 one pass).
fn profile() -> Profile {
    Profile { name: "recording".into(), frame_ms: 20, dtx: false, complexity: 5, max_bandwidth: Bandwidth::Wide, ..Profile::default() }
}

pub struct Recorder {
    wav: hound::WavWriter<BufWriter<File>>,
    ogg: OggWriter<File>,
    encoder: Encoder,
    chunks: u64,
    pub wav_path: PathBuf,
    pub ogg_path: PathBuf,
}

impl Recorder {
    /// Creates `<dir>/<session>.wav` and `<dir>/<session>.opus`.
    pub fn create(dir: &Path, session: &str, title: &str) -> Result<Recorder, RecordError> {
        std::fs::create_dir_all(dir).map_err(|source| RecordError::Io { path: dir.into(), source })?;
        let wav_path = dir.join(format!("{session}.wav"));
        let ogg_path = dir.join(format!("{session}.opus"));
        let spec = hound::WavSpec { channels: 1, sample_rate: SAMPLE_RATE, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
        let wav = hound::WavWriter::create(&wav_path, spec).map_err(|source| RecordError::Wav { path: wav_path.clone(), source })?;
        let io = |source| RecordError::Io { path: ogg_path.clone(), source };
        let file = File::create(&ogg_path).map_err(io)?;
        let serial = lowband_core::rng::Rng::new(session.bytes().fold(0u64, |h, b| h.wrapping_mul(31) ^ u64::from(b))).next_u64() as u32;
        let tags = ogg::opus_tags(concat!("lowband-gateway ", env!("CARGO_PKG_VERSION")), &[format!("TITLE={title}")]);
        let ogg = OggWriter::new(file, serial, &ogg::opus_head(SAMPLE_RATE), &tags).map_err(io)?;
        Ok(Recorder { wav, ogg, encoder: Encoder::new(&profile())?, chunks: 0, wav_path, ogg_path })
    }

    /// Appends 20 ms of the mix.
    pub fn push(&mut self, pcm: &[i16]) -> Result<(), RecordError> {
        debug_assert_eq!(pcm.len(), CHUNK);
        let wav_err = |source| RecordError::Wav { path: self.wav_path.clone(), source };
        let mut w = self.wav.get_i16_writer(pcm.len() as u32);
        for &s in pcm {
            w.write_sample(s);
        }
        w.flush().map_err(wav_err)?;
        let mut packet = vec![0u8; MAX_PACKET_BYTES];
        let n = self.encoder.encode(pcm, &mut packet)?;
        packet.truncate(n);
        self.chunks += 1;
        let granule = self.chunks * CHUNK as u64 * GRANULE_RATE / u64::from(SAMPLE_RATE);
        let ogg_err = |source| RecordError::Io { path: self.ogg_path.clone(), source };
        self.ogg.push(packet, granule).map_err(ogg_err)?;
        if self.chunks % SYNC_EVERY_CHUNKS == 0 {
            self.sync()?;
        }
        Ok(())
    }

    /// Makes both files complete and playable as they stand.
    pub fn sync(&mut self) -> Result<(), RecordError> {
        self.wav.flush().map_err(|source| RecordError::Wav { path: self.wav_path.clone(), source })?;
        self.ogg.flush_page().map_err(|source| RecordError::Io { path: self.ogg_path.clone(), source })
    }

    pub fn seconds(&self) -> f64 {
        self.chunks as f64 * CHUNK as f64 / f64::from(SAMPLE_RATE)
    }

    pub fn finish(self) -> Result<(), RecordError> {
        self.wav.finalize().map_err(|source| RecordError::Wav { path: self.wav_path.clone(), source })?;
        self.ogg.finish().map_err(|source| RecordError::Io { path: self.ogg_path.clone(), source })?;
        Ok(())
    }
}
