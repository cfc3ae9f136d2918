//! What the WAL's frames mean: the two record kinds, how they are written,
//! and replay that hands decoded records to the engine.
//!
//! ```text
//! kind 1  points: n × raw entry (types.rs), byte-for-byte the layout of a
//!         raw batch (written before packed records; still replayed)
//! kind 2  series announcement: id u64 | series key (series_key.rs)
//! kind 3  points, packed (packed.rs): about 10 bytes an entry, not 24
//! ```

use std::borrow::Cow;
use std::path::Path;

use super::frame::{self, ReplayReport};
use super::log::{segments, Appended, Wal};
use super::packed;
use crate::codec::{DecodeError, Reader};
use crate::error::Result;
use crate::series_key::{decode_key, encode_key, SeriesKey};
use crate::types::{SeriesId, POINT_BYTES};

/// Raw points, as the log was written before packed records.
pub(super) const KIND_POINTS: u8 = 1;
const KIND_SERIES: u8 = 2;
const KIND_PACKED: u8 = 3;
/// Largest points record. A bigger batch is logged as several records, so
/// the append mutex is never held for one huge write while small writers
/// wait behind it.
pub const MAX_RECORD_POINTS: usize = 16_384;

/// One decoded WAL record.
#[derive(Debug)]
pub enum Record<'a> {
    /// Raw entries, in the layout of a raw batch.
    Points(Cow<'a, [u8]>),
    /// A new series and its id.
    Series(SeriesId, SeriesKey),
}

impl<'a> Record<'a> {
    fn decode(kind: u8, payload: &'a [u8]) -> Result<Record<'a>, DecodeError> {
        match kind {
            KIND_POINTS if payload.len().is_multiple_of(POINT_BYTES) => {
                Ok(Record::Points(Cow::Borrowed(payload)))
            }
            KIND_PACKED => Ok(Record::Points(Cow::Owned(packed::unpack(payload)?))),
            KIND_SERIES => {
                let mut r = Reader::new(payload);
                let id = r.u64("series id")?;
                let key = decode_key(&mut r)?;
                if r.remaining() != 0 {
                    return Err(DecodeError("trailing bytes in a series record".into()));
                }
                Ok(Record::Series(id, key))
            }
            _ => Err(DecodeError(format!(
                "record kind {kind} with {} bytes",
                payload.len()
            ))),
        }
    }

    fn points(&self) -> u64 {
        match self {
            Record::Points(raw) => (raw.len() / POINT_BYTES) as u64,
            Record::Series(..) => 0,
        }
    }
}

impl Wal {
    /// Appends raw entries, as one record per [`MAX_RECORD_POINTS`]. Durable
    /// per the sync mode when this returns. A failure after some records
    /// were written leaves those records in the log: replaying or retrying
    /// the same points is harmless (equal timestamps overwrite).
    pub fn append_points(&self, raw: &[u8]) -> Result<Appended<'_>> {
        let mut records = raw.chunks(MAX_RECORD_POINTS * POINT_BYTES);
        let mut payload = Vec::with_capacity(raw.len().min(MAX_RECORD_POINTS * POINT_BYTES) / 2);
        let mut append = |record: &[u8]| {
            payload.clear();
            packed::pack(record, &mut payload);
            self.append(KIND_PACKED, &[&payload])
        };
        let ticket = append(records.next().unwrap_or(&[]))?;
        for record in records {
            // Later records go to the same or a newer segment, which the
            // ticket of the first keeps too.
            drop(append(record)?);
        }
        Ok(ticket)
    }

    /// Appends a series announcement.
    pub fn append_series(&self, id: SeriesId, key: &SeriesKey) -> Result<Appended<'_>> {
        let mut payload = Vec::with_capacity(64);
        payload.extend_from_slice(&id.to_le_bytes());
        encode_key(&mut payload, key);
        self.append(KIND_SERIES, &[&payload])
    }
}

/// Reads every segment in `dir` in order and hands each intact record to
/// `apply` with the segment it came from. A record that does not decode, or
/// that `apply` rejects, is counted as corrupt and skipped; replay never
/// stops at one bad record.
pub fn replay(
    dir: &Path,
    mut apply: impl FnMut(u64, Record<'_>) -> Result<()>,
) -> Result<ReplayReport> {
    frame::replay(&segments(dir)?, |seq, kind, payload| {
        let record = Record::decode(kind, payload)
            .map_err(|e| crate::error::EngineError::corrupt(dir, e.0))?;
        let points = record.points();
        apply(seq, record).map(|()| points)
    })
}
