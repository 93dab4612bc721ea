//! Pre-encoded talker audio: the shared speech samples encoded once, the way
//! a real client's uplink would (default profile, level byte), so a thousand
//! synthetic talkers cost the generator a header patch per packet, not an encode.

use lowband_codec_tests::data::{read_speech, shared_file};
use lowband_core::codec::CHUNK;
use lowband_core::profile::Profile;
use lowband_core::stream::SendStream;
use lowband_core::wire::AudioPacket;

const FILES: [&str; 3] = ["speech/synthetic-case-presentation-16k.wav", "speech/synthetic-hub-reply-16k.wav", "speech/arctic_a0007.wav"];

/// One uplink frame: the datagram to send, or `None` where the encoder was in DTX.
pub struct Frame {
    pub datagram: Option<Vec<u8>>,
    /// The level byte's voice-activity bit.
    pub voice: bool,
}

pub struct Speech {
    pub frames: Vec<Frame>,
    pub frame_ms: u32,
}

/// Encodes the shared speech files back to back, each followed by a second of silence.
pub fn load() -> anyhow::Result<Speech> {
    let profile = Profile::default();
    let mut send = SendStream::new(profile.clone(), None, true)?;
    let chunks_per_frame = profile.frame_ms as usize / 20;
    let mut frames = Vec::new();
    let mut pending = 0;
    for f in FILES {
        let mut pcm = read_speech(&shared_file(f).map_err(anyhow::Error::msg)?).map_err(anyhow::Error::msg)?;
        pcm.resize(pcm.len().next_multiple_of(CHUNK) + 16_000, 0);
        for chunk in pcm.chunks(CHUNK) {
            let out = send.push_chunk(chunk)?;
            pending += 1;
            if pending == chunks_per_frame {
                pending = 0;
                let voice = out.as_deref().and_then(|d| AudioPacket::decode(d).ok()).and_then(|p| p.header.level).is_some_and(|l| l.voice);
                frames.push(Frame { datagram: out, voice });
            }
        }
    }
    Ok(Speech { frames, frame_ms: profile.frame_ms })
}
