//! Reading one chunk: through the decoded-chunk cache, with damage (a
//! payload that fails its checksum, a segment file gone from under the
//! store) remembered, so a damaged chunk costs one read rather than one per
//! query, and is reported once.

use std::collections::HashSet;
use std::sync::Arc;

use super::stats::Stats;
use super::Engine;
use crate::error::{EngineError, Result};
use moka::sync::Cache;

use crate::query::DecodedChunk;
use crate::storage::segment::ColumnCache;
use crate::storage::{ChunkRef, Segment};

/// What a query does when a chunk it needs is damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDamage {
    /// Answer from every readable source and leave the damaged chunk out;
    /// the damage is counted in `info` and reported among its problems.
    #[default]
    Skip,
    /// Fail the query with the damage's error.
    Fail,
}

/// True for the errors that mean a chunk is unreadable for good, as opposed
/// to a passing failure (a full file table, a signal) worth a retry.
pub(super) fn is_damage(err: &EngineError) -> bool {
    matches!(
        err,
        EngineError::CorruptData { .. }
            | EngineError::Io {
                errno: Some("enoent"),
                ..
            }
    )
}

/// The engine's cache of decoded timestamp columns, shared by every query.
struct SharedColumns<'a>(&'a Cache<(u64, u32), Arc<[i64]>>);

impl ColumnCache for SharedColumns<'_> {
    fn get(&mut self, segment: &Segment, column: usize) -> Option<Arc<[i64]>> {
        self.0.get(&(segment.seq, column as u32))
    }

    fn put(&mut self, segment: &Segment, column: usize, timestamps: Arc<[i64]>) {
        self.0.insert((segment.seq, column as u32), timestamps);
    }
}

impl Engine {
    /// A chunk's points, from the cache or read and decoded.
    pub(super) fn chunk_points(&self, chunk: &ChunkRef) -> Result<Arc<DecodedChunk>> {
        let key = (chunk.segment.seq, chunk.index as u32);
        if let Some(points) = self.cache.get(&key) {
            Stats::bump(&self.stats.cache_hits);
            return Ok(points);
        }
        Stats::bump(&self.stats.cache_misses);
        if self.damaged.lock().contains(&key) {
            return Err(EngineError::corrupt(
                &chunk.segment.path,
                format!("chunk {} is damaged (found earlier)", chunk.index),
            ));
        }
        match chunk
            .segment
            .read_chunk(chunk.index, &mut SharedColumns(&self.columns))
        {
            Ok(points) => {
                let points = Arc::new(DecodedChunk::new(points));
                self.cache.insert(key, Arc::clone(&points));
                Ok(points)
            }
            Err(err) => {
                if is_damage(&err) && !chunk.segment.is_removed() {
                    self.note_damage(chunk, &err);
                }
                Err(err)
            }
        }
    }

    /// Segments holding a chunk found damaged.
    pub(super) fn damaged_segments(&self) -> HashSet<u64> {
        self.damaged.lock().iter().map(|(seq, _)| *seq).collect()
    }

    /// Counts a failed chunk read, and the first time for this chunk says
    /// which chunk and how many points are unreadable.
    pub(super) fn note_damage(&self, chunk: &ChunkRef, err: &EngineError) {
        Stats::bump(&self.stats.corrupt_chunk_reads);
        let key = (chunk.segment.seq, chunk.index as u32);
        if self.damaged.lock().insert(key) {
            let (series, count) = chunk
                .segment
                .chunks
                .get(chunk.index)
                .map_or((0, 0), |m| (m.series, m.count));
            self.stats.note_problem(format!(
                "chunk {} (series {series}, {count} points) is unreadable: {err}",
                chunk.index
            ));
        }
    }
}
