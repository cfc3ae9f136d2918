//! The retention cutoff: points older than it are gone for every query.
//!
//! `delete_before(cutoff)` removes whole segments that hold nothing at or
//! after the cutoff, and records the cutoff so that the points left in
//! segments straddling it are filtered at query time, also after a restart.
//!
//! ## File `retention.tms`
//!
//! ```text
//! magic "TMSRET01" | cutoff i64 | crc32 u32 (of the bytes before it)
//! ```

use std::path::Path;

use crate::codec::Reader;
use crate::error::{EngineError, Result};
use crate::files::write_atomic;

const MAGIC: &[u8; 8] = b"TMSRET01";

/// Reads the recorded cutoff; `i64::MIN` (keep everything) if none.
pub fn load(path: &Path) -> Result<i64> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(i64::MIN),
        Err(e) => return Err(EngineError::io("read", path, e)),
    };
    let corrupt = |why: String| EngineError::corrupt(path, why);
    let mut r = Reader::new(&bytes);
    if &r.array::<8>("magic").map_err(|e| corrupt(e.0))? != MAGIC {
        return Err(corrupt("not a retention file (bad magic)".into()));
    }
    let cutoff = r.i64("cutoff").map_err(|e| corrupt(e.0))?;
    let crc = r.u32("crc").map_err(|e| corrupt(e.0))?;
    if crc != crc32fast::hash(&bytes[..16]) || r.remaining() != 0 {
        return Err(corrupt("checksum mismatch".into()));
    }
    Ok(cutoff)
}

/// Records `cutoff` durably.
pub fn store(path: &Path, cutoff: i64) -> Result<()> {
    let mut bytes = Vec::with_capacity(20);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&cutoff.to_le_bytes());
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_round_trips_and_damage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::layout::Layout::new(dir.path()).cutoff();
        assert_eq!(load(&path).unwrap(), i64::MIN);
        store(&path, -42).unwrap();
        assert_eq!(load(&path).unwrap(), -42);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[9] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(load(&path).is_err());
    }
}
