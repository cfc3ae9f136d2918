//! Segment files: the immutable, compressed home of flushed points.
//!
//! One flush writes one segment per time partition, holding one chunk per
//! series. Opening a store reads only the header and the chunk table (a
//! bounded read, never the payloads).
//!
//! ## File `chunks/<partition>/<seq, 20 digits>.seg` (see layout.rs)
//!
//! ```text
//! header  magic "TMSSEG01" | version u32 | chunk count u32 | partition i64
//!         | seq u64 | table crc32 u32 | header crc32 u32 (bytes before it)
//! table   chunk count × (series u64 | min ts i64 | max ts i64 | points u32
//!         | timestamps len u32 | values len u32 | payload crc32 u32 | offset u64),
//!         sorted by series
//! payload per chunk: pco timestamps, then pco values
//! ```
//!
//! The file is written whole to a `.tmp`, fsynced and renamed. A header or
//! table that fails its checksum or bounds makes the file corrupt (the engine
//! quarantines it); a payload that fails its checksum fails only queries that
//! read that chunk.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use super::chunk::{self, Encoded};
use crate::codec::{DecodeError, Reader};
use crate::error::{io_err, EngineError, Result};
use crate::files::write_atomic;
use crate::types::{Point, SeriesId};

const MAGIC: &[u8; 8] = b"TMSSEG01";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 40;
const ENTRY_LEN: usize = 48;

/// Where one chunk lives in its segment, and what it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMeta {
    pub series: SeriesId,
    pub min_ts: i64,
    pub max_ts: i64,
    pub count: u32,
    pub ts_len: u32,
    pub val_len: u32,
    pub crc: u32,
    pub offset: u64,
}

impl ChunkMeta {
    /// Writes this entry of the chunk table into `out` (`ENTRY_LEN` bytes).
    fn encode(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.series.to_le_bytes());
        out[8..16].copy_from_slice(&self.min_ts.to_le_bytes());
        out[16..24].copy_from_slice(&self.max_ts.to_le_bytes());
        out[24..28].copy_from_slice(&self.count.to_le_bytes());
        out[28..32].copy_from_slice(&self.ts_len.to_le_bytes());
        out[32..36].copy_from_slice(&self.val_len.to_le_bytes());
        out[36..40].copy_from_slice(&self.crc.to_le_bytes());
        out[40..48].copy_from_slice(&self.offset.to_le_bytes());
    }

    /// Reads the next entry of a chunk table.
    fn decode(r: &mut Reader<'_>) -> Result<ChunkMeta, DecodeError> {
        Ok(ChunkMeta {
            series: r.u64("series")?,
            min_ts: r.i64("min ts")?,
            max_ts: r.i64("max ts")?,
            count: r.u32("points")?,
            ts_len: r.u32("timestamps len")?,
            val_len: r.u32("values len")?,
            crc: r.u32("payload crc")?,
            offset: r.u64("offset")?,
        })
    }
}

/// The fixed-size header of a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    version: u32,
    count: u32,
    partition: i64,
    seq: u64,
    table_crc: u32,
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..8].copy_from_slice(MAGIC);
        out[8..12].copy_from_slice(&self.version.to_le_bytes());
        out[12..16].copy_from_slice(&self.count.to_le_bytes());
        out[16..24].copy_from_slice(&self.partition.to_le_bytes());
        out[24..32].copy_from_slice(&self.seq.to_le_bytes());
        out[32..36].copy_from_slice(&self.table_crc.to_le_bytes());
        let crc = crc32fast::hash(&out[..36]);
        out[36..40].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Checks magic and header checksum; the version is the caller's to judge.
    fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Header, DecodeError> {
        let mut r = Reader::new(bytes);
        if &r.array::<8>("magic")? != MAGIC {
            return Err(DecodeError("not a segment file (bad magic)".into()));
        }
        let header = Header {
            version: r.u32("version")?,
            count: r.u32("chunk count")?,
            partition: r.i64("partition")?,
            seq: r.u64("seq")?,
            table_crc: r.u32("table crc")?,
        };
        if crc32fast::hash(&bytes[..36]) != r.u32("header crc")? {
            return Err(DecodeError("header checksum mismatch".into()));
        }
        Ok(header)
    }
}

/// An open segment: its identity and chunk table.
#[derive(Debug)]
pub struct Segment {
    /// Sequence number; a higher one holds newer writes (last write wins).
    pub seq: u64,
    pub partition: i64,
    pub path: PathBuf,
    pub file_bytes: u64,
    pub chunks: Vec<ChunkMeta>,
    /// When the file was written (its mtime after a restart).
    pub written: SystemTime,
    /// Set when compaction or retention took the segment out of the index;
    /// a query that still holds it then reads again instead of failing.
    removed: AtomicBool,
}

impl Segment {
    /// A segment from its parts (the file is already durable).
    pub fn new(
        seq: u64,
        partition: i64,
        path: PathBuf,
        file_bytes: u64,
        chunks: Vec<ChunkMeta>,
        written: SystemTime,
    ) -> Self {
        Segment {
            seq,
            partition,
            path,
            file_bytes,
            chunks,
            written,
            removed: AtomicBool::new(false),
        }
    }

    /// Marks the segment as no longer part of the store.
    pub fn mark_removed(&self) {
        self.removed.store(true, Ordering::Release);
    }

    /// True once the segment left the index.
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    /// Largest timestamp of any chunk.
    pub fn max_ts(&self) -> i64 {
        self.chunks
            .iter()
            .map(|c| c.max_ts)
            .max()
            .unwrap_or(i64::MIN)
    }
}

/// One compressed chunk ready to be written.
pub struct ChunkInput {
    pub series: SeriesId,
    pub first_ts: i64,
    pub last_ts: i64,
    pub count: usize,
    pub encoded: Encoded,
}

impl ChunkInput {
    /// Compresses sorted, deduplicated, non-empty `points` of `series`.
    pub fn encode(series: SeriesId, points: &[Point], level: usize) -> Result<ChunkInput> {
        let (Some(first), Some(last)) = (points.first(), points.last()) else {
            return Err(EngineError::internal("an empty chunk cannot be written"));
        };
        let encoded = chunk::encode(points, level).map_err(|e| {
            EngineError::internal(format!("pco could not compress series {series}: {e}"))
        })?;
        Ok(ChunkInput {
            series,
            first_ts: first.0,
            last_ts: last.0,
            count: points.len(),
            encoded,
        })
    }
}

/// Writes a segment durably (tmp, fsync, rename, fsync dir).
pub fn write(
    path: &Path,
    seq: u64,
    partition: i64,
    mut inputs: Vec<ChunkInput>,
) -> Result<Segment> {
    inputs.sort_unstable_by_key(|c| c.series);
    let table_len = inputs.len() * ENTRY_LEN;
    let payload_len: usize = inputs
        .iter()
        .map(|c| c.encoded.timestamps.len() + c.encoded.values.len())
        .sum();
    let mut out = vec![0u8; HEADER_LEN + table_len];
    out.reserve(payload_len);
    let mut chunks = Vec::with_capacity(inputs.len());
    for input in &inputs {
        let offset = out.len() as u64;
        out.extend_from_slice(&input.encoded.timestamps);
        out.extend_from_slice(&input.encoded.values);
        let too_big = |_| EngineError::invalid("a chunk larger than 4 GiB cannot be written");
        chunks.push(ChunkMeta {
            series: input.series,
            min_ts: input.first_ts,
            max_ts: input.last_ts,
            count: u32::try_from(input.count).map_err(too_big)?,
            ts_len: u32::try_from(input.encoded.timestamps.len()).map_err(too_big)?,
            val_len: u32::try_from(input.encoded.values.len()).map_err(too_big)?,
            crc: crc32fast::hash(&out[offset as usize..]),
            offset,
        });
    }
    for (i, meta) in chunks.iter().enumerate() {
        meta.encode(&mut out[HEADER_LEN + i * ENTRY_LEN..][..ENTRY_LEN]);
    }
    let header = Header {
        version: VERSION,
        count: u32::try_from(chunks.len())
            .map_err(|_| EngineError::invalid("too many chunks for one segment"))?,
        partition,
        seq,
        table_crc: crc32fast::hash(&out[HEADER_LEN..HEADER_LEN + table_len]),
    };
    out[..HEADER_LEN].copy_from_slice(&header.encode());
    write_atomic(path, &out)?;
    Ok(Segment::new(
        seq,
        partition,
        path.to_path_buf(),
        out.len() as u64,
        chunks,
        SystemTime::now(),
    ))
}

/// Opens a segment by reading its header and table only. Returns the
/// segment and how many bytes were read.
pub fn open(path: &Path) -> Result<(Segment, u64)> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let metadata = file.metadata().map_err(io_err("stat", path))?;
    let file_bytes = metadata.len();
    let corrupt = |e: DecodeError| EngineError::corrupt(path, e.0);
    let mut header = [0u8; HEADER_LEN];
    read_at(&file, path, &mut header, 0, file_bytes)?;
    let Header {
        version,
        count,
        partition,
        seq,
        table_crc,
    } = Header::decode(&header).map_err(corrupt)?;
    EngineError::check_version(path, version, VERSION)?;
    let count = count as usize;
    let table_len = count * ENTRY_LEN;
    if (HEADER_LEN + table_len) as u64 > file_bytes {
        return Err(EngineError::corrupt(
            path,
            format!("table of {count} chunks runs past the end"),
        ));
    }
    let mut table = vec![0u8; table_len];
    read_at(&file, path, &mut table, HEADER_LEN as u64, file_bytes)?;
    if crc32fast::hash(&table) != table_crc {
        return Err(EngineError::corrupt(path, "chunk table checksum mismatch"));
    }
    let mut r = Reader::new(&table);
    let mut chunks = Vec::with_capacity(count);
    let payload_start = (HEADER_LEN + table_len) as u64;
    for i in 0..count {
        let meta = ChunkMeta::decode(&mut r).map_err(corrupt)?;
        let end = meta
            .offset
            .checked_add(meta.ts_len as u64 + meta.val_len as u64);
        if meta.offset < payload_start
            || end.is_none_or(|e| e > file_bytes)
            || meta.count == 0
            || meta.min_ts > meta.max_ts
        {
            return Err(EngineError::corrupt(
                path,
                format!("chunk {i} has impossible bounds"),
            ));
        }
        chunks.push(meta);
    }
    let written = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let segment = Segment::new(
        seq,
        partition,
        path.to_path_buf(),
        file_bytes,
        chunks,
        written,
    );
    Ok((segment, payload_start))
}

fn read_at(file: &File, path: &Path, buf: &mut [u8], offset: u64, file_bytes: u64) -> Result<()> {
    if offset + buf.len() as u64 > file_bytes {
        return Err(EngineError::corrupt(
            path,
            format!(
                "needs {} bytes at {offset}, file has {file_bytes}",
                buf.len()
            ),
        ));
    }
    file.read_exact_at(buf, offset)
        .map_err(io_err("read", path))
}

impl Segment {
    /// Reads, verifies and decodes chunk `index`.
    pub fn read_chunk(&self, index: usize) -> Result<Vec<Point>> {
        let meta = self
            .chunks
            .get(index)
            .ok_or_else(|| EngineError::corrupt(&self.path, format!("no chunk {index}")))?;
        let file = File::open(&self.path).map_err(io_err("open", &self.path))?;
        let mut payload = vec![0u8; meta.ts_len as usize + meta.val_len as usize];
        read_at(
            &file,
            &self.path,
            &mut payload,
            meta.offset,
            self.file_bytes,
        )?;
        if crc32fast::hash(&payload) != meta.crc {
            return Err(EngineError::corrupt(
                &self.path,
                format!("chunk of series {} fails its checksum", meta.series),
            ));
        }
        let (ts, values) = payload.split_at(meta.ts_len as usize);
        chunk::decode(ts, values, meta.count as usize)
            .map_err(|e| EngineError::corrupt(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: &Path) -> (PathBuf, Vec<Vec<Point>>) {
        let runs: Vec<Vec<Point>> = (0..3)
            .map(|s| (0..100).map(|i| (i * 1000 + s, i as f64 / 4.0)).collect())
            .collect();
        let inputs = runs
            .iter()
            .enumerate()
            .rev()
            .map(|(s, pts)| ChunkInput::encode(s as u64, pts, 4).unwrap())
            .collect();
        let path = crate::layout::Layout::new(dir).segment(3, 9);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        write(&path, 9, 3, inputs).unwrap();
        (path, runs)
    }

    #[test]
    fn open_reads_the_table_only_and_chunks_decode() {
        let dir = tempfile::tempdir().unwrap();
        let (path, runs) = sample(dir.path());
        let (seg, read) = open(&path).unwrap();
        assert_eq!((seg.seq, seg.partition, seg.chunks.len()), (9, 3, 3));
        assert_eq!(read, (HEADER_LEN + 3 * ENTRY_LEN) as u64);
        assert!(read < seg.file_bytes);
        for (i, run) in runs.iter().enumerate() {
            assert_eq!(seg.chunks[i].series, i as u64);
            assert_eq!(&seg.read_chunk(i).unwrap(), run);
        }
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = sample(dir.path());
        let bytes = std::fs::read(&path).unwrap();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x04;
            std::fs::write(&path, &bad).unwrap();
            let caught = match open(&path) {
                Err(_) => true,
                Ok((seg, _)) => (0..seg.chunks.len()).any(|c| seg.read_chunk(c).is_err()),
            };
            assert!(caught, "flip at byte {i} went unnoticed");
        }
    }

    #[test]
    fn truncation_at_any_point_is_corruption_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = sample(dir.path());
        let bytes = std::fs::read(&path).unwrap();
        for cut in 0..bytes.len() {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            if let Ok((seg, _)) = open(&path) {
                assert!((0..seg.chunks.len()).any(|c| seg.read_chunk(c).is_err()));
            }
        }
    }
}
