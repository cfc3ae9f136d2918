//! Little-endian encoding helpers shared by every on-disk format.
//!
//! Every file format (segment, WAL frame and record, registry, retention)
//! is parsed through [`Reader`]: each read is bounds-checked and returns an
//! error naming what was being read, so a decoder fed arbitrary bytes fails
//! cleanly instead of panicking. The one exception is the 24-byte raw entry
//! (types.rs), read in the write path's hot loop from slices whose length the
//! caller has already checked.

/// Why a [`Reader`] stopped; the caller adds the file path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

/// A bounds-checked cursor over a byte slice.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader positioned at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Takes the next `n` bytes, or fails naming `what` was cut short.
    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError(format!(
                "{what}: needs {n} bytes, {} left",
                self.remaining()
            )));
        }
        let slice = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    /// Reads a fixed-size array.
    pub fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    /// Reads a `u16`.
    pub fn u16(&mut self, what: &str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    /// Reads a `u32`.
    pub fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    /// Reads a `u64`.
    pub fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// Reads an `i64`.
    pub fn i64(&mut self, what: &str) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }

    /// Reads a `u16`-length-prefixed UTF-8 string.
    pub fn str16(&mut self, what: &str) -> Result<&'a str, DecodeError> {
        let len = self.u16(what)? as usize;
        self.utf8(len, what)
    }

    /// Reads a `u32`-length-prefixed UTF-8 string.
    pub fn str32(&mut self, what: &str) -> Result<&'a str, DecodeError> {
        let len = self.u32(what)? as usize;
        self.utf8(len, what)
    }

    /// Reads a LEB128 varint (at most 10 bytes, no bits past 64).
    pub fn varint(&mut self, what: &str) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1, what)?[0];
            if shift == 63 && byte > 1 {
                return Err(DecodeError(format!("{what}: varint past 64 bits")));
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError(format!("{what}: varint longer than 10 bytes")))
    }

    /// Reads a varint-length-prefixed UTF-8 string of at most `max` bytes.
    pub fn str_varint(&mut self, max: usize, what: &str) -> Result<&'a str, DecodeError> {
        let len = self.varint(what)?;
        if len > max as u64 {
            return Err(DecodeError(format!("{what}: {len} bytes, more than {max}")));
        }
        self.utf8(len as usize, what)
    }

    fn utf8(&mut self, len: usize, what: &str) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.take(len, what)?)
            .map_err(|_| DecodeError(format!("{what}: invalid UTF-8")))
    }
}

/// Appends a LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a varint-length-prefixed string.
pub fn put_str_varint(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Appends a `u16`-length-prefixed string; the caller has bounded its length.
pub fn put_str16(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Appends a `u32`-length-prefixed string; the caller has bounded its length.
pub fn put_str32(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A whole file framed as `magic [8] | version u32 | body | crc32 u32`, the
/// CRC over every byte before it (the registry snapshot, the manifest);
/// `body` writes the body.
pub fn framed(
    magic: &[u8; 8],
    version: u32,
    capacity: usize,
    body: impl FnOnce(&mut Vec<u8>),
) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity + 16);
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    body(&mut out);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// What [`unframe`] found in a framed file.
pub struct Unframed<'a> {
    pub version: u32,
    /// Positioned at the body, which ends before the checksum.
    pub body: Reader<'a>,
    pub checksum_ok: bool,
}

/// Reads a file written by [`framed`]: checks the magic (`what` names the
/// file kind in the error) and answers the version, the body and whether
/// the checksum holds. The caller judges the version before the checksum,
/// so that a newer format reads as such, not as damage.
pub fn unframe<'a>(
    bytes: &'a [u8],
    magic: &[u8; 8],
    what: &str,
) -> Result<Unframed<'a>, DecodeError> {
    let Some(body_len) = bytes.len().checked_sub(4) else {
        return Err(DecodeError("shorter than its checksum".into()));
    };
    let (all, crc) = bytes.split_at(body_len);
    let mut body = Reader::new(all);
    if &body.array::<8>("magic")? != magic {
        return Err(DecodeError(format!("not a {what} (bad magic)")));
    }
    let version = body.u32("version")?;
    let checksum_ok = crc32fast::hash(all) == Reader::new(crc).u32("checksum")?;
    Ok(Unframed {
        version,
        body,
        checksum_ok,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_the_end_fail_with_the_field_name() {
        let mut r = Reader::new(&[1, 0, 0]);
        assert_eq!(r.u16("a").unwrap(), 1);
        let err = r.u32("count").unwrap_err();
        assert!(err.0.contains("count"), "{err:?}");
    }

    #[test]
    fn strings_round_trip_and_reject_bad_utf8() {
        let mut out = Vec::new();
        put_str16(&mut out, "héllo");
        put_str32(&mut out, "x");
        let mut r = Reader::new(&out);
        assert_eq!(r.str16("a").unwrap(), "héllo");
        assert_eq!(r.str32("b").unwrap(), "x");
        assert!(Reader::new(&[2, 0, 0xff, 0xfe]).str16("c").is_err());
    }

    #[test]
    fn varints_round_trip_and_reject_overlong_ones() {
        let mut out = Vec::new();
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            put_varint(&mut out, v);
        }
        put_str_varint(&mut out, "ü");
        let mut r = Reader::new(&out);
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(r.varint("v").unwrap(), v);
        }
        assert_eq!(r.str_varint(8, "s").unwrap(), "ü");
        assert_eq!(r.remaining(), 0);
        assert!(Reader::new(&[0xff; 11]).varint("v").is_err());
        let mut past_64 = vec![0xff; 9];
        past_64.push(0x02);
        assert!(Reader::new(&past_64).varint("v").is_err());
        assert!(Reader::new(&[0x80]).varint("v").is_err());
        assert!(Reader::new(&[3, b'a', b'b', b'c'])
            .str_varint(2, "s")
            .is_err());
    }
}
