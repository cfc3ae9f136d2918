//! Tier files: one tier's summaries of one time partition, one block per
//! series, each field of a block its own pco stream.
//!
//! A tier file is written whole (tmp, fsync, rename) under a new number, and
//! the file it replaces is removed after; opening reads the header and the
//! table only. The file names the raw segments it was built from, which is
//! how the engine tells a current tier from one that raw data under it has
//! outgrown (a late write adds a segment).
//!
//! ## Layout
//!
//! ```text
//! header  magic "TMSTIER1" | version u32 | resolution i64 | partition i64
//!         | sources u32 | series u32 | crc32 u32 (of the header before it)
//! table   sources × seq u64 | series × (series u64 | rows u32 | offset u64
//!         | len u32 | crc32 u32) | crc32 u32 (of the table before it)
//! blocks  per series: 10 × len u32, then the 10 streams: shape, first ts,
//!         last ts, first value, last value, min values, max values, sum,
//!         m2, resets
//! ```
//!
//! A row's min (and max) is often its first or last value (always, for a
//! counter without resets): a code says which (0 first, 1 last, 2 its
//! own), and only own values are stored, which on the devops workload
//! takes the two columns from 3.8 to 1.7 bytes a row. The shape stream
//! holds `count × 9 + min code × 3 + max code` per row: one stream where
//! three would each cost a decoder's set-up (a 30-day query reads 1,500
//! blocks).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::codec::{DecodeError, Reader};
use crate::error::{io_err, EngineError, Result};
use crate::files::write_atomic;
use crate::storage::chunk;
use crate::summary::Summary;
use crate::types::SeriesId;

const MAGIC: &[u8; 8] = b"TMSTIER1";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 40;
const ENTRY_LEN: usize = 28;
const STREAMS: usize = 10;

/// One series' block: where it is and what it holds.
#[derive(Debug, Clone, Copy)]
struct Block {
    series: SeriesId,
    rows: u32,
    offset: u64,
    len: u32,
    crc: u32,
}

/// An open tier file: its header and table.
#[derive(Debug)]
pub struct TierFile {
    pub path: PathBuf,
    /// Its number: later files of a partition replace earlier ones.
    pub seq: u64,
    pub resolution: i64,
    pub partition: i64,
    /// The raw segments it summarizes, ascending.
    pub sources: Vec<u64>,
    /// Blocks sorted by series.
    blocks: Vec<Block>,
    pub file_bytes: u64,
    removed: AtomicBool,
    damaged: AtomicBool,
}

/// One series' summaries in a tier file, in time order.
pub type TierRows = Vec<Summary>;

impl TierFile {
    /// Number of series with a block.
    pub fn series_count(&self) -> usize {
        self.blocks.len()
    }

    /// Number of intervals over all series.
    pub fn interval_count(&self) -> u64 {
        self.blocks.iter().map(|b| u64::from(b.rows)).sum()
    }

    /// Whether `series` has summaries here.
    pub fn holds(&self, series: SeriesId) -> bool {
        self.block(series).is_some()
    }

    /// The series with summaries here, ascending.
    pub fn series(&self) -> impl Iterator<Item = SeriesId> + '_ {
        self.blocks.iter().map(|b| b.series)
    }

    /// Marks the file as holding a block that failed its checks; true the
    /// first time (the caller reports it once). Compaction rebuilds a
    /// damaged file from raw data where that still exists.
    pub fn mark_damaged(&self) -> bool {
        !self.damaged.swap(true, Ordering::AcqRel)
    }

    /// True once a block of the file failed its checks.
    pub fn is_damaged(&self) -> bool {
        self.damaged.load(Ordering::Acquire)
    }

    fn block(&self, series: SeriesId) -> Option<&Block> {
        self.blocks
            .binary_search_by_key(&series, |b| b.series)
            .ok()
            .map(|i| &self.blocks[i])
    }

    /// Marks the file replaced or expired: a reader that fails on it looks
    /// again instead of reporting damage.
    pub fn mark_removed(&self) {
        self.removed.store(true, Ordering::Release);
    }

    /// True once the file is out of the engine's tier index.
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    /// The summaries of `series` (empty when it has none here), checked
    /// against the block's checksum.
    pub fn read(&self, series: SeriesId) -> Result<TierRows> {
        let Some(block) = self.block(series) else {
            return Ok(Vec::new());
        };
        let corrupt =
            |e: String| EngineError::corrupt(&self.path, format!("block of series {series}: {e}"));
        let file = File::open(&self.path).map_err(io_err("open", &self.path))?;
        let mut bytes = vec![0u8; block.len as usize];
        file.read_exact_at(&mut bytes, block.offset)
            .map_err(io_err("read", &self.path))?;
        if crc32fast::hash(&bytes) != block.crc {
            return Err(corrupt("fails its checksum".into()));
        }
        decode_block(&bytes, block.rows as usize).map_err(corrupt)
    }
}

/// Writes the tier file `path` durably: `rows` of each series (sorted by
/// series, none empty), summarizing raw segments `sources`.
pub fn write(
    path: &Path,
    seq: u64,
    resolution: i64,
    partition: i64,
    sources: &[u64],
    rows: &[(SeriesId, TierRows)],
    level: usize,
) -> Result<TierFile> {
    let too_big = |_| EngineError::invalid("a tier block larger than 4 GiB cannot be written");
    let encoded = rows
        .iter()
        .map(|(_, r)| encode_block(r, level).map_err(EngineError::internal))
        .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&resolution.to_le_bytes());
    out.extend_from_slice(&partition.to_le_bytes());
    out.extend_from_slice(&count32(sources.len())?.to_le_bytes());
    out.extend_from_slice(&count32(rows.len())?.to_le_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    for seq in sources {
        out.extend_from_slice(&seq.to_le_bytes());
    }
    let mut offset = (HEADER_LEN + sources.len() * 8 + rows.len() * ENTRY_LEN + 4) as u64;
    let mut blocks = Vec::with_capacity(rows.len());
    for ((series, r), bytes) in rows.iter().zip(&encoded) {
        let block = Block {
            series: *series,
            rows: count32(r.len())?,
            offset,
            len: u32::try_from(bytes.len()).map_err(too_big)?,
            crc: crc32fast::hash(bytes),
        };
        out.extend_from_slice(&block.series.to_le_bytes());
        out.extend_from_slice(&block.rows.to_le_bytes());
        out.extend_from_slice(&block.offset.to_le_bytes());
        out.extend_from_slice(&block.len.to_le_bytes());
        out.extend_from_slice(&block.crc.to_le_bytes());
        offset += bytes.len() as u64;
        blocks.push(block);
    }
    let table_crc = crc32fast::hash(&out[HEADER_LEN..]);
    out.extend_from_slice(&table_crc.to_le_bytes());
    for bytes in &encoded {
        out.extend_from_slice(bytes);
    }
    write_atomic(path, &out)?;
    Ok(TierFile {
        path: path.to_path_buf(),
        seq,
        resolution,
        partition,
        sources: sources.to_vec(),
        blocks,
        file_bytes: out.len() as u64,
        removed: AtomicBool::new(false),
        damaged: AtomicBool::new(false),
    })
}

fn count32(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| EngineError::invalid("too many rows for one tier file"))
}

/// Opens the tier file `path` (numbered `seq`) by its header and table.
pub fn open(path: &Path, seq: u64) -> Result<TierFile> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let file_bytes = file.metadata().map_err(io_err("stat", path))?.len();
    let corrupt = |e: DecodeError| EngineError::corrupt(path, e.0);
    let read = |offset: u64, len: usize| -> Result<Vec<u8>> {
        if offset + len as u64 > file_bytes {
            return Err(EngineError::corrupt(path, "shorter than its table"));
        }
        let mut bytes = vec![0u8; len];
        file.read_exact_at(&mut bytes, offset)
            .map_err(io_err("read", path))?;
        Ok(bytes)
    };
    let header = read(0, HEADER_LEN)?;
    if &header[..8] != MAGIC {
        return Err(EngineError::corrupt(path, "not a tier file (bad magic)"));
    }
    let mut r = Reader::new(&header[8..]);
    let version = r.u32("version").map_err(corrupt)?;
    let resolution = r.i64("resolution").map_err(corrupt)?;
    let partition = r.i64("partition").map_err(corrupt)?;
    let sources = r.u32("sources").map_err(corrupt)? as usize;
    let series = r.u32("series").map_err(corrupt)? as usize;
    let crc = r.u32("header crc").map_err(corrupt)?;
    if crc != crc32fast::hash(&header[..HEADER_LEN - 4]) {
        return Err(EngineError::corrupt(path, "header checksum mismatch"));
    }
    if version != VERSION {
        return Err(EngineError::UnsupportedVersion {
            path: path.display().to_string(),
            found: version,
            supported: VERSION,
        });
    }
    let table_len = sources * 8 + series * ENTRY_LEN;
    let table = read(HEADER_LEN as u64, table_len + 4)?;
    let mut r = Reader::new(&table);
    let mut source_seqs = Vec::with_capacity(sources);
    for _ in 0..sources {
        source_seqs.push(r.u64("source").map_err(corrupt)?);
    }
    let mut blocks = Vec::with_capacity(series);
    for _ in 0..series {
        blocks.push(Block {
            series: r.u64("series").map_err(corrupt)?,
            rows: r.u32("rows").map_err(corrupt)?,
            offset: r.u64("offset").map_err(corrupt)?,
            len: r.u32("len").map_err(corrupt)?,
            crc: r.u32("crc").map_err(corrupt)?,
        });
    }
    let crc = r.u32("table crc").map_err(corrupt)?;
    if crc != crc32fast::hash(&table[..table_len]) {
        return Err(EngineError::corrupt(path, "table checksum mismatch"));
    }
    if !blocks.windows(2).all(|w| w[0].series < w[1].series) {
        return Err(EngineError::corrupt(path, "table not sorted by series"));
    }
    // A file cut short is found here, not by the first query that reads
    // it (reads rely on this: every block lies within the file).
    if blocks
        .iter()
        .any(|b| b.offset.saturating_add(u64::from(b.len)) > file_bytes)
    {
        return Err(EngineError::corrupt(
            path,
            "a block lies past the end of the file",
        ));
    }
    Ok(TierFile {
        path: path.to_path_buf(),
        seq,
        resolution,
        partition,
        sources: source_seqs,
        blocks,
        file_bytes,
        removed: AtomicBool::new(false),
        damaged: AtomicBool::new(false),
    })
}

/// The streams of a block. Counts, codes and timestamps go through the
/// value encoder too (as exact integers, which it stores as pco integers or
/// one constant): one encoder for every column.
fn encode_block(rows: &[Summary], level: usize) -> std::result::Result<Vec<u8>, String> {
    let column = |f: &dyn Fn(&Summary) -> f64| -> Vec<f64> { rows.iter().map(f).collect() };
    let values = |v: &[f64]| -> std::result::Result<Vec<u8>, String> {
        if v.is_empty() {
            Ok(Vec::new())
        } else {
            chunk::encode_values(v, level)
        }
    };
    let timestamps = |f: &dyn Fn(&Summary) -> i64| -> std::result::Result<Vec<u8>, String> {
        chunk::encode_timestamps(&rows.iter().map(f).collect::<Vec<_>>(), level)
    };
    let (min_codes, min_own) = extremes(rows, |s| s.min);
    let (max_codes, max_own) = extremes(rows, |s| s.max);
    let shapes: Vec<f64> = rows
        .iter()
        .zip(min_codes.iter().zip(&max_codes))
        .map(|(row, (&min, &max))| (row.count * 9 + u64::from(min) * 3 + u64::from(max)) as f64)
        .collect();
    let streams = [
        values(&shapes)?,
        timestamps(&|s| s.first.0)?,
        timestamps(&|s| s.last.0)?,
        values(&column(&|s| s.first.1))?,
        values(&column(&|s| s.last.1))?,
        values(&min_own)?,
        values(&max_own)?,
        values(&column(&|s| s.sum))?,
        values(&column(&|s| s.m2))?,
        values(&column(&|s| s.resets))?,
    ];
    let mut out = Vec::with_capacity(streams.iter().map(Vec::len).sum::<usize>() + 4 * STREAMS);
    for s in &streams {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    }
    for s in &streams {
        out.extend_from_slice(s);
    }
    Ok(out)
}

/// Codes of an extreme per row (0: the first value's bits, 1: the last's,
/// 2: its own), and the own values.
fn extremes(rows: &[Summary], of: impl Fn(&Summary) -> f64) -> (Vec<u8>, Vec<f64>) {
    let mut codes = Vec::with_capacity(rows.len());
    let mut own = Vec::new();
    for row in rows {
        let v = of(row).to_bits();
        codes.push(if v == row.first.1.to_bits() {
            0
        } else if v == row.last.1.to_bits() {
            1
        } else {
            own.push(of(row));
            2
        });
    }
    (codes, own)
}

/// Extremes from their codes (see [`extremes`]).
fn decode_extremes(
    codes: &[u8],
    own: &[u8],
    first: &[f64],
    last: &[f64],
) -> std::result::Result<Vec<f64>, String> {
    let owned = codes.iter().filter(|&&c| c == 2).count();
    let own = if owned == 0 {
        Vec::new()
    } else {
        chunk::decode_values(own, owned)?
    };
    let mut own = own.into_iter();
    codes
        .iter()
        .enumerate()
        .map(|(i, &code)| match code {
            0 => Ok(first[i]),
            1 => Ok(last[i]),
            _ => own.next().ok_or_else(|| "too few own extremes".to_string()),
        })
        .collect()
}

/// Each row's `(count, min code, max code)` from its shape (see
/// [`encode_block`]).
fn decode_shapes(shapes: &[f64]) -> std::result::Result<Vec<(u64, u8, u8)>, String> {
    shapes
        .iter()
        .enumerate()
        .map(|(i, &shape)| {
            let s = shape as u64;
            let decoded = (s / 9, (s % 9 / 3) as u8, (s % 3) as u8);
            if s as f64 != shape || decoded.0 == 0 {
                return Err(format!("row {i} has the shape {shape}"));
            }
            Ok(decoded)
        })
        .collect()
}

fn decode_block(bytes: &[u8], rows: usize) -> std::result::Result<TierRows, String> {
    let mut r = Reader::new(bytes);
    let mut lens = [0usize; STREAMS];
    for len in &mut lens {
        *len = r.u32("stream length").map_err(|e| e.0)? as usize;
    }
    let mut streams = Vec::with_capacity(STREAMS);
    for len in lens {
        streams.push(r.take(len, "stream").map_err(|e| e.0)?);
    }
    if r.remaining() != 0 {
        return Err("bytes after the last stream".into());
    }
    let values = |i: usize| chunk::decode_values(streams[i], rows);
    let shapes = decode_shapes(&values(0)?)?;
    let min_codes: Vec<u8> = shapes.iter().map(|s| s.1).collect();
    let max_codes: Vec<u8> = shapes.iter().map(|s| s.2).collect();
    let first_ts = chunk::decode_timestamps(streams[1], rows)?;
    let last_ts = chunk::decode_timestamps(streams[2], rows)?;
    let (first, last) = (values(3)?, values(4)?);
    let min = decode_extremes(&min_codes, streams[5], &first, &last)?;
    let max = decode_extremes(&max_codes, streams[6], &first, &last)?;
    let (sum, m2, resets) = (values(7)?, values(8)?, values(9)?);
    Ok((0..rows)
        .map(|i| Summary {
            count: shapes[i].0,
            sum: sum[i],
            m2: m2[i],
            min: min[i],
            max: max[i],
            first: (first_ts[i], first[i]),
            last: (last_ts[i], last[i]),
            resets: resets[i],
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::summarize;

    #[test]
    fn a_tier_file_round_trips_and_damage_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.tier");
        let a: Vec<_> = (0..500).map(|i| (i * 10 + i % 3, (i % 7) as f64)).collect();
        let b = vec![(5, f64::NAN), (17, f64::from_bits(0x7ff8_0000_dead_beef))];
        let rows = vec![(3, summarize(&a, 100)), (9, summarize(&b, 100))];
        let written = write(&path, 7, 100, 0, &[4, 5], &rows, 8).unwrap();
        let opened = open(&path, 7).unwrap();
        assert_eq!(opened.sources, vec![4, 5]);
        assert_eq!((opened.series_count(), opened.interval_count()), (2, 51));
        assert_eq!(opened.file_bytes, written.file_bytes);
        assert_eq!(opened.read(3).unwrap(), rows[0].1);
        let back = opened.read(9).unwrap();
        assert_eq!(back[0].last.1.to_bits(), 0x7ff8_0000_dead_beef);
        assert!(opened.read(4).unwrap().is_empty());

        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() - 3;
        bytes[at] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert!(open(&path, 7).unwrap().read(9).is_err());
        bytes[20] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(open(&path, 7).is_err());
    }
}
