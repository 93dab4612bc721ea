//! A minimal Ogg Opus writer (RFC 3533 pages, RFC 7845 headers) and the
//! reader the tests use to check what it wrote. Pages are written whole, so a
//! killed process leaves a file that plays up to its last complete page.

use std::io::Write;

/// Opus granule positions always count 48 kHz samples (RFC 7845 §4).
pub const GRANULE_RATE: u64 = 48_000;
/// Encoder delay at 48 kHz for 16 kHz VOIP (libopus lookahead: 6.5 ms).
pub const PRE_SKIP: u16 = 312;

const BOS: u8 = 0x02;
const EOS: u8 = 0x04;

fn crc_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    for (i, e) in t.iter_mut().enumerate() {
        let mut r = (i as u32) << 24;
        for _ in 0..8 {
            r = if r & 0x8000_0000 != 0 { (r << 1) ^ 0x04c1_1db7 } else { r << 1 };
        }
        *e = r;
    }
    t
}

/// Ogg's CRC-32: polynomial 0x04c11db7, not reflected, zero start, no final xor.
pub fn crc(bytes: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let t = TABLE.get_or_init(crc_table);
    bytes.iter().fold(0u32, |c, &b| (c << 8) ^ t[((c >> 24) as u8 ^ b) as usize])
}

pub fn opus_head(input_rate: u32) -> Vec<u8> {
    let mut h = b"OpusHead".to_vec();
    h.push(1); // version
    h.push(1); // mono
    h.extend_from_slice(&PRE_SKIP.to_le_bytes());
    h.extend_from_slice(&input_rate.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes()); // output gain
    h.push(0); // mapping family 0: mono/stereo
    h
}

pub fn opus_tags(vendor: &str, comments: &[String]) -> Vec<u8> {
    let mut t = b"OpusTags".to_vec();
    t.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    t.extend_from_slice(vendor.as_bytes());
    t.extend_from_slice(&(comments.len() as u32).to_le_bytes());
    for c in comments {
        t.extend_from_slice(&(c.len() as u32).to_le_bytes());
        t.extend_from_slice(c.as_bytes());
    }
    t
}

/// Writes one logical stream of packets into pages.
pub struct OggWriter<W: Write> {
    out: W,
    serial: u32,
    seq: u32,
    /// Packets waiting for the next page.
    pending: Vec<Vec<u8>>,
    /// Granule position after the last pending packet.
    granule: u64,
}

impl<W: Write> OggWriter<W> {
    /// Writes the two header pages at once.
    pub fn new(out: W, serial: u32, head: &[u8], tags: &[u8]) -> std::io::Result<Self> {
        let mut w = OggWriter { out, serial, seq: 0, pending: Vec::new(), granule: 0 };
        w.write_page(BOS, 0, &[head])?;
        w.write_page(0, 0, &[tags])?;
        w.out.flush()?;
        Ok(w)
    }

    /// Queues a packet ending at 48 kHz granule `end_granule`.
    pub fn push(&mut self, packet: Vec<u8>, end_granule: u64) -> std::io::Result<()> {
        let segments: usize = self.pending.iter().map(|p| p.len() / 255 + 1).sum::<usize>() + packet.len() / 255 + 1;
        if segments > 255 {
            self.flush_page()?;
        }
        self.pending.push(packet);
        self.granule = end_granule;
        Ok(())
    }

    /// Writes the pending packets as one page and hands it to the OS.
    pub fn flush_page(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let packets = std::mem::take(&mut self.pending);
        let refs: Vec<&[u8]> = packets.iter().map(Vec::as_slice).collect();
        self.write_page(0, self.granule, &refs)?;
        self.out.flush()
    }

    /// Flushes and marks the end of the stream.
    pub fn finish(mut self) -> std::io::Result<W> {
        let packets = std::mem::take(&mut self.pending);
        let refs: Vec<&[u8]> = packets.iter().map(Vec::as_slice).collect();
        self.write_page(EOS, self.granule, &refs)?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn write_page(&mut self, flags: u8, granule: u64, packets: &[&[u8]]) -> std::io::Result<()> {
        let mut lacing = Vec::new();
        for p in packets {
            lacing.extend(std::iter::repeat_n(255u8, p.len() / 255));
            lacing.push((p.len() % 255) as u8);
        }
        let mut page = Vec::with_capacity(27 + lacing.len() + packets.iter().map(|p| p.len()).sum::<usize>());
        page.extend_from_slice(b"OggS");
        page.push(0);
        page.push(flags);
        page.extend_from_slice(&granule.to_le_bytes());
        page.extend_from_slice(&self.serial.to_le_bytes());
        page.extend_from_slice(&self.seq.to_le_bytes());
        page.extend_from_slice(&[0; 4]);
        page.push(lacing.len() as u8);
        page.extend_from_slice(&lacing);
        for p in packets {
            page.extend_from_slice(p);
        }
        let c = crc(&page);
        page[22..26].copy_from_slice(&c.to_le_bytes());
        self.seq += 1;
        self.out.write_all(&page)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OggError {
    #[error("no Ogg page at byte {0}")]
    NoCapture(usize),
    #[error("page at byte {0} fails its CRC")]
    Crc(usize),
    #[error("not an Ogg Opus stream (no OpusHead)")]
    NotOpus,
}

/// What a reader finds in an Ogg Opus file.
#[derive(Debug, Default)]
pub struct OggOpus {
    pub head: Vec<u8>,
    /// Audio packets (headers excluded), in order.
    pub packets: Vec<Vec<u8>>,
    /// Granule of the last page, 48 kHz samples.
    pub last_granule: u64,
    pub ended: bool,
}

/// Reads complete pages; a torn final page (a crash mid-write) ends the stream quietly.
pub fn read(bytes: &[u8]) -> Result<OggOpus, OggError> {
    let mut pos = 0;
    let mut all = Vec::new();
    let mut partial: Vec<u8> = Vec::new();
    let mut res = OggOpus::default();
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        if rest.len() < 27 {
            break;
        }
        if &rest[..4] != b"OggS" {
            return Err(OggError::NoCapture(pos));
        }
        let nseg = rest[26] as usize;
        if rest.len() < 27 + nseg {
            break;
        }
        let lacing = &rest[27..27 + nseg];
        let body_len: usize = lacing.iter().map(|&l| l as usize).sum();
        let len = 27 + nseg + body_len;
        if rest.len() < len {
            break;
        }
        let mut page = rest[..len].to_vec();
        let want = u32::from_le_bytes(page[22..26].try_into().expect("4 bytes"));
        page[22..26].fill(0);
        if crc(&page) != want {
            return Err(OggError::Crc(pos));
        }
        res.last_granule = u64::from_le_bytes(rest[6..14].try_into().expect("8 bytes"));
        res.ended |= rest[5] & EOS != 0;
        let mut body = &rest[27 + nseg..len];
        for &l in lacing {
            partial.extend_from_slice(&body[..l as usize]);
            body = &body[l as usize..];
            if l < 255 {
                all.push(std::mem::take(&mut partial));
            }
        }
        pos += len;
    }
    let mut it = all.into_iter();
    res.head = it.next().filter(|h| h.starts_with(b"OpusHead")).ok_or(OggError::NotOpus)?;
    it.next(); // OpusTags
    res.packets = it.collect();
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crc_matches_a_known_ogg_value() {
        // CRC of "123456789" under Ogg's parameters (CRC-32/MPEG-2 without the final xor/init).
        assert_eq!(crc(b"123456789"), 0x89a1_897f);
    }

    #[test]
    fn packets_come_back_in_order_even_across_page_splits_and_a_torn_tail() {
        let mut w = OggWriter::new(Vec::new(), 7, &opus_head(16_000), &opus_tags("t", &[])).unwrap();
        let packets: Vec<Vec<u8>> = (0..300).map(|i| vec![i as u8; (i * 7) % 600]).collect();
        for (i, p) in packets.iter().enumerate() {
            w.push(p.clone(), (i as u64 + 1) * 960).unwrap();
            if i % 50 == 49 {
                w.flush_page().unwrap();
            }
        }
        let bytes = w.finish().unwrap();
        let r = read(&bytes).unwrap();
        assert_eq!(r.packets, packets);
        assert!(r.ended);
        assert_eq!(r.last_granule, 300 * 960);
        // Cut into the last audio page (the empty EOS page is 27 bytes).
        let torn = read(&bytes[..bytes.len() - 30]).unwrap();
        assert!(!torn.ended && torn.packets.len() < 300 && torn.packets[..] == packets[..torn.packets.len()]);
    }
}
