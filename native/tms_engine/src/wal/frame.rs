//! The WAL's framing: segment headers and checksummed frames around opaque
//! payloads. What a payload means is record.rs's business.
//!
//! ```text
//! segment header  magic "TMSWAL01" | version u32 | seq u64
//! frame           payload_len u32 | crc32 u32 | kind u8 | payload
//!                 crc32 covers kind and payload
//! ```
//!
//! A frame is broken when its length runs past the end of the file or its
//! checksum fails. A broken frame at the very end of the newest segment is a
//! torn write (the process died mid-append): it was never acknowledged and is
//! dropped quietly. Anywhere else it is corruption: replay skips it (the
//! length is trusted only when it fits in the file) and reports it.

use std::fs;
use std::path::Path;

use crate::codec::Reader;
use crate::error::{io_err, EngineError, Result};

const MAGIC: &[u8; 8] = b"TMSWAL01";
const VERSION: u32 = 1;
/// Bytes of a segment header.
pub const HEADER_LEN: usize = 20;
/// Bytes before a frame's payload.
pub const FRAME_HEADER_LEN: usize = 9;

/// What replay found, for `Tms.info` and the open report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    pub segments: u64,
    pub records: u64,
    pub points: u64,
    /// Bytes of a torn last record (never acknowledged), dropped.
    pub torn_bytes: u64,
    /// Records that failed their checksum or could not be applied, skipped.
    pub corrupt_records: u64,
    /// Bytes after a corrupt record whose length could not be trusted.
    pub skipped_bytes: u64,
}

/// The header of segment `seq`.
pub fn segment_header(seq: u64) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header[12..20].copy_from_slice(&seq.to_le_bytes());
    header
}

/// The header of a frame of `kind` whose payload is `parts` concatenated.
pub fn frame_header(kind: u8, parts: &[&[u8]]) -> Result<[u8; FRAME_HEADER_LEN]> {
    let payload_len: usize = parts.iter().map(|p| p.len()).sum();
    let len = u32::try_from(payload_len).map_err(|_| {
        EngineError::invalid(format!("WAL record of {payload_len} bytes is too large"))
    })?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[kind]);
    for part in parts {
        crc.update(part);
    }
    let mut header = [0u8; FRAME_HEADER_LEN];
    header[..4].copy_from_slice(&len.to_le_bytes());
    header[4..8].copy_from_slice(&crc.finalize().to_le_bytes());
    header[8] = kind;
    Ok(header)
}

/// Reads every segment of `segments` (oldest first) and hands each intact
/// frame to `apply` as `(segment seq, kind, payload)`. A frame `apply`
/// rejects is counted as corrupt and skipped; replay never stops at one bad
/// frame. `apply` returns the points the frame held, for the report.
pub fn replay(
    segments: &[(u64, std::path::PathBuf)],
    mut apply: impl FnMut(u64, u8, &[u8]) -> Result<u64>,
) -> Result<ReplayReport> {
    let mut report = ReplayReport::default();
    for (i, (seq, path)) in segments.iter().enumerate() {
        let is_newest = i + 1 == segments.len();
        let bytes = fs::read(path).map_err(io_err("read", path))?;
        report.segments += 1;
        replay_segment(path, &bytes, is_newest, &mut report, |kind, payload| {
            apply(*seq, kind, payload)
        })?;
    }
    Ok(report)
}

fn replay_segment(
    path: &Path,
    bytes: &[u8],
    is_newest: bool,
    report: &mut ReplayReport,
    mut apply: impl FnMut(u8, &[u8]) -> Result<u64>,
) -> Result<()> {
    if bytes.len() < HEADER_LEN {
        // Died while creating the segment: nothing in it was acknowledged.
        report.torn_bytes += bytes.len() as u64;
        return Ok(());
    }
    let mut r = Reader::new(&bytes[..HEADER_LEN]);
    let corrupt = |e: crate::codec::DecodeError| EngineError::corrupt(path, e.0);
    if &r.array::<8>("magic").map_err(corrupt)? != MAGIC {
        return Err(EngineError::corrupt(path, "not a WAL segment (bad magic)"));
    }
    EngineError::check_version(path, r.u32("version").map_err(corrupt)?, VERSION)?;
    let mut r = Reader::new(&bytes[HEADER_LEN..]);
    while r.remaining() > 0 {
        let rest = r.remaining();
        let frame = r
            .u32("frame length")
            .and_then(|len| Ok((len, r.u32("frame crc")?)))
            .and_then(|(len, crc)| Ok((crc, r.take(len as usize + 1, "frame")?)));
        let Ok((crc, frame)) = frame else {
            if is_newest {
                report.torn_bytes += rest as u64;
            } else {
                report.corrupt_records += 1;
                report.skipped_bytes += rest as u64;
            }
            return Ok(());
        };
        if crc32fast::hash(frame) != crc {
            if is_newest && r.remaining() == 0 {
                report.torn_bytes += (rest - r.remaining()) as u64;
            } else {
                report.corrupt_records += 1;
            }
            continue;
        }
        match apply(frame[0], &frame[1..]) {
            Ok(points) => {
                report.records += 1;
                report.points += points;
            }
            Err(_) => report.corrupt_records += 1,
        }
    }
    Ok(())
}
