//! The engine's counters, and the [`Info`] snapshot `Tms.info` shows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use super::Engine;
use crate::wal::ReplayReport;

/// Most problems (quarantined files, replay damage, damaged chunks) kept.
const MAX_PROBLEMS: usize = 100;

/// Counters updated by the write, read and flush paths (relaxed atomics:
/// each is a statistic on its own, never used to order other memory).
#[derive(Debug, Default)]
pub(super) struct Stats {
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub flushes: AtomicU64,
    pub last_flush_unix_ms: AtomicU64,
    pub quarantined: AtomicU64,
    /// Segment files the manifest listed that were gone at open, and
    /// unlisted ones moved to quarantine.
    pub missing_segments: u64,
    pub leftover_segments: u64,
    /// Chunk reads that failed (a payload failing its checksum, a file gone).
    pub corrupt_chunk_reads: AtomicU64,
    /// Chunks compaction could not carry over, and their points.
    pub chunks_lost: AtomicU64,
    pub points_lost: AtomicU64,
    /// What the open found (fixed after open).
    pub open_read_bytes: u64,
    pub replay: ReplayReport,
    pub problems: Mutex<Vec<String>>,
    /// Problems not yet handed to [`Engine::take_warnings`].
    pub unreported: Mutex<Vec<String>>,
}

impl Stats {
    /// Counts one event.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Keeps a problem for `info`, in words; past [`MAX_PROBLEMS`] only the
    /// counters go on growing.
    pub fn note_problem(&self, problem: String) {
        let mut unreported = self.unreported.lock();
        if unreported.len() < MAX_PROBLEMS {
            unreported.push(problem.clone());
        }
        let mut problems = self.problems.lock();
        if problems.len() < MAX_PROBLEMS {
            problems.push(problem);
        }
    }

    /// Counts a completed flush and stamps its wall-clock time.
    pub fn note_flush(&self) {
        Self::bump(&self.flushes);
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.last_flush_unix_ms.store(unix_ms, Ordering::Relaxed);
    }
}

/// Counters and sizes for `Tms.info`: every count and size an integer.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "nif", derive(rustler::NifMap))]
pub struct Info {
    pub series: u64,
    /// The store's `max_series`.
    pub max_series: u64,
    /// The retention cutoff: no point before it is kept or accepted
    /// (`i64::MIN` when none was set).
    pub retention_cutoff: i64,
    pub buffered_points: u64,
    pub segments: u64,
    pub chunks: u64,
    pub segment_bytes: u64,
    pub wal_bytes: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub cache_bytes: u64,
    pub flushes: u64,
    /// 0 before the first flush.
    pub last_flush_unix_ms: u64,
    pub quarantined_files: u64,
    /// Segment files listed in the manifest but gone at the last open.
    pub missing_segments: u64,
    /// Segment files the manifest did not list, moved to quarantine at the
    /// last open.
    pub leftover_segments: u64,
    pub corrupt_chunk_reads: u64,
    /// Distinct chunks found unreadable since open.
    pub damaged_chunks: u64,
    /// Chunks, and their points, that compaction could not carry over (their
    /// files went to quarantine).
    pub chunks_lost: u64,
    pub points_lost: u64,
    /// Bytes of segment headers and tables the open read.
    pub open_read_bytes: u64,
    pub wal_replayed_points: u64,
    pub wal_corrupt_records: u64,
    pub wal_torn_bytes: u64,
    /// Each rollup tier's files, series, intervals and bytes.
    pub rollups: Vec<super::TierInfo>,
    /// What was quarantined, skipped or found damaged, in words.
    pub problems: Vec<String>,
}

impl Engine {
    /// Problems noted since the last call (quarantined files, damaged
    /// chunks, replay damage), for the caller to log.
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.stats.unreported.lock())
    }

    /// Counters and sizes, read now.
    pub fn info(&self) -> Info {
        let index = self.index.stats();
        self.cache.run_pending_tasks();
        self.columns.run_pending_tasks();
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let stats = &self.stats;
        Info {
            series: self.registry.len(),
            max_series: self.config.max_series,
            retention_cutoff: self.cutoff(),
            buffered_points: self.buffers.len(),
            segments: index.segments,
            chunks: index.chunks,
            segment_bytes: index.bytes,
            wal_bytes: self.wal.disk_bytes(),
            cache_hits: load(&stats.cache_hits),
            cache_misses: load(&stats.cache_misses),
            cache_bytes: self.cache.weighted_size() + self.columns.weighted_size(),
            flushes: load(&stats.flushes),
            last_flush_unix_ms: load(&stats.last_flush_unix_ms),
            quarantined_files: load(&stats.quarantined),
            missing_segments: stats.missing_segments,
            leftover_segments: stats.leftover_segments,
            corrupt_chunk_reads: load(&stats.corrupt_chunk_reads),
            damaged_chunks: self.damaged.lock().len() as u64,
            chunks_lost: load(&stats.chunks_lost),
            points_lost: load(&stats.points_lost),
            open_read_bytes: stats.open_read_bytes,
            wal_replayed_points: stats.replay.points,
            wal_corrupt_records: stats.replay.corrupt_records,
            wal_torn_bytes: stats.replay.torn_bytes,
            rollups: self.tier_info(),
            problems: stats.problems.lock().clone(),
        }
    }
}
