//! The chunk index: which segments hold chunks of which series.
//!
//! Built at open from segment tables alone and extended by every flush. The
//! lock is held only to collect chunk references; reading and decoding
//! happen after it is released, so queries never block a flush's insert
//! for longer than a copy of a few references.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::hash::FastBuildHasher;
use crate::storage::segment::Segment;
use crate::types::SeriesId;

/// One chunk: its segment and its position in that segment's table.
#[derive(Debug, Clone)]
pub struct ChunkRef {
    pub segment: Arc<Segment>,
    pub index: usize,
}

/// Totals for `Tms.info`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IndexStats {
    pub segments: u64,
    pub chunks: u64,
    pub bytes: u64,
}

#[derive(Default)]
struct Inner {
    /// Per series, chunk references in ascending segment order.
    by_series: HashMap<SeriesId, Vec<ChunkRef>, FastBuildHasher>,
    segments: BTreeMap<u64, Arc<Segment>>,
}

impl Inner {
    fn add(&mut self, segment: Arc<Segment>) {
        for (index, meta) in segment.chunks.iter().enumerate() {
            self.by_series
                .entry(meta.series)
                .or_default()
                .push(ChunkRef {
                    segment: Arc::clone(&segment),
                    index,
                });
        }
        self.segments.insert(segment.seq, segment);
    }
}

/// Series to chunk references, shared by all queries.
#[derive(Default)]
pub struct ChunkIndex {
    inner: RwLock<Inner>,
}

impl ChunkIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a segment. Segments must be added in ascending `seq` order so
    /// each series' list stays oldest first (the merge relies on it).
    pub fn add(&self, segment: Arc<Segment>) {
        self.inner.write().add(segment);
    }

    /// Chunks of `series` overlapping `[from, to]`, oldest segment first.
    pub fn lookup(&self, series: SeriesId, from: i64, to: i64) -> Vec<ChunkRef> {
        let inner = self.inner.read();
        let Some(refs) = inner.by_series.get(&series) else {
            return Vec::new();
        };
        refs.iter()
            .filter(|r| {
                let meta = &r.segment.chunks[r.index];
                meta.max_ts >= from && meta.min_ts <= to
            })
            .cloned()
            .collect()
    }

    /// Takes the segments numbered `seqs` out of the index and marks them
    /// removed, and adds `replacement` (which must be numbered above every
    /// indexed segment), in one step: a query sees the old set or the new.
    pub fn replace(&self, seqs: &[u64], replacement: Option<Arc<Segment>>) -> Vec<Arc<Segment>> {
        let mut inner = self.inner.write();
        let removed: Vec<Arc<Segment>> = seqs
            .iter()
            .filter_map(|seq| inner.segments.remove(seq))
            .collect();
        if !removed.is_empty() {
            let gone: HashSet<u64> = seqs.iter().copied().collect();
            inner.by_series.retain(|_, refs| {
                refs.retain(|r| !gone.contains(&r.segment.seq));
                !refs.is_empty()
            });
        }
        for segment in &removed {
            segment.mark_removed();
        }
        if let Some(segment) = replacement {
            inner.add(segment);
        }
        removed
    }

    /// Every indexed segment, grouped by partition, oldest first.
    pub fn by_partition(&self) -> BTreeMap<i64, Vec<Arc<Segment>>> {
        let inner = self.inner.read();
        let mut out: BTreeMap<i64, Vec<Arc<Segment>>> = BTreeMap::new();
        for segment in inner.segments.values() {
            out.entry(segment.partition)
                .or_default()
                .push(Arc::clone(segment));
        }
        out
    }

    /// Sequence numbers of the segments of `partition`, ascending.
    pub fn partition_seqs(&self, partition: i64) -> Vec<u64> {
        let inner = self.inner.read();
        inner
            .segments
            .values()
            .filter(|s| s.partition == partition)
            .map(|s| s.seq)
            .collect()
    }

    /// Highest segment sequence number indexed, 0 if none.
    pub fn max_seq(&self) -> u64 {
        self.inner
            .read()
            .segments
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
    }

    /// `(partition, seq)` of every indexed segment, in sequence order.
    pub fn segment_ids(&self) -> Vec<(i64, u64)> {
        let inner = self.inner.read();
        inner
            .segments
            .values()
            .map(|s| (s.partition, s.seq))
            .collect()
    }

    /// Largest timestamp of any indexed chunk; `i64::MIN` if none.
    pub fn max_ts(&self) -> i64 {
        let inner = self.inner.read();
        inner
            .segments
            .values()
            .map(|s| s.max_ts())
            .max()
            .unwrap_or(i64::MIN)
    }

    /// Segment, chunk and byte totals.
    pub fn stats(&self) -> IndexStats {
        let inner = self.inner.read();
        IndexStats {
            segments: inner.segments.len() as u64,
            chunks: inner.segments.values().map(|s| s.chunks.len() as u64).sum(),
            bytes: inner.segments.values().map(|s| s.file_bytes).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::segment::{ChunkMeta, Format};
    use std::path::PathBuf;

    fn segment(seq: u64, chunks: &[(SeriesId, i64, i64)]) -> Arc<Segment> {
        Arc::new(Segment::new(
            seq,
            0,
            PathBuf::from(format!("{seq}.seg")),
            100,
            (
                Format::V1,
                Vec::new(),
                chunks
                    .iter()
                    .map(|&(series, min_ts, max_ts)| ChunkMeta {
                        series,
                        min_ts,
                        max_ts,
                        count: 1,
                        timestamps: 0,
                        len: 0,
                        crc: 0,
                        offset: 0,
                    })
                    .collect(),
            ),
            std::time::SystemTime::now(),
        ))
    }

    #[test]
    fn lookup_returns_overlapping_chunks_oldest_first() {
        let index = ChunkIndex::new();
        index.add(segment(1, &[(0, 0, 10), (1, 0, 10)]));
        index.add(segment(2, &[(0, 11, 20)]));
        index.add(segment(3, &[(0, 5, 15)]));
        let seqs = |from, to| -> Vec<u64> {
            index
                .lookup(0, from, to)
                .iter()
                .map(|r| r.segment.seq)
                .collect()
        };
        assert_eq!(seqs(0, 100), vec![1, 2, 3]);
        assert_eq!(seqs(16, 17), vec![2]);
        assert_eq!(seqs(10, 10), vec![1, 3]);
        assert!(index.lookup(7, 0, 100).is_empty());
        assert_eq!(index.max_seq(), 3);
        assert_eq!(
            index.stats(),
            IndexStats {
                segments: 3,
                chunks: 4,
                bytes: 300
            }
        );
    }
}
