//! QUIC-style variable-length integers (RFC 9000 §16): 1, 2, 4 or 8 bytes.

use super::WireError;

pub const MAX: u64 = (1 << 62) - 1;

/// Bytes `v` takes on the wire.
pub fn len(v: u64) -> usize {
    match v {
        0..=63 => 1,
        64..=16_383 => 2,
        16_384..=1_073_741_823 => 4,
        _ => 8,
    }
}

/// Appends `v` (which must be ≤ [`MAX`]; larger values are a caller bug).
pub fn put(out: &mut Vec<u8>, v: u64) {
    debug_assert!(v <= MAX, "varint out of range");
    match len(v) {
        1 => out.push(v as u8),
        2 => out.extend_from_slice(&((v as u16) | 0x4000).to_be_bytes()),
        4 => out.extend_from_slice(&((v as u32) | 0x8000_0000).to_be_bytes()),
        _ => out.extend_from_slice(&(v | 0xc000_0000_0000_0000).to_be_bytes()),
    }
}

/// Reads one varint from the front of `buf`, returning it and the rest.
pub fn get(buf: &[u8]) -> Result<(u64, &[u8]), WireError> {
    let first = *buf.first().ok_or(WireError::Truncated)?;
    let n = 1usize << (first >> 6);
    if buf.len() < n {
        return Err(WireError::Truncated);
    }
    let mut v = u64::from(first & 0x3f);
    for b in &buf[1..n] {
        v = (v << 8) | u64::from(*b);
    }
    Ok((v, &buf[n..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_length_class_round_trips() {
        for v in [0, 63, 64, 16_383, 16_384, 1_073_741_823, 1_073_741_824, MAX] {
            let mut out = Vec::new();
            put(&mut out, v);
            assert_eq!(out.len(), len(v));
            assert_eq!(get(&out).unwrap(), (v, &[][..]));
        }
    }

    #[test]
    fn a_cut_varint_is_an_error() {
        assert_eq!(get(&[]), Err(WireError::Truncated));
        assert_eq!(get(&[0x80, 1]), Err(WireError::Truncated));
    }
}
