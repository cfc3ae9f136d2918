//! Opening a data directory (lock, registry, segment tables, WAL replay)
//! and closing it (final flush, WAL sync, lock released).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;
use moka::sync::Cache;
use parking_lot::Mutex;

use super::stats::Stats;
use super::{Config, Engine, FlushReport, FlushScope};
use crate::buffer::Buffers;
use crate::error::{EngineError, Result};
use crate::files::{ensure_dir, remove_stale_tmp, DirLock};
use crate::ingest::Sequences;
use crate::layout::Layout;
use crate::query::DecodedChunk;
use crate::registry::Registry;
use crate::retention;
use crate::rollup::TierIndex;
use crate::storage::{load_segments, ChunkIndex};
use crate::types::{decode_entry, Point, POINT_BYTES};
use crate::wal::{self, Record, Wal};

/// The next engine's instance number (see `Engine::instance`).
static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(0);

impl Engine {
    /// Opens (creating if needed) the store in `dir`: takes its lock, loads
    /// the registry, indexes segment tables (quarantining corrupt files) and
    /// replays the WAL into buffers.
    pub fn open(dir: &Path, config: Config) -> Result<Engine> {
        let layout = Layout::new(dir);
        config.validate()?;
        ensure_dir(dir)?;
        let lock = DirLock::acquire(&layout)?;
        remove_stale_tmp(dir)?;
        let registry = Registry::load(&layout.registry())?;
        registry.set_max_series(config.max_series);
        let index = ChunkIndex::new();
        let loaded = load_segments(&layout, &index)?;
        let loaded_max_seq = loaded.max_seq;
        let cutoff = retention::load(&layout.cutoff())?;
        let tiers = TierIndex::new(config.rollups.clone(), config.cache_bytes / 8);
        let loaded_tiers = tiers.load(&layout)?;

        let buffers = Buffers::new(config.flush_threshold);
        let wal_dir = layout.wal();
        let partition = config.partition_duration;
        let replay = wal::replay(&wal_dir, |seq, record| match record {
            Record::Series(id, key) => registry.replay(id, key, &wal_dir),
            Record::Points(raw) => {
                let known = registry.len();
                if let Some(entry) = raw
                    .chunks_exact(POINT_BYTES)
                    .position(|e| decode_entry(e).0 >= known)
                {
                    return Err(EngineError::corrupt(
                        &wal_dir,
                        format!("points record names an unknown series at entry {entry}"),
                    ));
                }
                buffers.append(&raw, seq, 0, partition);
                Ok(())
            }
        })?;
        let stats = Stats {
            quarantined: AtomicU64::new(loaded.quarantined + loaded_tiers.quarantined),
            open_read_bytes: loaded.bytes_read,
            missing_segments: loaded.missing,
            leftover_segments: loaded.leftovers,
            replay,
            ..Stats::default()
        };
        for problem in loaded.problems.into_iter().chain(loaded_tiers.problems) {
            stats.note_problem(problem);
        }
        if stats.replay.corrupt_records > 0 {
            stats.note_problem(format!(
                "WAL replay skipped {} corrupt records ({} bytes unreadable)",
                stats.replay.corrupt_records, stats.replay.skipped_bytes
            ));
        }
        let wal = Arc::new(Wal::open(
            &wal_dir,
            config.wal_sync,
            config.wal_segment_bytes,
        )?);
        let syncer = wal.start_syncer();
        // An eighth of the budget for timestamp columns: one column serves
        // every chunk of a scrape target, so few are hot at a time.
        let columns_bytes = config.cache_bytes / 8;
        let cache = Cache::builder()
            .max_capacity(config.cache_bytes - columns_bytes)
            .weigher(|_, chunk: &Arc<DecodedChunk>| weight(chunk.points.len(), size_of::<Point>()))
            .build();
        let columns = Cache::builder()
            .max_capacity(columns_bytes)
            .weigher(|_, ts: &Arc<[i64]>| weight(ts.len(), size_of::<i64>()))
            .build();
        let engine = Engine {
            layout,
            next_seq: AtomicU64::new(
                index
                    .max_seq()
                    .max(loaded_max_seq)
                    .max(loaded_tiers.max_seq)
                    + 1,
            ),
            // Set from the clock below, and by every compaction.
            tier_cutoffs: config
                .rollups
                .iter()
                .map(|_| AtomicI64::new(i64::MIN))
                .collect(),
            tiers,
            config,
            registry,
            wal,
            buffers,
            index,
            cache,
            columns,
            hints: DashMap::default(),
            spellings: DashMap::default(),
            sequences: Sequences::default(),
            instance: NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed),
            damaged: Mutex::default(),
            flush_lock: Mutex::new(()),
            cutoff: AtomicI64::new(cutoff),
            clock: Instant::now(),
            closed: AtomicBool::new(false),
            shut: AtomicBool::new(false),
            stats,
            syncer: Mutex::new(syncer),
            lock: Mutex::new(Some(lock)),
        };
        engine.hide_expired_rows(engine.now_in_units());
        Ok(engine)
    }

    /// Flushes everything, syncs the WAL and releases the directory. Later
    /// calls get [`EngineError::Closed`]. Closing twice is a no-op.
    /// Answers what the final flush wrote (nothing, the second time).
    pub fn close(&self) -> Result<FlushReport> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(FlushReport::default());
        }
        self.wal.stop_appends();
        let flushed = self.flush_unchecked(FlushScope::All);
        let _flushing = self.flush_lock.lock();
        self.shut.store(true, Ordering::Release);
        let synced = self.wal.sync_now();
        drop(self.syncer.lock().take());
        drop(self.lock.lock().take());
        synced.and(flushed)
    }
}

/// A cache entry's weight: its decoded bytes.
fn weight(items: usize, item_bytes: usize) -> u32 {
    u32::try_from(items * item_bytes).unwrap_or(u32::MAX)
}
