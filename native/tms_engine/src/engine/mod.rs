//! The engine: one data directory, its registry, WAL, buffers and segments.
//!
//! Write path: validate the whole batch, resolve series, append one WAL
//! record, append to hot buffers, acknowledge. Flush path (serialized):
//! seal buffers, compress, write one segment per partition, index it,
//! release the seals, persist the registry, delete WAL segments no buffered
//! point needs. Read path: buffers first, then the index (so a flush that
//! completes in between is seen at least once), merged last-write-wins.
//!
//! Concurrency: a WAL append returns a ticket that writers hold until their
//! points are in the buffers (or their series in the registry). The flusher
//! keeps every segment from the oldest live ticket on, reading the active
//! segment, then the tickets, then the buffers, so it never deletes a
//! segment whose data is still on its way. Writers never wait for a flush.
//!
//! The methods of [`Engine`] are grouped by concern, one file each (as
//! Prometheus splits its `Head`): open.rs (open, recovery, close), write.rs,
//! read.rs, flush.rs, maintenance.rs (compaction, retention) and stats.rs.

mod chunks;
mod config;
mod flush;
mod import;
mod local_spellings;
mod maintenance;
mod open;
mod read;
mod rollups;
mod stats;
mod write;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use moka::sync::Cache;
use parking_lot::Mutex;

use crate::buffer::Buffers;
use crate::error::{EngineError, Result};
use crate::files::DirLock;
use crate::hash::FastBuildHasher;
use crate::ingest::Sequences;
use crate::layout::Layout;
use crate::query::DecodedChunk;
use crate::registry::Registry;
use crate::rollup::TierIndex;
use crate::series_key::SeriesKey;
use crate::storage::ChunkIndex;
use crate::types::SeriesId;
use crate::wal::{Syncer, Wal};

pub use crate::batch::{BatchSeries, LabeledBatch, MAX_BATCH_POINTS};
pub use chunks::OnDamage;
pub use config::Config;
pub use flush::{FlushReport, FlushScope};
pub use import::ImportReport;
pub use maintenance::{CompactReport, RetentionReport};
pub use read::{LabelSet, QueryResult, QuerySpec};
pub use rollups::{TierInfo, TierReport};
pub use stats::Info;

/// An open data directory.
pub struct Engine {
    layout: Layout,
    config: Config,
    registry: Registry,
    wal: Arc<Wal>,
    buffers: Buffers,
    index: ChunkIndex,
    /// Rollup tier files and their decoded rows (see rollups.rs).
    tiers: TierIndex,
    /// Per tier, the time before which its rows are past its retention.
    tier_cutoffs: Vec<AtomicI64>,
    /// Decoded chunks by (segment seq, chunk index), weighed in bytes.
    cache: Cache<(u64, u32), Arc<DecodedChunk>>,
    /// Decoded timestamp columns by (segment seq, column index).
    columns: Cache<(u64, u32), Arc<[i64]>>,
    /// Chunks found unreadable, by (segment seq, chunk index): read once.
    damaged: Mutex<HashSet<(u64, u32), FastBuildHasher>>,
    /// Caller hashes of series it identified before (see `hinted`).
    hints: DashMap<u64, (SeriesId, Arc<SeriesKey>), FastBuildHasher>,
    /// Imported series by a hash of their spelling, with the spelling to
    /// verify (see `spelled`).
    spellings: DashMap<u64, (SeriesId, Arc<[u8]>), FastBuildHasher>,
    /// The order in which earlier bodies spelled their series.
    sequences: Sequences,
    /// Unique among the engines of this process: tags this engine's entries
    /// in per-thread caches (see local_spellings.rs).
    instance: u64,
    /// Serializes flushes, compaction and retention: segment numbers must
    /// follow the order in which buffers were sealed.
    flush_lock: Mutex<()>,
    /// Points before this timestamp are deleted (see retention.rs).
    cutoff: AtomicI64,
    next_seq: AtomicU64,
    clock: Instant,
    closed: AtomicBool,
    /// Set by `close` under the flush lock once its final flush is done: a
    /// flush, compaction or retention that waited for the lock then finds
    /// the directory no longer its own.
    shut: AtomicBool,
    stats: stats::Stats,
    syncer: Mutex<Option<Syncer>>,
    lock: Mutex<Option<DirLock>>,
}

impl Engine {
    /// Timestamp units in a second (1000 when timestamps are milliseconds).
    pub fn units_per_second(&self) -> i64 {
        self.config.units_per_second
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(EngineError::Closed);
        }
        Ok(())
    }

    /// The flush lock, for a flush, compaction or retention; `Closed` once
    /// `close` is done with the directory.
    fn maintenance_lock(&self) -> Result<parking_lot::MutexGuard<'_, ()>> {
        let guard = self.flush_lock.lock();
        if self.shut.load(Ordering::Acquire) {
            return Err(EngineError::Closed);
        }
        Ok(guard)
    }

    /// The retention cutoff: no point before it is visible or writable.
    fn cutoff(&self) -> i64 {
        self.cutoff.load(Ordering::Acquire)
    }

    /// The wall clock in timestamp units (saturating, for far-off clocks).
    fn now_in_units(&self) -> i64 {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let units = nanos * self.config.units_per_second as u128 / 1_000_000_000;
        i64::try_from(units).unwrap_or(i64::MAX)
    }

    /// Milliseconds on the engine's monotonic clock (for idle buffers).
    fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Not closed: nothing is lost (the WAL has every point), but give the
        // page cache to the disk before the syncer stops.
        if !self.closed.load(Ordering::Acquire) {
            let _ = self.wal.sync_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_idle_flush_is_skipped_while_another_flush_runs() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), Config::scratch()).unwrap();
        let id = engine.resolve("m", &mut [("a", "b")]).unwrap();
        let mut raw = Vec::new();
        crate::types::encode_entry(&mut raw, id, 5, 1.0);
        engine.write_raw(&raw).unwrap();
        {
            let _running = engine.flush_lock.lock();
            assert!(
                engine
                    .flush(FlushScope::Idle(Duration::ZERO))
                    .unwrap()
                    .skipped
            );
        }
        let report = engine.flush(FlushScope::Idle(Duration::ZERO)).unwrap();
        assert!(!report.skipped);
        assert_eq!(report.points, 1);
    }
}
