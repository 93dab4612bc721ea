//! A small safe wrapper over libopus (through `opusic-sys`, which bundles
//! libopus 1.6 with the neural `dred` and `osce` features): the `opus` crate
//! hides decoder complexity (deep PLC, LACE, NoLACE) and DRED, which lowband needs.
//!
//! All audio in lowband is 16 kHz mono i16: wideband speech is what Opus at
//! 6–16 kbit/s can carry, and one rate everywhere means no resampling in the mixer.

use std::ffi::{c_int, CStr};
use std::ptr::NonNull;

use opusic_sys as ffi;

use crate::profile::{Bandwidth, Profile};

pub const SAMPLE_RATE: u32 = 16_000;
pub const SAMPLES_PER_MS: usize = 16;
/// The mixer's and the playout's grain: 20 ms.
pub const CHUNK_MS: u32 = 20;
pub const CHUNK: usize = CHUNK_MS as usize * SAMPLES_PER_MS;
/// Longest Opus packet duration (120 ms) in samples: the decode buffer size.
pub const MAX_FRAME_SAMPLES: usize = 120 * SAMPLES_PER_MS;
/// Big enough for any packet lowband produces (the worst case of a 60 ms frame at 64 kbit/s is ~480 bytes).
pub const MAX_PACKET_BYTES: usize = 1500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("libopus {call}: {}", describe(*.code))]
pub struct CodecError {
    pub call: &'static str,
    pub code: i32,
}

fn describe(code: i32) -> &'static str {
    // SAFETY: opus_strerror returns a pointer to a static string for any input.
    unsafe { CStr::from_ptr(ffi::opus_strerror(code)) }.to_str().unwrap_or("unknown error")
}

fn check(call: &'static str, ret: c_int) -> Result<usize, CodecError> {
    if ret < 0 {
        Err(CodecError { call, code: ret })
    } else {
        Ok(ret as usize)
    }
}

/// The libopus version string, e.g. "libopus 1.6.1". Peers compare it before using DRED.
pub fn libopus_version() -> &'static str {
    // SAFETY: returns a pointer to a static string.
    unsafe { CStr::from_ptr(ffi::opus_get_version_string()) }.to_str().unwrap_or("libopus ?")
}

/// Samples (at 16 kHz) of audio in an Opus packet, or an error if it is not a valid packet.
pub fn packet_samples(packet: &[u8]) -> Result<usize, CodecError> {
    let len = c_int::try_from(packet.len()).map_err(|_| CodecError { call: "packet_samples", code: ffi::OPUS_INVALID_PACKET })?;
    // SAFETY: the pointer and length describe a live slice.
    check("opus_packet_get_nb_samples", unsafe {
        ffi::opus_packet_get_nb_samples(packet.as_ptr(), len, SAMPLE_RATE as i32)
    })
}

/// The audio bandwidth an Opus packet was coded at (from its TOC byte).
pub fn packet_bandwidth(packet: &[u8]) -> Option<Bandwidth> {
    if packet.is_empty() {
        return None;
    }
    // SAFETY: reads only the first byte, which exists.
    match unsafe { ffi::opus_packet_get_bandwidth(packet.as_ptr()) } {
        ffi::OPUS_BANDWIDTH_NARROWBAND => Some(Bandwidth::Narrow),
        ffi::OPUS_BANDWIDTH_MEDIUMBAND => Some(Bandwidth::Medium),
        b if b >= ffi::OPUS_BANDWIDTH_WIDEBAND => Some(Bandwidth::Wide),
        _ => None,
    }
}

/// Whether an Opus packet carries in-band FEC (LBRR) for the frame before it.
pub fn packet_has_lbrr(packet: &[u8]) -> bool {
    let Ok(len) = i32::try_from(packet.len()) else { return false };
    // SAFETY: the pointer and length describe a live slice.
    len > 0 && unsafe { ffi::opus_packet_has_lbrr(packet.as_ptr(), len) } > 0
}

fn bandwidth_code(b: Bandwidth) -> c_int {
    match b {
        Bandwidth::Narrow => ffi::OPUS_BANDWIDTH_NARROWBAND,
        Bandwidth::Medium => ffi::OPUS_BANDWIDTH_MEDIUMBAND,
        Bandwidth::Wide => ffi::OPUS_BANDWIDTH_WIDEBAND,
    }
}

extern "C" {
    // libopus allocates with malloc and frees with free (opus_alloc/opus_free).
    fn malloc(size: usize) -> *mut std::ffi::c_void;
}

pub struct Encoder {
    st: NonNull<ffi::OpusEncoder>,
    frame_samples: usize,
    /// DRED depth asked for, in ms (0 = off).
    dred_ms: u32,
    /// The coded bandwidth set by [`Encoder::set_bandwidth`] (OPUS_AUTO = libopus chooses).
    bandwidth: c_int,
    /// Joins the two halves of a 120 ms packet (see [`Encoder::encode`]); made on first use.
    repacketizer: Option<NonNull<ffi::OpusRepacketizer>>,
}

/// The longest frame libopus codes as one (SILK's 60 ms).
const MAX_OPUS_FRAME_SAMPLES: usize = 60 * SAMPLES_PER_MS;
/// libopus's private `OPUS_SET_FORCE_MODE` (opus_private.h): pins SILK/hybrid/CELT.
const OPUS_SET_FORCE_MODE_REQUEST: c_int = 11002;

// SAFETY: the encoder state is plain memory owned by this value; libopus has no thread affinity.
unsafe impl Send for Encoder {}

impl Encoder {
    pub fn new(profile: &Profile) -> Result<Self, CodecError> {
        let mut err = 0;
        // SAFETY: valid arguments; the returned pointer is checked.
        let st = unsafe { ffi::opus_encoder_create(SAMPLE_RATE as i32, 1, ffi::OPUS_APPLICATION_VOIP, &mut err) };
        check("opus_encoder_create", err)?;
        let st = NonNull::new(st).ok_or(CodecError { call: "opus_encoder_create", code: ffi::OPUS_ALLOC_FAIL })?;
        let mut enc = Encoder { st, frame_samples: 0, dred_ms: 0, bandwidth: ffi::OPUS_AUTO, repacketizer: None };
        enc.configure(profile)?;
        Ok(enc)
    }

    fn ctl(&mut self, request: c_int, value: c_int) -> Result<(), CodecError> {
        // SAFETY: every request used here takes one opus_int32 argument.
        check("opus_encoder_ctl", unsafe { ffi::opus_encoder_ctl(self.st.as_ptr(), request, value) }).map(|_| ())
    }

    /// Applies a profile. Keeps the encoder's state, so a mid-call switch is seamless.
    pub fn configure(&mut self, p: &Profile) -> Result<(), CodecError> {
        self.ctl(ffi::OPUS_SET_BITRATE_REQUEST, p.bitrate_bps as c_int)?;
        self.ctl(ffi::OPUS_SET_MAX_BANDWIDTH_REQUEST, bandwidth_code(p.max_bandwidth))?;
        self.ctl(ffi::OPUS_SET_VBR_REQUEST, c_int::from(p.vbr))?;
        self.ctl(ffi::OPUS_SET_DTX_REQUEST, c_int::from(p.dtx))?;
        self.ctl(ffi::OPUS_SET_COMPLEXITY_REQUEST, c_int::from(p.complexity))?;
        self.ctl(ffi::OPUS_SET_SIGNAL_REQUEST, ffi::OPUS_SIGNAL_VOICE)?;
        self.ctl(ffi::OPUS_SET_INBAND_FEC_REQUEST, c_int::from(p.inband_fec))?;
        self.ctl(ffi::OPUS_SET_PACKET_LOSS_PERC_REQUEST, c_int::from(p.expected_loss_percent))?;
        self.frame_samples = p.frame_samples();
        Ok(())
    }

    pub fn set_bitrate(&mut self, bps: u32) -> Result<(), CodecError> {
        self.ctl(ffi::OPUS_SET_BITRATE_REQUEST, bps.clamp(500, 512_000) as c_int)
    }

    /// Forces the coded bandwidth (None = let libopus choose up to the profile's maximum).
    pub fn set_bandwidth(&mut self, b: Option<Bandwidth>) -> Result<(), CodecError> {
        self.bandwidth = b.map_or(ffi::OPUS_AUTO, bandwidth_code);
        self.ctl(ffi::OPUS_SET_BANDWIDTH_REQUEST, self.bandwidth)
    }

    /// Deep redundancy (DRED) depth in ms, 0 = off; libopus spends bits on it only above ~12 kbit/s.
    pub fn set_dred_ms(&mut self, ms: u32) -> Result<(), CodecError> {
        self.ctl(ffi::OPUS_SET_DRED_DURATION_REQUEST, (ms / 10).min(104) as c_int)?;
        self.dred_ms = ms;
        Ok(())
    }

    /// Loss the encoder should expect (drives LBRR and DRED budgets).
    pub fn set_expected_loss(&mut self, percent: u8) -> Result<(), CodecError> {
        self.ctl(ffi::OPUS_SET_PACKET_LOSS_PERC_REQUEST, c_int::from(percent.min(100)))
    }

    /// Changes the frame size (a valid Opus duration) between frames; the state is kept.
    pub fn set_frame_samples(&mut self, samples: usize) {
        self.frame_samples = samples;
    }

    /// Samples one [`Encoder::encode`] call consumes.
    pub fn frame_samples(&self) -> usize {
        self.frame_samples
    }

    /// Encodes exactly one frame of [`Encoder::frame_samples`] samples.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        assert_eq!(pcm.len(), self.frame_samples, "encode takes exactly one frame");
        if pcm.len() > MAX_OPUS_FRAME_SAMPLES && self.dred_ms > 0 {
            return self.encode_halves(pcm, out);
        }
        self.encode_raw(pcm, out)
    }

    /// A 120 ms packet with DRED, as two 60 ms encodes joined into one packet.
    /// libopus's own 120 ms packet caps its first 60 ms frame so tightly that
    /// SILK often leaves no room for the DRED (measured: 45 % of 3g's 120 ms
    /// speech packets carried none). Coded alone, each half carries DRED; the
    /// second half's is dropped, the first's reaches further back.
    fn encode_halves(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        let (first, second) = pcm.split_at(pcm.len() / 2);
        let mut a = [0u8; MAX_PACKET_BYTES];
        let mut b = [0u8; MAX_PACKET_BYTES];
        let na = self.encode_raw(first, &mut a)?;
        // Frames of one packet share mode and bandwidth (the TOC), as libopus's own multiframe forces.
        let config = a[0] >> 3;
        let mode = match config {
            0..=11 => 1000,
            12..=15 => 1001,
            _ => 1002,
        };
        // SAFETY: a holds a packet of na >= 1 bytes.
        let bw = unsafe { ffi::opus_packet_get_bandwidth(a.as_ptr()) };
        self.ctl(OPUS_SET_FORCE_MODE_REQUEST, mode)?;
        self.ctl(ffi::OPUS_SET_BANDWIDTH_REQUEST, bw)?;
        let nb = self.encode_raw(second, &mut b);
        self.ctl(OPUS_SET_FORCE_MODE_REQUEST, ffi::OPUS_AUTO)?;
        self.ctl(ffi::OPUS_SET_BANDWIDTH_REQUEST, self.bandwidth)?;
        let nb = nb?;
        // SAFETY: b holds a packet of nb bytes; unpad drops its padding, where DRED rides.
        let nb = check("opus_packet_unpad", unsafe { ffi::opus_packet_unpad(b.as_mut_ptr(), nb as i32) })?;
        let rp = match self.repacketizer {
            Some(rp) => rp,
            None => {
                // SAFETY: plain constructor; the pointer is checked.
                let rp = NonNull::new(unsafe { ffi::opus_repacketizer_create() }).ok_or(CodecError { call: "opus_repacketizer_create", code: ffi::OPUS_ALLOC_FAIL })?;
                self.repacketizer = Some(rp);
                rp
            }
        };
        // SAFETY: rp is live; a and b outlive the repacketizer's use of them (until out returns).
        unsafe {
            ffi::opus_repacketizer_init(rp.as_ptr());
            check("opus_repacketizer_cat", ffi::opus_repacketizer_cat(rp.as_ptr(), a.as_ptr(), na as i32))?;
            if ffi::opus_repacketizer_cat(rp.as_ptr(), b.as_ptr(), nb as i32) != ffi::OPUS_OK {
                // Cannot happen with mode and bandwidth pinned; if it did, the half goes as an empty frame.
                let empty = [a[0] & 0xfc];
                check("opus_repacketizer_cat", ffi::opus_repacketizer_cat(rp.as_ptr(), empty.as_ptr(), 1))?;
            }
            check("opus_repacketizer_out", ffi::opus_repacketizer_out(rp.as_ptr(), out.as_mut_ptr(), out.len().min(i32::MAX as usize) as i32))
        }
    }

    fn encode_raw(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        // SAFETY: pcm holds one frame's samples; out is writable for its length.
        check("opus_encode", unsafe {
            ffi::opus_encode(
                self.st.as_ptr(),
                pcm.as_ptr(),
                pcm.len() as c_int,
                out.as_mut_ptr(),
                out.len().min(i32::MAX as usize) as i32,
            )
        })
    }

    /// A second encoder in exactly this one's state, so a stream can fork
    /// (a listener who starts talking takes over the shared mix's encoder
    /// state) without the decoder hearing a reset. libopus keeps an encoder in
    /// one flat allocation whose only pointers go to static tables (modes,
    /// compiled-in DNN weights), so a byte copy is a valid encoder.
    pub fn try_clone(&self) -> Result<Self, CodecError> {
        // SAFETY: returns the byte size of a mono encoder's single allocation.
        let size = unsafe { ffi::opus_encoder_get_size(1) };
        let size = usize::try_from(size).map_err(|_| CodecError { call: "opus_encoder_get_size", code: ffi::OPUS_INTERNAL_ERROR })?;
        // SAFETY: libopus frees encoders with free(), so the copy is malloc'ed;
        // the source is a live encoder of exactly `size` bytes.
        let st = unsafe {
            let p = malloc(size) as *mut ffi::OpusEncoder;
            if !p.is_null() {
                std::ptr::copy_nonoverlapping(self.st.as_ptr() as *const u8, p as *mut u8, size);
            }
            p
        };
        let st = NonNull::new(st).ok_or(CodecError { call: "malloc", code: ffi::OPUS_ALLOC_FAIL })?;
        Ok(Encoder { st, frame_samples: self.frame_samples, dred_ms: self.dred_ms, bandwidth: self.bandwidth, repacketizer: None })
    }

    /// True while the encoder is in discontinuous transmission (silence, nothing worth sending).
    pub fn in_dtx(&mut self) -> bool {
        let mut v: c_int = 0;
        // SAFETY: OPUS_GET_IN_DTX writes one opus_int32 through the pointer.
        let ret = unsafe { ffi::opus_encoder_ctl(self.st.as_ptr(), ffi::OPUS_GET_IN_DTX_REQUEST, &mut v as *mut c_int) };
        ret == ffi::OPUS_OK && v != 0
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_encoder_create / opus_repacketizer_create, destroyed once.
        unsafe {
            ffi::opus_encoder_destroy(self.st.as_ptr());
            if let Some(rp) = self.repacketizer {
                ffi::opus_repacketizer_destroy(rp.as_ptr());
            }
        }
    }
}

pub struct Decoder {
    st: NonNull<ffi::OpusDecoder>,
}

// SAFETY: as for Encoder.
unsafe impl Send for Decoder {}

impl Decoder {
    /// `complexity` ≥ 5 turns on deep PLC, 6 LACE, ≥ 7 NoLACE (wideband SILK only).
    pub fn new(complexity: u8) -> Result<Self, CodecError> {
        let mut err = 0;
        // SAFETY: valid arguments; the returned pointer is checked.
        let st = unsafe { ffi::opus_decoder_create(SAMPLE_RATE as i32, 1, &mut err) };
        check("opus_decoder_create", err)?;
        let st = NonNull::new(st).ok_or(CodecError { call: "opus_decoder_create", code: ffi::OPUS_ALLOC_FAIL })?;
        let mut dec = Decoder { st };
        dec.set_complexity(complexity)?;
        Ok(dec)
    }

    pub fn set_complexity(&mut self, complexity: u8) -> Result<(), CodecError> {
        // SAFETY: OPUS_SET_COMPLEXITY takes one opus_int32.
        check("opus_decoder_ctl", unsafe {
            ffi::opus_decoder_ctl(self.st.as_ptr(), ffi::OPUS_SET_COMPLEXITY_REQUEST, c_int::from(complexity.min(10)))
        })
        .map(|_| ())
    }

    fn raw(&mut self, data: Option<&[u8]>, out: &mut [i16], fec: bool) -> Result<usize, CodecError> {
        let (ptr, len) = match data {
            Some(d) => (d.as_ptr(), c_int::try_from(d.len()).unwrap_or(c_int::MAX)),
            None => (std::ptr::null(), 0),
        };
        // SAFETY: ptr/len describe a live slice or are null/0 (loss); out is writable for its length.
        check("opus_decode", unsafe {
            ffi::opus_decode(self.st.as_ptr(), ptr, len, out.as_mut_ptr(), out.len() as c_int, c_int::from(fec))
        })
    }

    /// Decodes a packet into `out` (which must hold [`MAX_FRAME_SAMPLES`]); returns samples written.
    pub fn decode(&mut self, packet: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        if packet.is_empty() {
            return Err(CodecError { call: "opus_decode", code: ffi::OPUS_INVALID_PACKET });
        }
        self.raw(Some(packet), out, false)
    }

    /// Conceals `out.len()` lost samples (a multiple of 2.5 ms): neural PLC at complexity ≥ 5.
    pub fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        self.raw(None, out, false)
    }

    /// Recovers the `out.len()` samples lost just before `next` from its in-band FEC (LBRR);
    /// falls back to concealment inside libopus when `next` has none.
    pub fn decode_fec(&mut self, next: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        self.raw(Some(next), out, true)
    }
}

impl Decoder {
    /// Rebuilds `out.len()` samples that ended `offset` samples before the start
    /// of the packet `dred` was parsed from, from its deep redundancy.
    pub fn decode_dred(&mut self, dred: &Dred, offset: usize, out: &mut [i16]) -> Result<usize, CodecError> {
        let offset = c_int::try_from(offset).map_err(|_| CodecError { call: "opus_decoder_dred_decode", code: ffi::OPUS_BAD_ARG })?;
        // SAFETY: dred is a live, parsed DRED state; out is writable for its length.
        check("opus_decoder_dred_decode", unsafe {
            ffi::opus_decoder_dred_decode(self.st.as_ptr(), dred.dred.as_ptr(), offset, out.as_mut_ptr(), out.len() as c_int)
        })
    }
}

/// Deep redundancy (DRED) parsed from one packet: up to ~1 s of the audio
/// before it, as a neural vocoder's features. Only meaningful when the sender
/// runs the same libopus.
pub struct Dred {
    decoder: NonNull<ffi::OpusDREDDecoder>,
    dred: NonNull<ffi::OpusDRED>,
    /// Samples of history the last parsed packet covers (0 = none).
    available: usize,
}

// SAFETY: as for Encoder.
unsafe impl Send for Dred {}

impl Dred {
    pub fn new() -> Result<Self, CodecError> {
        let mut err = 0;
        // SAFETY: valid arguments; pointers are checked.
        let decoder = unsafe { ffi::opus_dred_decoder_create(&mut err) };
        check("opus_dred_decoder_create", err)?;
        let decoder = NonNull::new(decoder).ok_or(CodecError { call: "opus_dred_decoder_create", code: ffi::OPUS_ALLOC_FAIL })?;
        // SAFETY: as above.
        let dred = unsafe { ffi::opus_dred_alloc(&mut err) };
        let dred = match (check("opus_dred_alloc", err), NonNull::new(dred)) {
            (Ok(_), Some(d)) => d,
            (r, _) => {
                // SAFETY: created just above, destroyed once.
                unsafe { ffi::opus_dred_decoder_destroy(decoder.as_ptr()) };
                return Err(r.err().unwrap_or(CodecError { call: "opus_dred_alloc", code: ffi::OPUS_ALLOC_FAIL }));
            }
        };
        Ok(Dred { decoder, dred, available: 0 })
    }

    /// Parses the DRED of `packet`; returns the samples of history it covers (0 = none).
    pub fn parse(&mut self, packet: &[u8]) -> usize {
        self.available = 0;
        let Ok(len) = i32::try_from(packet.len()) else { return 0 };
        if len == 0 {
            return 0;
        }
        let mut end: c_int = 0;
        // SAFETY: states are live; packet/len describe a live slice.
        let ret = unsafe {
            ffi::opus_dred_parse(self.decoder.as_ptr(), self.dred.as_ptr(), packet.as_ptr(), len, SAMPLE_RATE as i32, SAMPLE_RATE as i32, &mut end, 0)
        };
        self.available = usize::try_from(ret).unwrap_or(0);
        self.available
    }

    pub fn available(&self) -> usize {
        self.available
    }
}

impl Drop for Dred {
    fn drop(&mut self) {
        // SAFETY: both created in Dred::new, destroyed once.
        unsafe {
            ffi::opus_dred_free(self.dred.as_ptr());
            ffi::opus_dred_decoder_destroy(self.decoder.as_ptr());
        }
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_decoder_create, destroyed once.
        unsafe { ffi::opus_decoder_destroy(self.st.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize) -> Vec<i16> {
        (0..n).map(|i| ((i as f32 * 0.07).sin() * 8000.0) as i16).collect()
    }

    #[test]
    fn a_frame_round_trips_at_the_profile_duration() {
        let p = Profile::default();
        let mut enc = Encoder::new(&p).unwrap();
        let mut dec = Decoder::new(p.decoder_complexity).unwrap();
        let mut pkt = [0u8; MAX_PACKET_BYTES];
        let mut pcm = [0i16; MAX_FRAME_SAMPLES];
        let n = enc.encode(&tone(p.frame_samples()), &mut pkt).unwrap();
        assert_eq!(packet_samples(&pkt[..n]).unwrap(), p.frame_samples());
        assert_eq!(dec.decode(&pkt[..n], &mut pcm).unwrap(), p.frame_samples());
        assert_eq!(dec.conceal(&mut pcm[..CHUNK]).unwrap(), CHUNK);
    }

    #[test]
    fn a_cloned_encoder_continues_exactly_like_the_original() {
        let p = Profile::default();
        let mut a = Encoder::new(&p).unwrap();
        let speech = tone(p.frame_samples() * 4);
        let mut pa = [0u8; MAX_PACKET_BYTES];
        let mut pb = [0u8; MAX_PACKET_BYTES];
        let frames: Vec<&[i16]> = speech.chunks(p.frame_samples()).collect();
        a.encode(frames[0], &mut pa).unwrap();
        let mut b = a.try_clone().unwrap();
        for f in &frames[1..] {
            let na = a.encode(f, &mut pa).unwrap();
            let nb = b.encode(f, &mut pb).unwrap();
            assert_eq!(pa[..na], pb[..nb]);
        }
        drop(a);
        assert!(b.encode(frames[0], &mut pb).unwrap() > 0);
    }

    #[test]
    fn garbage_is_an_error_not_a_crash() {
        let mut dec = Decoder::new(7).unwrap();
        let mut pcm = [0i16; MAX_FRAME_SAMPLES];
        assert!(dec.decode(&[], &mut pcm).is_err());
        assert!(packet_samples(&[0xff, 0xff]).is_err());
        for seed in 0u32..2000 {
            let len = (seed % 40) as usize + 1;
            let junk: Vec<u8> = (0..len).map(|i| (seed.wrapping_mul(2_654_435_761).wrapping_add(i as u32 * 97) >> 13) as u8).collect();
            let _ = dec.decode(&junk, &mut pcm);
        }
    }
}
