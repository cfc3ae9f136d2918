//! Segment files: the immutable, compressed home of flushed points.
//!
//! One flush writes one segment per time partition, holding one chunk per
//! series; each distinct timestamp array is stored once, as a column that
//! every chunk with those timestamps refers to (columns.rs). Opening a store
//! reads only the header and the tables (a bounded read, never the
//! payloads). The byte layout of both formats is in format.rs.
//!
//! The file is written whole to a `.tmp`, fsynced and renamed. A header or
//! table that fails its checksum or bounds makes the file corrupt (the engine
//! quarantines it); a payload that fails its checksum fails only the queries
//! that read it: a damaged column, every chunk that uses it.

mod format;

pub use format::{open, write};

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use super::chunk;
use super::columns;
use crate::error::{io_err, EngineError, Result};
use crate::parallel;
use crate::types::{Point, SeriesId};

/// How a segment file lays out its chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Each chunk holds its own timestamps, then its values (read only).
    V1,
    /// Chunks hold values and refer to a shared timestamp column.
    V2,
}

/// One stored timestamp column: what it covers and where its bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnMeta {
    pub min_ts: i64,
    pub max_ts: i64,
    pub count: u32,
    pub len: u32,
    pub crc: u32,
    pub offset: u64,
}

/// Where one chunk lives in its segment, and what it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMeta {
    pub series: SeriesId,
    pub min_ts: i64,
    pub max_ts: i64,
    pub count: u32,
    /// Where the chunk's timestamps are: in a [`Format::V2`] segment the
    /// index of its column, in a [`Format::V1`] one the length of the
    /// timestamps that open its payload.
    pub timestamps: u32,
    /// The chunk's own payload: its values (V2), or timestamps and values (V1).
    pub len: u32,
    pub crc: u32,
    pub offset: u64,
}

/// An open segment: its identity and tables.
#[derive(Debug)]
pub struct Segment {
    /// Sequence number; a higher one holds newer writes (last write wins).
    pub seq: u64,
    pub partition: i64,
    pub path: PathBuf,
    pub file_bytes: u64,
    pub format: Format,
    pub columns: Vec<ColumnMeta>,
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
        tables: (Format, Vec<ColumnMeta>, Vec<ChunkMeta>),
        written: SystemTime,
    ) -> Self {
        let (format, columns, chunks) = tables;
        Segment {
            seq,
            partition,
            path,
            file_bytes,
            format,
            columns,
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

    /// The column chunk `index` takes its timestamps from (V2 segments).
    pub fn column_of(&self, index: usize) -> Option<usize> {
        let meta = self.chunks.get(index)?;
        (self.format == Format::V2).then_some(meta.timestamps as usize)
    }

    /// Reads, verifies and decodes chunk `index`, taking its column's
    /// timestamps from `columns` when kept there and keeping them there
    /// when read. A column stored right before the chunk (its first user)
    /// is read with the values in one read.
    pub fn read_chunk(&self, index: usize, columns: &mut dyn ColumnCache) -> Result<Vec<Point>> {
        let meta = self
            .chunks
            .get(index)
            .ok_or_else(|| EngineError::corrupt(&self.path, format!("no chunk {index}")))?;
        let what = || format!("chunk of series {}", meta.series);
        let corrupt = |e: String| EngineError::corrupt(&self.path, format!("{}: {e}", what()));
        let count = meta.count as usize;
        let file = File::open(&self.path).map_err(io_err("open", &self.path))?;
        if self.format == Format::V1 {
            let payload = self.read_verified(&file, meta.offset, meta.len, meta.crc, &what)?;
            let (ts, values) = payload.split_at(meta.timestamps as usize);
            let ts = chunk::decode_timestamps(ts, count).map_err(corrupt)?;
            let values = chunk::decode_untagged_values(values, count).map_err(corrupt)?;
            return Ok(chunk::zip(&ts, values));
        }
        let c = meta.timestamps as usize;
        let (ts, values) = match columns.get(self, c) {
            Some(ts) => {
                let values = self.read_verified(&file, meta.offset, meta.len, meta.crc, &what)?;
                (ts, values)
            }
            None => {
                let column = self
                    .columns
                    .get(c)
                    .ok_or_else(|| corrupt(format!("no column {c}")))?;
                let column_what = || format!("timestamp column {c}");
                let (column_bytes, values) = if column.offset + u64::from(column.len) == meta.offset
                {
                    let len = column.len + meta.len;
                    let mut both = self.read_bytes(&file, column.offset, len)?;
                    let values = both.split_off(column.len as usize);
                    self.verify(&both, column.crc, &column_what)?;
                    self.verify(&values, meta.crc, &what)?;
                    (both, values)
                } else {
                    let column_bytes = self.read_verified(
                        &file,
                        column.offset,
                        column.len,
                        column.crc,
                        &column_what,
                    )?;
                    let values =
                        self.read_verified(&file, meta.offset, meta.len, meta.crc, &what)?;
                    (column_bytes, values)
                };
                let ts: Arc<[i64]> = chunk::decode_timestamps(&column_bytes, column.count as usize)
                    .map_err(|e| EngineError::corrupt(&self.path, format!("column {c}: {e}")))?
                    .into();
                columns.put(self, c, Arc::clone(&ts));
                (ts, values)
            }
        };
        if ts.len() != count {
            return Err(corrupt(format!(
                "its column holds {} timestamps, its table says {count}",
                ts.len()
            )));
        }
        let values = chunk::decode_values(&values, count).map_err(corrupt)?;
        Ok(chunk::zip(&ts, values))
    }

    fn read_bytes(&self, file: &File, offset: u64, len: u32) -> Result<Vec<u8>> {
        let mut bytes = vec![0u8; len as usize];
        read_at(file, &self.path, &mut bytes, offset, self.file_bytes)?;
        Ok(bytes)
    }

    fn verify(&self, bytes: &[u8], crc: u32, what: &dyn Fn() -> String) -> Result<()> {
        if crc32fast::hash(bytes) == crc {
            return Ok(());
        }
        Err(EngineError::corrupt(
            &self.path,
            format!("{} fails its checksum", what()),
        ))
    }

    /// `len` bytes at `offset` whose checksum must be `crc`.
    fn read_verified(
        &self,
        file: &File,
        offset: u64,
        len: u32,
        crc: u32,
        what: &dyn Fn() -> String,
    ) -> Result<Vec<u8>> {
        let bytes = self.read_bytes(file, offset, len)?;
        self.verify(&bytes, crc, what)?;
        Ok(bytes)
    }
}

/// Decoded timestamp columns a reader keeps between chunk reads.
pub trait ColumnCache {
    /// Column `column` of `segment`, if kept.
    fn get(&mut self, segment: &Segment, column: usize) -> Option<Arc<[i64]>>;
    /// Keeps column `column` of `segment`.
    fn put(&mut self, segment: &Segment, column: usize, timestamps: Arc<[i64]>);
}

/// A reader's own cache, by (segment seq, column): for a compaction's
/// round, or a test.
impl ColumnCache for HashMap<(u64, usize), Arc<[i64]>> {
    fn get(&mut self, segment: &Segment, column: usize) -> Option<Arc<[i64]>> {
        HashMap::get(self, &(segment.seq, column)).cloned()
    }

    fn put(&mut self, segment: &Segment, column: usize, timestamps: Arc<[i64]>) {
        self.insert((segment.seq, column), timestamps);
    }
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

/// A compressed timestamp column ready to be written.
pub struct EncodedColumn {
    pub min_ts: i64,
    pub max_ts: i64,
    pub count: usize,
    pub bytes: Vec<u8>,
}

/// A chunk's compressed values, and the column of its timestamps.
pub struct EncodedChunk {
    pub series: SeriesId,
    pub column: usize,
    pub bytes: Vec<u8>,
}

/// What one segment file will hold, compressed.
#[derive(Default)]
pub struct SegmentInput {
    pub columns: Vec<EncodedColumn>,
    pub chunks: Vec<EncodedChunk>,
}

impl SegmentInput {
    /// Compresses runs of sorted, deduplicated, non-empty points, one chunk
    /// per run, each distinct timestamp array once; on up to `threads`
    /// threads at pco `level`.
    pub fn encode(
        runs: &[(SeriesId, &[Point])],
        level: usize,
        threads: usize,
    ) -> Result<SegmentInput> {
        if let Some((series, _)) = runs.iter().find(|(_, points)| points.is_empty()) {
            return Err(EngineError::internal(format!(
                "an empty chunk of series {series} cannot be written"
            )));
        }
        let points: Vec<&[Point]> = runs.iter().map(|(_, p)| *p).collect();
        let sharing = columns::share(&points);
        // One list of jobs, columns first, so both kinds spread over the threads.
        let jobs: Vec<(bool, usize)> = (0..sharing.holder.len())
            .map(|c| (true, sharing.holder[c]))
            .chain((0..runs.len()).map(|r| (false, r)))
            .collect();
        let mut encoded = parallel::map(&jobs, threads, 64, |&(is_column, run)| {
            let (series, points) = runs[run];
            let compressed = if is_column {
                let ts: Vec<i64> = points.iter().map(|p| p.0).collect();
                chunk::encode_timestamps(&ts, level)
            } else {
                let values: Vec<f64> = points.iter().map(|p| p.1).collect();
                chunk::encode_values(&values, level)
            };
            compressed.map_err(|e| {
                EngineError::internal(format!("pco could not compress series {series}: {e}"))
            })
        })?
        .into_iter();
        let columns = sharing
            .holder
            .iter()
            .zip(encoded.by_ref())
            .map(|(&run, bytes)| {
                let points = runs[run].1;
                EncodedColumn {
                    min_ts: points[0].0,
                    max_ts: points[points.len() - 1].0,
                    count: points.len(),
                    bytes,
                }
            })
            .collect();
        let chunks = runs
            .iter()
            .zip(&sharing.column_of)
            .zip(encoded)
            .map(|((&(series, _), &column), bytes)| EncodedChunk {
                series,
                column: column as usize,
                bytes,
            })
            .collect();
        Ok(SegmentInput { columns, chunks })
    }

    /// Adds another input's columns and chunks (its column numbers shifted).
    pub fn append(&mut self, other: SegmentInput) {
        let shift = self.columns.len();
        self.columns.extend(other.columns);
        self.chunks
            .extend(other.chunks.into_iter().map(|c| EncodedChunk {
                column: c.column + shift,
                ..c
            }));
    }

    /// True when there is no chunk to write.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }
}

#[cfg(test)]
mod tests;
