//! The flush path (serialized): seal buffers, compress, write one segment
//! per partition, index it, release the seals, persist the registry, delete
//! WAL segments no buffered point needs. A failed flush keeps every point
//! buffered and in the WAL for the next attempt.
//!
//! Concurrency: a WAL append returns a ticket that writers hold until their
//! points are in the buffers (or their series in the registry). The flusher
//! keeps every segment from the oldest live ticket on, reading the active
//! segment, then the tickets, then the buffers, so it never deletes a
//! segment whose data is still on its way. Writers never wait for a flush.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::Engine;
use crate::buffer::Sealed;
use crate::error::{EngineError, Result};
use crate::files::ensure_dir;
use crate::parallel;
use crate::storage::manifest::{self, SegmentId};
use crate::storage::segment;
use crate::storage::{Segment, SegmentInput};
use crate::types::{Point, SeriesId};

/// Which buffers a flush writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushScope {
    /// Every buffered point (then the WAL is rotated and emptied).
    All,
    /// Buffers that reached the flush threshold.
    Pending,
    /// Buffers with no append for this long.
    Idle(Duration),
}

/// What a flush did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "nif", derive(rustler::NifMap))]
pub struct FlushReport {
    pub points: u64,
    pub chunks: u64,
    pub segments: u64,
    /// WAL files that could not be removed, with the reason.
    pub unremoved: Vec<(String, String)>,
    /// An idle flush found another flush running and did nothing.
    pub skipped: bool,
}

impl Engine {
    /// Writes buffered points to segments. A failed flush keeps every point
    /// buffered (and in the WAL) for the next attempt.
    pub fn flush(&self, scope: FlushScope) -> Result<FlushReport> {
        self.check_open()?;
        self.flush_unchecked(scope)
    }

    pub(super) fn flush_unchecked(&self, scope: FlushScope) -> Result<FlushReport> {
        // Flushes are serialized (seal order must follow segment order). An
        // idle (cold) flush is periodic housekeeping: rather than queue
        // behind a running flush it is skipped; the guard's drop releases it.
        let _flushing = match scope {
            FlushScope::Idle(_) => match self.flush_lock.try_lock() {
                Some(_) if self.shut.load(Ordering::Acquire) => return Err(EngineError::Closed),
                Some(guard) => guard,
                None => {
                    return Ok(FlushReport {
                        skipped: true,
                        ..FlushReport::default()
                    })
                }
            },
            _ => self.maintenance_lock()?,
        };
        let keys = match scope {
            FlushScope::All => self.buffers.keys_all(),
            // Past half the memory ceiling, flush everything rather than
            // let writers run into Overloaded.
            FlushScope::Pending if self.buffers.len() > self.config.max_buffered_points / 2 => {
                self.buffers.take_full();
                self.buffers.keys_all()
            }
            FlushScope::Pending => self.buffers.take_full(),
            FlushScope::Idle(idle) => {
                let idle = idle.as_millis() as u64;
                self.buffers.keys_idle(self.now_ms().saturating_sub(idle))
            }
        };
        let mut by_partition: BTreeMap<i64, Vec<SeriesId>> = BTreeMap::new();
        for (series, partition) in keys {
            by_partition.entry(partition).or_default().push(series);
        }
        let mut report = FlushReport::default();
        let mut failure = None;
        for (partition, series) in by_partition {
            match self.flush_partition(partition, &series) {
                Ok((chunks, points)) => {
                    report.chunks += chunks;
                    report.points += points;
                    report.segments += u64::from(chunks > 0);
                }
                Err(err) => {
                    failure.get_or_insert(err);
                }
            }
        }
        if let Some(err) = failure {
            return Err(err);
        }
        report.unremoved = self.release_wal(scope == FlushScope::All)?;
        self.stats.note_flush();
        Ok(report)
    }

    fn flush_partition(&self, partition: i64, series: &[SeriesId]) -> Result<(u64, u64)> {
        let sealed: Vec<(SeriesId, Arc<Sealed>)> = series
            .iter()
            .filter_map(|&s| self.buffers.seal((s, partition)).map(|x| (s, x)))
            .collect();
        if sealed.is_empty() {
            return Ok((0, 0));
        }
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        match self.write_segment(partition, seq, &sealed) {
            Ok(segment) => {
                let points = sealed.iter().map(|(_, s)| s.points.len() as u64).sum();
                self.index.add(Arc::new(segment));
                for (s, x) in &sealed {
                    self.buffers.commit((*s, partition), x);
                }
                Ok((sealed.len() as u64, points))
            }
            Err(err) => {
                for (s, x) in &sealed {
                    self.buffers.restore((*s, partition), x);
                }
                Err(err)
            }
        }
    }

    /// Writes the sealed points as segment `seq`, and lists it in the
    /// manifest before anyone can see it.
    fn write_segment(
        &self,
        partition: i64,
        seq: u64,
        sealed: &[(SeriesId, Arc<Sealed>)],
    ) -> Result<Segment> {
        let runs: Vec<(SeriesId, &[Point])> = sealed
            .iter()
            .map(|(s, x)| (*s, x.points.as_slice()))
            .collect();
        let inputs = self.encode_chunks(&runs)?;
        let segment = self.write_inputs(partition, seq, inputs)?;
        // On failure the file stays: the manifest may have reached the disk
        // before its directory sync failed. Open sorts it out either way.
        self.record_segments(Some(&segment), &[])?;
        Ok(segment)
    }

    /// Records the live segment set after a change (the indexed segments,
    /// without `removed`, with `added`) in the manifest. Called under the
    /// flush lock, before the change becomes visible.
    pub(super) fn record_segments(&self, added: Option<&Segment>, removed: &[u64]) -> Result<()> {
        let removed: HashSet<u64> = removed.iter().copied().collect();
        let mut live: Vec<SegmentId> = self
            .index
            .segment_ids()
            .into_iter()
            .filter(|(_, seq)| !removed.contains(seq))
            .collect();
        live.extend(added.map(|s| (s.partition, s.seq)));
        manifest::store(&self.layout.manifest(), &live)
    }

    /// Compresses runs into one segment's chunks and columns on all cores
    /// but one (compression is what bounds sustained ingest, but the BEAM's
    /// schedulers need a core too: a flush that takes every core delays
    /// every process in the VM).
    pub(super) fn encode_chunks(&self, runs: &[(SeriesId, &[Point])]) -> Result<SegmentInput> {
        let threads = parallel::cores().saturating_sub(1).max(1);
        SegmentInput::encode(runs, self.config.compression_level, threads)
    }

    /// Writes a segment of `partition` durably.
    pub(super) fn write_inputs(
        &self,
        partition: i64,
        seq: u64,
        input: SegmentInput,
    ) -> Result<Segment> {
        ensure_dir(&self.layout.partition(partition))?;
        segment::write(&self.layout.segment(partition, seq), seq, partition, input)
    }

    /// Persists the registry, then deletes WAL segments no buffered point
    /// needs. With `rotate`, the active segment is closed first so that a
    /// full flush leaves nothing to replay.
    fn release_wal(&self, rotate: bool) -> Result<Vec<(String, String)>> {
        // In this order: an append not yet in the buffers holds a ticket,
        // and one whose ticket is gone is in the buffers read after it.
        let active = if rotate {
            self.wal.rotate()?
        } else {
            self.wal.active_seq()
        };
        let pending = self.wal.oldest_pending().unwrap_or(u64::MAX);
        let keep_from = active.min(pending).min(self.buffers.min_wal_seq());
        self.registry.persist(&self.layout.registry())?;
        self.wal.remove_below(keep_from)
    }
}
