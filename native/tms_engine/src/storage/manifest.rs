//! The manifest: the durable list of live segment files.
//!
//! Without it, a segment file deleted from under the store would simply be
//! gone after a restart, its points with it, and nothing would say so. With
//! it, open tells three cases apart: a listed file that is there (indexed),
//! a listed file that is missing (reported as lost), and a file that is not
//! listed (a leftover of a flush or compaction that crashed before its
//! manifest was written, whose points are still in the WAL or in listed
//! segments: removed).
//!
//! Every change of the segment set writes the new list before the change
//! becomes visible (before the index sees a new segment, before an old file
//! is removed), with the usual tmp + fsync + rename.
//!
//! ## File `manifest.tms`
//!
//! ```text
//! magic "TMSMAN01" | version u32 | count u64 | count × (partition i64 | seq u64) | crc32 u32
//! ```
//! The CRC covers every byte before it. A damaged manifest is an error at
//! open: guessing which files are live could delete a live one.

use std::path::Path;

use crate::codec::{framed, unframe, DecodeError};
use crate::error::{EngineError, Result};
use crate::files::write_atomic;

const MAGIC: &[u8; 8] = b"TMSMAN01";
const VERSION: u32 = 1;

/// A live segment: its partition and sequence number.
pub type SegmentId = (i64, u64);

/// The live segments recorded in `path`, or `None` when there is no
/// manifest (a new store, or one written before manifests existed).
pub fn load(path: &Path) -> Result<Option<Vec<SegmentId>>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(EngineError::io("read", path, e)),
    };
    decode(&bytes, path).map(Some)
}

/// Records `segments` as the live set, durably.
pub fn store(path: &Path, segments: &[SegmentId]) -> Result<()> {
    write_atomic(path, &encode(segments))
}

fn encode(segments: &[SegmentId]) -> Vec<u8> {
    framed(MAGIC, VERSION, 8 + segments.len() * 16, |out| {
        out.extend_from_slice(&(segments.len() as u64).to_le_bytes());
        for (partition, seq) in segments {
            out.extend_from_slice(&partition.to_le_bytes());
            out.extend_from_slice(&seq.to_le_bytes());
        }
    })
}

fn decode(bytes: &[u8], path: &Path) -> Result<Vec<SegmentId>> {
    let corrupt = |e: DecodeError| EngineError::corrupt(path, e.0);
    let file = unframe(bytes, MAGIC, "manifest").map_err(corrupt)?;
    EngineError::check_version(path, file.version, VERSION)?;
    if !file.checksum_ok {
        return Err(EngineError::corrupt(path, "checksum mismatch"));
    }
    let mut r = file.body;
    let count = r.u64("segment count").map_err(corrupt)?;
    if count > (r.remaining() / 16) as u64 {
        return Err(EngineError::corrupt(
            path,
            "segment count runs past the end",
        ));
    }
    let mut segments = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let partition = r.i64("partition").map_err(corrupt)?;
        segments.push((partition, r.u64("seq").map_err(corrupt)?));
    }
    if r.remaining() != 0 {
        return Err(EngineError::corrupt(path, "trailing bytes"));
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_round_trips_and_every_flipped_byte_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.tms");
        assert_eq!(load(&path).unwrap(), None);
        let segments = vec![(-1, 3), (0, 1), (7, 12)];
        store(&path, &segments).unwrap();
        assert_eq!(load(&path).unwrap(), Some(segments));
        let bytes = std::fs::read(&path).unwrap();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(decode(&bad, &path).is_err(), "flip at {i} went unnoticed");
        }
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], &path).is_err());
        }
    }
}
