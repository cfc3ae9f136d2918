//! The bytes of a segment file, `chunks/<partition>/<seq, 20 digits>.seg`
//! (see layout.rs). Both formats start with the same magic and a version.
//!
//! Format 2, written today:
//!
//! ```text
//! header   magic "TMSSEG01" | version u32 = 2 | column count u32 | chunk count u32
//!          | partition i64 | seq u64 | tables crc32 u32 | header crc32 u32 (bytes before it)
//! columns  column count × (min ts i64 | max ts i64 | points u32 | bytes u32 | crc32 u32)
//! chunks   chunk count × (series u64 | column u32 | bytes u32 | crc32 u32), sorted by series
//! payload  chunks' values (tagged, see chunk.rs) in table order, each column's
//!          pco timestamps right before the first chunk using it (offsets
//!          follow from the lengths)
//! ```
//!
//! Format 1, still read (compaction rewrites it as format 2):
//!
//! ```text
//! header   magic "TMSSEG01" | version u32 = 1 | chunk count u32 | partition i64
//!          | seq u64 | table crc32 u32 | header crc32 u32 (bytes before it)
//! chunks   chunk count × (series u64 | min ts i64 | max ts i64 | points u32
//!          | timestamps len u32 | values len u32 | payload crc32 u32 | offset u64)
//! payload  per chunk: pco timestamps, then pco values
//! ```
//!
//! Every format from 2 on starts with a 44-byte header that ends in its
//! checksum, so a flipped version byte reads as damage, and a file of a newer
//! format (a store written by a newer Tms) is refused with the version it
//! names, never guessed at.

use std::fs::File;
use std::path::Path;
use std::time::SystemTime;

use super::{read_at, ChunkMeta, ColumnMeta, Format, Segment, SegmentInput};
use crate::codec::{DecodeError, Reader};
use crate::error::{io_err, EngineError, Result};
use crate::files::write_atomic;

const MAGIC: &[u8; 8] = b"TMSSEG01";
/// The format written.
const VERSION: u32 = 2;
pub(super) const HEADER_LEN: usize = 44;
const COLUMN_LEN: usize = 28;
const CHUNK_LEN: usize = 20;
const V1_HEADER_LEN: usize = 40;
const V1_CHUNK_LEN: usize = 48;

/// Writes a segment durably (tmp, fsync, rename, fsync dir), its chunks
/// sorted by series.
pub fn write(path: &Path, seq: u64, partition: i64, mut input: SegmentInput) -> Result<Segment> {
    input.chunks.sort_unstable_by_key(|c| c.series);
    let too_big = |_| EngineError::invalid("a chunk larger than 4 GiB cannot be written");
    let column_lens = input
        .columns
        .iter()
        .map(|c| u32::try_from(c.bytes.len()).map_err(too_big))
        .collect::<Result<Vec<u32>>>()?;
    let chunk_refs = input
        .chunks
        .iter()
        .map(|c| {
            Ok((
                c.column as u32,
                u32::try_from(c.bytes.len()).map_err(too_big)?,
            ))
        })
        .collect::<Result<Vec<(u32, u32)>>>()?;
    let tables_len = input.columns.len() * COLUMN_LEN + input.chunks.len() * CHUNK_LEN;
    let payload_start = (HEADER_LEN + tables_len) as u64;
    let layout = lay_out(&column_lens, &chunk_refs, payload_start)
        .map_err(|e| EngineError::internal(format!("segment layout: {e}")))?;
    let mut out = Vec::with_capacity(layout.end as usize);
    out.resize(HEADER_LEN, 0);
    let mut columns = Vec::with_capacity(input.columns.len());
    for (c, &offset) in input.columns.iter().zip(&layout.columns) {
        let meta = ColumnMeta {
            min_ts: c.min_ts,
            max_ts: c.max_ts,
            count: u32::try_from(c.count).map_err(too_big)?,
            len: c.bytes.len() as u32,
            crc: crc32fast::hash(&c.bytes),
            offset,
        };
        out.extend_from_slice(&meta.min_ts.to_le_bytes());
        out.extend_from_slice(&meta.max_ts.to_le_bytes());
        out.extend_from_slice(&meta.count.to_le_bytes());
        out.extend_from_slice(&meta.len.to_le_bytes());
        out.extend_from_slice(&meta.crc.to_le_bytes());
        columns.push(meta);
    }
    let mut chunks = Vec::with_capacity(input.chunks.len());
    for (c, &offset) in input.chunks.iter().zip(&layout.chunks) {
        let column = &columns[c.column];
        let meta = ChunkMeta {
            series: c.series,
            min_ts: column.min_ts,
            max_ts: column.max_ts,
            count: column.count,
            timestamps: c.column as u32,
            len: c.bytes.len() as u32,
            crc: crc32fast::hash(&c.bytes),
            offset,
        };
        out.extend_from_slice(&meta.series.to_le_bytes());
        out.extend_from_slice(&meta.timestamps.to_le_bytes());
        out.extend_from_slice(&meta.len.to_le_bytes());
        out.extend_from_slice(&meta.crc.to_le_bytes());
        chunks.push(meta);
    }
    let tables_crc = crc32fast::hash(&out[HEADER_LEN..]);
    let mut placed = vec![false; columns.len()];
    for c in &input.chunks {
        if !std::mem::replace(&mut placed[c.column], true) {
            out.extend_from_slice(&input.columns[c.column].bytes);
        }
        out.extend_from_slice(&c.bytes);
    }
    let count = |n: usize| {
        u32::try_from(n).map_err(|_| EngineError::invalid("too many chunks for one segment"))
    };
    let header = Header {
        version: VERSION,
        columns: count(columns.len())?,
        chunks: count(chunks.len())?,
        partition,
        seq,
        tables_crc,
    };
    out[..HEADER_LEN].copy_from_slice(&header.encode());
    write_atomic(path, &out)?;
    Ok(Segment::new(
        seq,
        partition,
        path.to_path_buf(),
        out.len() as u64,
        (Format::V2, columns, chunks),
        SystemTime::now(),
    ))
}

/// Where the payloads of a format-2 file lie.
struct Layout {
    columns: Vec<u64>,
    chunks: Vec<u64>,
    end: u64,
}

/// The payload layout of format 2, which writer and reader share: chunks in
/// table order, each column right before the first chunk that uses it (so
/// reading a series whose column is its own, or first, is one read).
/// `chunks` are `(column, length)`; every column must be used.
fn lay_out(
    column_lens: &[u32],
    chunks: &[(u32, u32)],
    start: u64,
) -> std::result::Result<Layout, String> {
    const UNPLACED: u64 = u64::MAX;
    let mut layout = Layout {
        columns: vec![UNPLACED; column_lens.len()],
        chunks: Vec::with_capacity(chunks.len()),
        end: start,
    };
    // At most 2^32 entries of at most 4 GiB each: u64 offsets cannot
    // overflow, but saturating arithmetic costs nothing here.
    for (i, &(column, len)) in chunks.iter().enumerate() {
        let Some(&column_len) = column_lens.get(column as usize) else {
            return Err(format!(
                "chunk {i} refers to column {column} of {}",
                column_lens.len()
            ));
        };
        if layout.columns[column as usize] == UNPLACED {
            layout.columns[column as usize] = layout.end;
            layout.end = layout.end.saturating_add(u64::from(column_len));
        }
        layout.chunks.push(layout.end);
        layout.end = layout.end.saturating_add(u64::from(len));
    }
    if let Some(unused) = layout.columns.iter().position(|&o| o == UNPLACED) {
        return Err(format!("column {unused} is used by no chunk"));
    }
    Ok(layout)
}

/// The fixed-size header of a format-2 file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    version: u32,
    columns: u32,
    chunks: u32,
    partition: i64,
    seq: u64,
    tables_crc: u32,
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..8].copy_from_slice(MAGIC);
        out[8..12].copy_from_slice(&self.version.to_le_bytes());
        out[12..16].copy_from_slice(&self.columns.to_le_bytes());
        out[16..20].copy_from_slice(&self.chunks.to_le_bytes());
        out[20..28].copy_from_slice(&self.partition.to_le_bytes());
        out[28..36].copy_from_slice(&self.seq.to_le_bytes());
        out[36..40].copy_from_slice(&self.tables_crc.to_le_bytes());
        let crc = crc32fast::hash(&out[..40]);
        out[40..44].copy_from_slice(&crc.to_le_bytes());
        out
    }
}

/// Opens a segment by reading its header and tables only. Returns the
/// segment and how many bytes were read.
pub fn open(path: &Path) -> Result<(Segment, u64)> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let metadata = file.metadata().map_err(io_err("stat", path))?;
    let file_bytes = metadata.len();
    let corrupt = |e: DecodeError| EngineError::corrupt(path, e.0);
    let mut start = [0u8; 12];
    read_at(&file, path, &mut start, 0, file_bytes)?;
    let mut r = Reader::new(&start);
    if &r.array::<8>("magic").map_err(corrupt)? != MAGIC {
        return Err(EngineError::corrupt(path, "not a segment file (bad magic)"));
    }
    let version = r.u32("version").map_err(corrupt)?;
    let header_len = if version == 1 {
        V1_HEADER_LEN
    } else {
        HEADER_LEN
    };
    let mut header = vec![0u8; header_len];
    read_at(&file, path, &mut header, 0, file_bytes)?;
    let (body, crc) = header.split_at(header_len - 4);
    // The checksum first: a flipped version byte is damage, not a format.
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(EngineError::corrupt(path, "header checksum mismatch"));
    }
    if version != 1 && version != VERSION {
        // A newer release's file (one whose header checks): refused, never guessed.
        return Err(EngineError::UnsupportedVersion {
            path: path.display().to_string(),
            found: version,
            supported: VERSION,
        });
    }
    let mut r = Reader::new(&body[12..]);
    let tables = if version == 1 {
        let chunks = r.u32("chunk count").map_err(corrupt)? as usize;
        let partition = r.i64("partition").map_err(corrupt)?;
        let seq = r.u64("seq").map_err(corrupt)?;
        let crc = r.u32("table crc").map_err(corrupt)?;
        let table = read_table(
            &file,
            path,
            header_len,
            chunks * V1_CHUNK_LEN,
            crc,
            file_bytes,
        )?;
        let chunks = v1_chunks(
            &table,
            chunks,
            (header_len + table.len()) as u64,
            file_bytes,
        )
        .map_err(|e| EngineError::corrupt(path, e))?;
        (
            partition,
            seq,
            (Format::V1, Vec::new(), chunks),
            table.len(),
        )
    } else {
        let columns = r.u32("column count").map_err(corrupt)? as usize;
        let chunks = r.u32("chunk count").map_err(corrupt)? as usize;
        let partition = r.i64("partition").map_err(corrupt)?;
        let seq = r.u64("seq").map_err(corrupt)?;
        let crc = r.u32("tables crc").map_err(corrupt)?;
        let len = columns * COLUMN_LEN + chunks * CHUNK_LEN;
        let table = read_table(&file, path, header_len, len, crc, file_bytes)?;
        let tables = v2_tables(&table, columns, chunks, header_len as u64, file_bytes)
            .map_err(|e| EngineError::corrupt(path, e))?;
        (partition, seq, tables, table.len())
    };
    let (partition, seq, tables, table_len) = tables;
    let written = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let segment = Segment::new(
        seq,
        partition,
        path.to_path_buf(),
        file_bytes,
        tables,
        written,
    );
    Ok((segment, (header_len + table_len) as u64))
}

/// Reads `len` table bytes after the header and checks their checksum.
fn read_table(
    file: &File,
    path: &Path,
    header_len: usize,
    len: usize,
    crc: u32,
    file_bytes: u64,
) -> Result<Vec<u8>> {
    if (header_len as u64).saturating_add(len as u64) > file_bytes {
        return Err(EngineError::corrupt(path, "tables run past the end"));
    }
    let mut table = vec![0u8; len];
    read_at(file, path, &mut table, header_len as u64, file_bytes)?;
    if crc32fast::hash(&table) != crc {
        return Err(EngineError::corrupt(path, "chunk table checksum mismatch"));
    }
    Ok(table)
}

/// The columns and chunks of a format-2 table, their offsets laid out as
/// the writer did, ending exactly where the file does.
fn v2_tables(
    table: &[u8],
    columns: usize,
    chunks: usize,
    header_len: u64,
    file_bytes: u64,
) -> std::result::Result<(Format, Vec<ColumnMeta>, Vec<ChunkMeta>), String> {
    let mut r = Reader::new(table);
    let e = |e: DecodeError| e.0;
    let mut column_metas = Vec::with_capacity(columns);
    for i in 0..columns {
        let (min_ts, max_ts) = (r.i64("min ts").map_err(e)?, r.i64("max ts").map_err(e)?);
        let (count, len, crc) = (
            r.u32("points").map_err(e)?,
            r.u32("bytes").map_err(e)?,
            r.u32("crc").map_err(e)?,
        );
        if count == 0 || min_ts > max_ts {
            return Err(format!("column {i} has impossible bounds"));
        }
        column_metas.push(ColumnMeta {
            min_ts,
            max_ts,
            count,
            len,
            crc,
            offset: 0,
        });
    }
    let mut entries = Vec::with_capacity(chunks);
    for _ in 0..chunks {
        let (series, column) = (r.u64("series").map_err(e)?, r.u32("column").map_err(e)?);
        let (len, crc) = (r.u32("bytes").map_err(e)?, r.u32("crc").map_err(e)?);
        entries.push((series, column, len, crc));
    }
    let column_lens: Vec<u32> = column_metas.iter().map(|c| c.len).collect();
    let refs: Vec<(u32, u32)> = entries.iter().map(|&(_, c, len, _)| (c, len)).collect();
    let layout = lay_out(&column_lens, &refs, header_len + table.len() as u64)?;
    if layout.end != file_bytes {
        return Err(format!(
            "the tables account for {} bytes, the file has {file_bytes}",
            layout.end
        ));
    }
    for (meta, offset) in column_metas.iter_mut().zip(layout.columns) {
        meta.offset = offset;
    }
    let chunk_metas = entries
        .into_iter()
        .zip(layout.chunks)
        .map(|((series, column, len, crc), offset)| {
            let c = &column_metas[column as usize];
            ChunkMeta {
                series,
                min_ts: c.min_ts,
                max_ts: c.max_ts,
                count: c.count,
                timestamps: column,
                len,
                crc,
                offset,
            }
        })
        .collect();
    Ok((Format::V2, column_metas, chunk_metas))
}

/// The chunks of a format-1 table, each checked to lie inside the payload.
fn v1_chunks(
    table: &[u8],
    chunks: usize,
    payload_start: u64,
    file_bytes: u64,
) -> std::result::Result<Vec<ChunkMeta>, String> {
    let mut r = Reader::new(table);
    let e = |e: DecodeError| e.0;
    let mut metas = Vec::with_capacity(chunks);
    for i in 0..chunks {
        let series = r.u64("series").map_err(e)?;
        let (min_ts, max_ts) = (r.i64("min ts").map_err(e)?, r.i64("max ts").map_err(e)?);
        let count = r.u32("points").map_err(e)?;
        let (ts_len, val_len) = (
            r.u32("timestamps len").map_err(e)?,
            r.u32("values len").map_err(e)?,
        );
        let (crc, offset) = (
            r.u32("payload crc").map_err(e)?,
            r.u64("offset").map_err(e)?,
        );
        let len = ts_len.checked_add(val_len);
        let end = len.and_then(|len| offset.checked_add(u64::from(len)));
        if offset < payload_start
            || end.is_none_or(|e| e > file_bytes)
            || count == 0
            || min_ts > max_ts
        {
            return Err(format!("chunk {i} has impossible bounds"));
        }
        metas.push(ChunkMeta {
            series,
            min_ts,
            max_ts,
            count,
            timestamps: ts_len,
            len: len.unwrap_or(0),
            crc,
            offset,
        });
    }
    Ok(metas)
}
