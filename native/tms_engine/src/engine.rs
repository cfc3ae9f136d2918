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

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use moka::sync::Cache;
use parking_lot::Mutex;

use crate::buffer::{decode_entry, Buffers, Point, Sealed};
use crate::error::{io_err, EngineError, Result};
use crate::files::{ensure_dir, remove_stale_tmp, sync_dir, DirLock};
use crate::hash::FastBuildHasher;
use crate::index::{ChunkIndex, ChunkRef, Matcher};
use crate::query::{self, merge, Agg, Points, Run};
use crate::registry::{self, Registry, SeriesId, SeriesKey};
use crate::retention;
use crate::segment::{self, ChunkInput, Segment};
use crate::wal::{self, Record, ReplayReport, SyncMode, Syncer, Wal, POINT_BYTES};

/// Most points one write call may carry (a 100 MB raw batch).
pub const MAX_BATCH_POINTS: usize = 1 << 22;

/// Most problems (quarantined files, replay damage) kept for `info`.
const MAX_PROBLEMS: usize = 100;

/// Engine settings; the Elixir side validates and documents them.
#[derive(Debug, Clone)]
pub struct Config {
    pub wal_sync: SyncMode,
    /// A WAL segment is rotated once it is this large.
    pub wal_segment_bytes: u64,
    /// Width of a time partition, in timestamp units.
    pub partition_duration: i64,
    /// Points in one buffer that queue it for the next pending flush.
    pub flush_threshold: usize,
    /// Ceiling on buffered points; writes past it get `Overloaded`.
    pub max_buffered_points: u64,
    /// pco compression level, 0 to 12.
    pub compression_level: usize,
    /// Size bound of the decoded-chunk cache.
    pub cache_bytes: u64,
    /// Largest accepted `|timestamp|`.
    pub max_abs_timestamp: i64,
    /// Timestamp units in a second (1000 for milliseconds), for rates.
    pub units_per_second: i64,
}

impl Default for Config {
    /// Defaults for millisecond timestamps.
    fn default() -> Self {
        Config {
            wal_sync: SyncMode::Interval(Duration::from_millis(100)),
            wal_segment_bytes: 64 << 20,
            partition_duration: 86_400_000,
            flush_threshold: 8192,
            max_buffered_points: 50_000_000,
            compression_level: 8,
            cache_bytes: 256 << 20,
            max_abs_timestamp: 253_402_300_799_999,
            units_per_second: 1000,
        }
    }
}

impl Config {
    fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(EngineError::invalid(what.to_string()));
        if self.partition_duration <= 0 {
            return bad("partition_duration must be positive");
        }
        if self.flush_threshold == 0 {
            return bad("flush_threshold must be positive");
        }
        if self.compression_level > 12 {
            return bad("compression_level must be 0 to 12");
        }
        if self.wal_segment_bytes < 4096 {
            return bad("wal_segment_bytes must be at least 4096");
        }
        if self.max_abs_timestamp <= 0 {
            return bad("max_abs_timestamp must be positive");
        }
        if self.units_per_second <= 0 {
            return bad("units_per_second must be positive");
        }
        Ok(())
    }
}

/// A batch of labeled points. Points name their series by index into
/// `series`, so a series repeated in a batch is validated and resolved once.
#[derive(Debug, Default)]
pub struct LabeledBatch<'a, K, V> {
    pub series: Vec<BatchSeries<'a>>,
    /// Label pairs; each series owns the range it names.
    pub labels: Vec<(K, V)>,
    /// `(index into series, timestamp, value)`, in write order.
    pub points: Vec<(usize, i64, f64)>,
}

/// A distinct series of a [`LabeledBatch`].
#[derive(Debug, Clone)]
pub struct BatchSeries<'a> {
    pub metric: &'a str,
    pub labels: std::ops::Range<usize>,
    /// The first point using it, for error messages.
    pub first_point: usize,
    /// Set when the caller already identified the series through
    /// [`Engine::hinted`]; `metric` and `labels` are then not read.
    pub known: Option<SeriesId>,
    /// The caller's own hash of how it received the series, remembered
    /// with the series' id for [`Engine::hinted`].
    pub hint: Option<u64>,
}

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
pub struct FlushReport {
    pub points: u64,
    pub chunks: u64,
    pub segments: u64,
    /// WAL files that could not be removed, with the reason.
    pub unremoved: Vec<(String, String)>,
    /// An idle flush found another flush running and did nothing.
    pub skipped: bool,
}

/// What `delete_before` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetentionReport {
    pub segments_removed: u64,
    pub bytes_removed: u64,
    /// Segment files that could not be removed, with the reason. They are
    /// out of the index (never read again) but still on disk.
    pub unremoved: Vec<(String, String)>,
}

/// What `compact` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactReport {
    pub partitions: u64,
    pub segments_merged: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Old segment files that could not be removed, with the reason.
    pub unremoved: Vec<(String, String)>,
}

/// What a range query computes beyond selecting series.
#[derive(Debug, Clone, Default)]
pub struct QuerySpec {
    /// Bucket width, in timestamp units; with `agg`.
    pub step: Option<i64>,
    pub agg: Option<Agg>,
    /// One result per distinct combination of these labels' values
    /// (an empty list: one result for all series); needs `step` and `agg`.
    pub group_by: Option<Vec<String>>,
}

/// Label pairs sorted by name.
pub type LabelSet = Vec<(Box<str>, Box<str>)>;

/// One answer of a query: a series' labels (or a group's) and its points.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub labels: LabelSet,
    pub points: Points,
}

/// Counters and sizes for `Tms.info`.
#[derive(Debug, Clone, Default)]
pub struct Info {
    pub series: u64,
    pub buffered_points: u64,
    pub segments: u64,
    pub chunks: u64,
    pub segment_bytes: u64,
    pub wal_bytes: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub cache_bytes: u64,
    pub flushes: u64,
    pub last_flush_unix_ms: u64,
    pub quarantined_files: u64,
    pub corrupt_chunk_reads: u64,
    pub open_read_bytes: u64,
    pub replay: ReplayReport,
    pub problems: Vec<String>,
}

/// An open data directory.
pub struct Engine {
    dir: PathBuf,
    config: Config,
    registry: Registry,
    wal: Arc<Wal>,
    buffers: Buffers,
    index: ChunkIndex,
    cache: Cache<(u64, u32), Arc<Vec<Point>>>,
    /// Caller hashes of series it identified before (see `hinted`).
    hints: DashMap<u64, (SeriesId, Arc<SeriesKey>), FastBuildHasher>,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    /// Serializes flushes, compaction and retention: segment numbers must
    /// follow the order in which buffers were sealed.
    flush_lock: Mutex<()>,
    /// Points before this timestamp are deleted (see retention.rs).
    cutoff: AtomicI64,
    next_seq: AtomicU64,
    clock: Instant,
    closed: AtomicBool,
    flushes: AtomicU64,
    last_flush_unix_ms: AtomicU64,
    quarantined: AtomicU64,
    /// Chunk reads that failed their checksum (a damaged payload).
    corrupt_chunk_reads: AtomicU64,
    open_read_bytes: u64,
    replay: ReplayReport,
    problems: Mutex<Vec<String>>,
    syncer: Mutex<Option<Syncer>>,
    lock: Mutex<Option<DirLock>>,
}

impl Engine {
    /// Opens (creating if needed) the store in `dir`: takes its lock, loads
    /// the registry, indexes segment tables (quarantining corrupt files) and
    /// replays the WAL into buffers.
    pub fn open(dir: &Path, config: Config) -> Result<Engine> {
        config.validate()?;
        ensure_dir(dir)?;
        let lock = DirLock::acquire(dir)?;
        remove_stale_tmp(dir)?;
        let registry = Registry::load(&dir.join(registry::FILE_NAME))?;
        let mut problems = Vec::new();
        let index = ChunkIndex::new();
        let (quarantined, open_read_bytes) = load_segments(dir, &index, &mut problems)?;
        let cutoff = retention::load(&dir.join(retention::FILE_NAME))?;

        let buffers = Buffers::new(config.flush_threshold);
        let wal_dir = dir.join("wal");
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
                buffers.append(raw, seq, 0, |ts| ts.div_euclid(partition));
                Ok(())
            }
        })?;
        if replay.corrupt_records > 0 {
            problems.push(format!(
                "WAL replay skipped {} corrupt records ({} bytes unreadable)",
                replay.corrupt_records, replay.skipped_bytes
            ));
        }
        let wal = Arc::new(Wal::open(
            &wal_dir,
            config.wal_sync,
            config.wal_segment_bytes,
        )?);
        let syncer = wal.start_syncer();
        let cache = Cache::builder()
            .max_capacity(config.cache_bytes)
            .weigher(|_, points: &Arc<Vec<Point>>| {
                u32::try_from(points.len() * std::mem::size_of::<Point>()).unwrap_or(u32::MAX)
            })
            .build();
        Ok(Engine {
            dir: dir.to_path_buf(),
            next_seq: AtomicU64::new(index.max_seq() + 1),
            config,
            registry,
            wal,
            buffers,
            index,
            cache,
            hints: DashMap::default(),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            flush_lock: Mutex::new(()),
            cutoff: AtomicI64::new(cutoff),
            clock: Instant::now(),
            closed: AtomicBool::new(false),
            flushes: AtomicU64::new(0),
            last_flush_unix_ms: AtomicU64::new(0),
            quarantined: AtomicU64::new(quarantined),
            corrupt_chunk_reads: AtomicU64::new(0),
            open_read_bytes,
            replay,
            problems: Mutex::new(problems),
            syncer: Mutex::new(syncer),
            lock: Mutex::new(Some(lock)),
        })
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(EngineError::Closed);
        }
        Ok(())
    }

    fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    fn check_timestamp(&self, ts: i64, entry: usize) -> Result<()> {
        if ts.unsigned_abs() > self.config.max_abs_timestamp as u64 {
            return Err(EngineError::invalid(format!(
                "entry {entry}: timestamp {ts} is outside ±{}",
                self.config.max_abs_timestamp
            )));
        }
        Ok(())
    }

    fn check_batch_len(points: usize) -> Result<()> {
        if points > MAX_BATCH_POINTS {
            return Err(EngineError::invalid(format!(
                "a batch may hold at most {MAX_BATCH_POINTS} points, got {points}"
            )));
        }
        Ok(())
    }

    /// The id of a series, creating it (and announcing it in the WAL) if new.
    /// `labels` are sorted in place.
    pub fn resolve<K: AsRef<str>, V: AsRef<str>>(
        &self,
        metric: &str,
        labels: &mut [(K, V)],
    ) -> Result<SeriesId> {
        self.check_open()?;
        registry::canonicalize(metric, labels)?;
        self.resolve_canonical(metric, labels)
    }

    fn resolve_canonical<K: AsRef<str>, V: AsRef<str>>(
        &self,
        metric: &str,
        labels: &[(K, V)],
    ) -> Result<SeriesId> {
        if let Some(id) = self.registry.lookup(metric, labels) {
            return Ok(id);
        }
        // The announcement's ticket lives until the series is registered, so
        // its segment outlives every registry snapshot without the series.
        self.registry
            .resolve(metric, labels, |id, key| self.wal.append_series(id, key))
    }

    /// Writes a raw batch of 24-byte entries `<<series::little-64,
    /// ts::little-signed-64, value::little-float-64>>`. All or nothing: any
    /// bad entry rejects the whole batch before anything is written.
    pub fn write_raw(&self, raw: &[u8]) -> Result<()> {
        self.check_open()?;
        if !raw.len().is_multiple_of(POINT_BYTES) {
            return Err(EngineError::invalid(format!(
                "raw batch is {} bytes, not a multiple of {POINT_BYTES}",
                raw.len()
            )));
        }
        Self::check_batch_len(raw.len() / POINT_BYTES)?;
        let known = self.registry.len();
        for (entry, bytes) in raw.chunks_exact(POINT_BYTES).enumerate() {
            let (id, ts, _) = decode_entry(bytes);
            if id >= known {
                return Err(EngineError::SeriesNotFound { id, entry });
            }
            self.check_timestamp(ts, entry)?;
        }
        self.append(raw)
    }

    /// Writes labeled points, creating series as needed. Everything is
    /// validated before any series is created or point written.
    pub fn write_labeled<K: AsRef<str>, V: AsRef<str>>(
        &self,
        batch: &mut LabeledBatch<'_, K, V>,
    ) -> Result<()> {
        self.check_open()?;
        Self::check_batch_len(batch.points.len())?;
        for series in batch.series.iter().filter(|s| s.known.is_none()) {
            let at =
                |e: EngineError| EngineError::invalid(format!("entry {}: {e}", series.first_point));
            let own = batch
                .labels
                .get_mut(series.labels.clone())
                .ok_or_else(|| at(EngineError::invalid("label range out of bounds")))?;
            registry::canonicalize(series.metric, own).map_err(at)?;
        }
        for (entry, &(series, ts, _)) in batch.points.iter().enumerate() {
            if series >= batch.series.len() {
                return Err(EngineError::invalid(format!(
                    "entry {entry}: series index out of bounds"
                )));
            }
            self.check_timestamp(ts, entry)?;
        }
        let ids = batch
            .series
            .iter()
            .map(|s| match s.known {
                Some(id) => Ok(id),
                None => {
                    let id = self.resolve_canonical(s.metric, &batch.labels[s.labels.clone()])?;
                    if let Some(hint) = s.hint {
                        self.remember_hint(hint, id);
                    }
                    Ok(id)
                }
            })
            .collect::<Result<Vec<SeriesId>>>()?;
        let mut raw = Vec::with_capacity(batch.points.len() * POINT_BYTES);
        for &(series, ts, value) in &batch.points {
            raw.extend_from_slice(&ids[series].to_le_bytes());
            raw.extend_from_slice(&ts.to_le_bytes());
            raw.extend_from_slice(&value.to_bits().to_le_bytes());
        }
        self.append(&raw)
    }

    /// The series the caller's hash `hint` named before, if `verify` accepts
    /// its key. The hash is the caller's (the NIF hashes the terms it
    /// received, far cheaper than decoding them); `verify` must compare the
    /// full key, so a collision costs a miss, never a wrong series.
    pub fn hinted(&self, hint: u64, verify: impl FnOnce(&SeriesKey) -> bool) -> Option<SeriesId> {
        let entry = self.hints.get(&hint)?;
        let (id, key) = &*entry;
        verify(key).then_some(*id)
    }

    fn remember_hint(&self, hint: u64, id: SeriesId) {
        // Bounded: a caller sending many spellings of its labels cannot grow
        // the map past a few entries per series.
        if self.hints.len() as u64 > 4 * self.registry.len() + 1024 {
            self.hints.clear();
        }
        if let Some(key) = self.registry.key(id) {
            self.hints.insert(hint, (id, key));
        }
    }

    /// Logs and buffers validated raw entries.
    fn append(&self, raw: &[u8]) -> Result<()> {
        let incoming = (raw.len() / POINT_BYTES) as u64;
        if incoming == 0 {
            return Ok(());
        }
        let buffered = self.buffers.len();
        if buffered.saturating_add(incoming) > self.config.max_buffered_points {
            return Err(EngineError::Overloaded {
                buffered,
                incoming,
                limit: self.config.max_buffered_points,
            });
        }
        let ticket = self.wal.append_points(raw)?;
        let partition = self.config.partition_duration;
        self.buffers.append(raw, ticket.seq(), self.now_ms(), |ts| {
            ts.div_euclid(partition)
        });
        drop(ticket);
        Ok(())
    }

    /// The series of `metric` matching every matcher, sorted by labels.
    pub fn select(
        &self,
        metric: &str,
        matchers: &[Matcher],
    ) -> Result<Vec<(SeriesId, Arc<SeriesKey>)>> {
        self.check_open()?;
        let mut out: Vec<(SeriesId, Arc<SeriesKey>)> = self
            .registry
            .select(metric, matchers)
            .into_iter()
            .filter_map(|id| self.registry.key(id).map(|key| (id, key)))
            .collect();
        out.sort_by(|a, b| a.1.labels.cmp(&b.1.labels));
        Ok(out)
    }

    /// Distinct values of `label` among the series of `metric`, sorted.
    pub fn label_values(&self, metric: &str, label: &str) -> Result<Vec<String>> {
        self.check_open()?;
        Ok(self.registry.label_values(metric, label))
    }

    /// Every metric name, sorted.
    pub fn metrics(&self) -> Result<Vec<String>> {
        self.check_open()?;
        Ok(self.registry.metrics())
    }

    /// Answers a range query over `[from, to]` (both inclusive).
    ///
    /// Without a step: the raw points of each matching series. With a step
    /// and an aggregation: per series (or, with `group_by`, per group of
    /// series sharing those labels' values) one point per non-empty bucket,
    /// see [`query::bucketize`]. Results are sorted by labels; series or
    /// groups without points are left out. Series are read in parallel when
    /// there are enough of them.
    pub fn query(
        &self,
        metric: &str,
        matchers: &[Matcher],
        from: i64,
        to: i64,
        spec: &QuerySpec,
    ) -> Result<Vec<QueryResult>> {
        if from > to {
            return Err(EngineError::invalid(format!(
                "from ({from}) is after to ({to})"
            )));
        }
        let series = self.select(metric, matchers)?;
        let min_parallel = if self.all_cached(&series, from, to) {
            128
        } else {
            16
        };
        let aggregation = match (spec.step, spec.agg) {
            (None, None) if spec.group_by.is_none() => None,
            (Some(step), Some(agg)) if step > 0 => Some((step, agg)),
            (Some(step), Some(_)) => {
                return Err(EngineError::invalid(format!(
                    "step must be positive, got {step}"
                )))
            }
            (None, Some(_)) => return Err(EngineError::invalid("agg needs a step")),
            (Some(_), None) => return Err(EngineError::invalid("step needs an agg")),
            (None, None) => return Err(EngineError::invalid("group_by needs a step and an agg")),
        };
        let step_seconds = |step: i64| step as f64 / self.config.units_per_second as f64;
        let (Some((step, agg)), Some(group_by)) = (aggregation, &spec.group_by) else {
            // One result per series: its raw points, or its buckets.
            let points = parallel_map(&series, min_parallel, |(id, _)| {
                let points = self.series_points(*id, from, to)?;
                Ok(match aggregation {
                    None => points,
                    Some((step, agg)) => {
                        let buckets = query::bucketize(points.iter(), from, step, agg);
                        Points::owned(query::finalize(&buckets, agg, step_seconds(step)))
                    }
                })
            })?;
            return Ok(series
                .iter()
                .zip(points)
                .filter(|(_, points)| !points.is_empty())
                .map(|((_, key), points)| QueryResult {
                    labels: key.labels.to_vec(),
                    points,
                })
                .collect());
        };
        let buckets = parallel_map(&series, min_parallel, |(id, _)| {
            self.series_points(*id, from, to)
                .map(|points| query::bucketize(points.iter(), from, step, agg))
        })?;
        let mut groups: BTreeMap<LabelSet, query::Buckets> = BTreeMap::new();
        for ((_, key), b) in series.iter().zip(buckets) {
            let group: LabelSet = group_by
                .iter()
                .filter_map(|name| key.label(name).map(|v| (name.as_str().into(), v.into())))
                .collect::<BTreeMap<_, _>>()
                .into_iter()
                .collect();
            let merged = match groups.remove(&group) {
                Some(into) => query::combine(into, &b),
                None => b,
            };
            groups.insert(group, merged);
        }
        Ok(groups
            .into_iter()
            .filter(|(_, b)| !b.is_empty())
            .map(|(labels, b)| QueryResult {
                labels,
                points: Points::owned(query::finalize(&b, agg, step_seconds(step))),
            })
            .collect())
    }

    /// True when every chunk the series need in `[from, to]` is decoded in
    /// the cache (a query then costs microseconds per series).
    fn all_cached(&self, series: &[(SeriesId, Arc<SeriesKey>)], from: i64, to: i64) -> bool {
        series.iter().all(|(id, _)| {
            self.index
                .lookup(*id, from, to)
                .iter()
                .all(|c| self.cache.contains_key(&(c.segment.seq, c.index as u32)))
        })
    }

    /// One series' points in `[from, to]`, last write wins.
    pub fn read_series(&self, id: SeriesId, from: i64, to: i64) -> Result<Vec<Point>> {
        self.series_points(id, from, to).map(|p| p.iter().collect())
    }

    /// One series' points in `[from, to]`: parts of cached chunks are shared,
    /// not copied, unless sources overlap in time and must be merged.
    fn series_points(&self, id: SeriesId, from: i64, to: i64) -> Result<Points> {
        let from = from.max(self.cutoff.load(Ordering::Acquire));
        if from > to {
            return Ok(Points::owned(Vec::new()));
        }
        // A segment replaced by compaction or dropped by retention between
        // the index lookup and the read: look up again (rarely twice).
        for _ in 0..4 {
            if let Some(points) = self.read_series_once(id, from, to)? {
                return Ok(points);
            }
        }
        Err(EngineError::invalid(format!(
            "series {id} kept changing under compaction; try again"
        )))
    }

    fn read_series_once(&self, id: SeriesId, from: i64, to: i64) -> Result<Option<Points>> {
        // Buffers before the index: a flush that finishes in between is
        // then seen twice (harmless), never missed.
        let buffered = self.buffers.read(id, from, to);
        let chunks = self.index.lookup(id, from, to);
        let mut decoded = Vec::with_capacity(chunks.len());
        for chunk in &chunks {
            match self.chunk_points(chunk) {
                Ok(points) => decoded.push(points),
                Err(_) if chunk.segment.is_removed() => return Ok(None),
                Err(err) => return Err(err),
            }
        }
        let runs = decoded
            .into_iter()
            .map(|chunk| {
                let range = query::range_of(&chunk, from, to);
                Run::Shared(chunk, range)
            })
            .chain(buffered.into_iter().map(Run::Owned))
            .collect();
        Ok(Some(Points::from_runs(runs)))
    }

    fn chunk_points(&self, chunk: &ChunkRef) -> Result<Arc<Vec<Point>>> {
        let key = (chunk.segment.seq, chunk.index as u32);
        if let Some(points) = self.cache.get(&key) {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(points);
        }
        self.cache_misses.fetch_add(1, Ordering::Relaxed);
        let points = match chunk.segment.read_chunk(chunk.index) {
            Ok(points) => Arc::new(points),
            Err(err) => {
                if let EngineError::CorruptData { reason, .. } = &err {
                    self.note_corrupt_chunk(&chunk.segment.path, reason);
                }
                return Err(err);
            }
        };
        self.cache.insert(key, Arc::clone(&points));
        Ok(points)
    }

    /// Counts a chunk that failed its checksum (once per chunk and cache
    /// lifetime is not promised: every failed read counts) and says so in
    /// `info`'s problems.
    fn note_corrupt_chunk(&self, path: &Path, reason: &str) {
        self.corrupt_chunk_reads.fetch_add(1, Ordering::Relaxed);
        let mut problems = self.problems.lock();
        if problems.len() < MAX_PROBLEMS {
            problems.push(format!("{}: {reason}", path.display()));
        }
    }

    /// Writes buffered points to segments. A failed flush keeps every point
    /// buffered (and in the WAL) for the next attempt.
    pub fn flush(&self, scope: FlushScope) -> Result<FlushReport> {
        self.check_open()?;
        self.flush_unchecked(scope)
    }

    fn flush_unchecked(&self, scope: FlushScope) -> Result<FlushReport> {
        // Flushes are serialized (seal order must follow segment order). An
        // idle (cold) flush is periodic housekeeping: rather than queue
        // behind a running flush it is skipped; the guard's drop releases it.
        let _flushing = match scope {
            FlushScope::Idle(_) => match self.flush_lock.try_lock() {
                Some(guard) => guard,
                None => {
                    return Ok(FlushReport {
                        skipped: true,
                        ..FlushReport::default()
                    })
                }
            },
            _ => self.flush_lock.lock(),
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
        self.flushes.fetch_add(1, Ordering::Relaxed);
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.last_flush_unix_ms.store(unix_ms, Ordering::Relaxed);
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
        let inputs = encode_parallel(&runs, self.config.compression_level)?;
        self.write_inputs(partition, seq, inputs)
    }

    fn write_inputs(&self, partition: i64, seq: u64, inputs: Vec<ChunkInput>) -> Result<Segment> {
        let path = segment::path_for(&self.dir.join("chunks"), partition, seq);
        ensure_dir(crate::files::parent(&path)?)?;
        segment::write(&path, seq, partition, inputs)
    }

    /// Deletes every point before `cutoff`: whole segments that hold
    /// nothing newer are removed from disk, the rest is filtered at query
    /// time. The cutoff never moves back. Files that cannot be removed are
    /// reported, not ignored.
    pub fn delete_before(&self, cutoff: i64) -> Result<RetentionReport> {
        self.check_open()?;
        let _flushing = self.flush_lock.lock();
        let cutoff = cutoff.max(self.cutoff.load(Ordering::Acquire));
        retention::store(&self.dir.join(retention::FILE_NAME), cutoff)?;
        self.cutoff.store(cutoff, Ordering::Release);
        let expired: Vec<u64> = self
            .index
            .by_partition()
            .into_values()
            .flatten()
            .filter(|s| s.max_ts() < cutoff)
            .map(|s| s.seq)
            .collect();
        let removed = self.index.replace(&expired, None);
        Ok(RetentionReport {
            segments_removed: removed.len() as u64,
            bytes_removed: removed.iter().map(|s| s.file_bytes).sum(),
            unremoved: remove_files(&removed),
        })
    }

    /// Merges the segments of every closed partition (no buffered points,
    /// no segment written for `idle`) into one segment with one chunk per
    /// series, applying last-write-wins and the retention cutoff. The new
    /// segment is durable and indexed before the old files are removed.
    pub fn compact(&self, idle: Duration) -> Result<CompactReport> {
        self.check_open()?;
        let _flushing = self.flush_lock.lock();
        let mut report = CompactReport::default();
        let now = SystemTime::now();
        for (partition, segments) in self.index.by_partition() {
            let settled = segments
                .iter()
                .all(|s| now.duration_since(s.written).is_ok_and(|age| age >= idle));
            if segments.len() < 2 || !settled || self.buffers.holds_partition(partition) {
                continue;
            }
            let inputs = self.merge_segments(&segments)?;
            let merged = if inputs.is_empty() {
                None
            } else {
                let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
                Some(Arc::new(self.write_inputs(partition, seq, inputs)?))
            };
            report.partitions += 1;
            report.segments_merged += segments.len() as u64;
            report.bytes_before += segments.iter().map(|s| s.file_bytes).sum::<u64>();
            report.bytes_after += merged.as_ref().map_or(0, |s| s.file_bytes);
            let seqs: Vec<u64> = segments.iter().map(|s| s.seq).collect();
            let removed = self.index.replace(&seqs, merged);
            report.unremoved.extend(remove_files(&removed));
        }
        Ok(report)
    }

    /// One chunk per series of `segments` (oldest first), merged
    /// last-write-wins, without points before the cutoff. Decodes a bounded
    /// number of series at a time so memory follows the compressed size.
    fn merge_segments(&self, segments: &[Arc<Segment>]) -> Result<Vec<ChunkInput>> {
        const SERIES_PER_ROUND: usize = 1024;
        let cutoff = self.cutoff.load(Ordering::Acquire);
        let mut chunks_of: BTreeMap<SeriesId, Vec<(&Arc<Segment>, usize)>> = BTreeMap::new();
        for segment in segments {
            for (index, meta) in segment.chunks.iter().enumerate() {
                chunks_of
                    .entry(meta.series)
                    .or_default()
                    .push((segment, index));
            }
        }
        let all: Vec<_> = chunks_of.into_iter().collect();
        let mut inputs = Vec::with_capacity(all.len());
        for round in all.chunks(SERIES_PER_ROUND) {
            let mut merged = Vec::with_capacity(round.len());
            for (series, chunks) in round {
                let decoded = chunks
                    .iter()
                    .map(|(segment, index)| segment.read_chunk(*index))
                    .collect::<Result<Vec<_>>>()?;
                let runs: Vec<&[Point]> = decoded.iter().map(Vec::as_slice).collect();
                let mut points = merge(&runs);
                points.retain(|p| p.0 >= cutoff);
                if !points.is_empty() {
                    merged.push((*series, points));
                }
            }
            let runs: Vec<(SeriesId, &[Point])> =
                merged.iter().map(|(s, p)| (*s, p.as_slice())).collect();
            inputs.extend(encode_parallel(&runs, self.config.compression_level)?);
        }
        Ok(inputs)
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
        self.registry.persist(&self.dir.join(registry::FILE_NAME))?;
        self.wal.remove_below(keep_from)
    }

    /// Flushes everything, syncs the WAL and releases the directory. Later
    /// calls get [`EngineError::Closed`]. Closing twice is a no-op.
    pub fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.wal.stop_appends();
        let flushed = self.flush_unchecked(FlushScope::All).map(drop);
        let synced = self.wal.sync_now();
        drop(self.syncer.lock().take());
        drop(self.lock.lock().take());
        flushed.and(synced)
    }

    /// Counters and sizes.
    pub fn info(&self) -> Info {
        let stats = self.index.stats();
        self.cache.run_pending_tasks();
        Info {
            series: self.registry.len(),
            buffered_points: self.buffers.len(),
            segments: stats.segments,
            chunks: stats.chunks,
            segment_bytes: stats.bytes,
            wal_bytes: self.wal.disk_bytes(),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            cache_misses: self.cache_misses.load(Ordering::Relaxed),
            cache_bytes: self.cache.weighted_size(),
            flushes: self.flushes.load(Ordering::Relaxed),
            last_flush_unix_ms: self.last_flush_unix_ms.load(Ordering::Relaxed),
            quarantined_files: self.quarantined.load(Ordering::Relaxed),
            corrupt_chunk_reads: self.corrupt_chunk_reads.load(Ordering::Relaxed),
            open_read_bytes: self.open_read_bytes,
            replay: self.replay.clone(),
            problems: self.problems.lock().clone(),
        }
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

/// Cores this process may use. Asked once: on Linux the answer comes from
/// cgroup files, about 25 µs a call, which a small query cannot afford.
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `f` over every item, on every core when there are at least
/// `min_parallel` items (threads cost tens of microseconds to start: worth
/// it for decoding many chunks, not for a few cached ones); results keep
/// their order.
fn parallel_map<I: Sync, T: Send>(
    items: &[I],
    min_parallel: usize,
    f: impl Fn(&I) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let threads = cores();
    if threads == 1 || items.len() < min_parallel.max(2) {
        return items.iter().map(&f).collect();
    }
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(items.len().div_ceil(threads))
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Result<Vec<T>>>()))
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for handle in handles {
            out.extend(
                handle
                    .join()
                    .map_err(|_| EngineError::invalid("a query thread panicked"))??,
            );
        }
        Ok(out)
    })
}

/// Compresses runs into chunks on all cores but one (compression is what
/// bounds sustained ingest, but the BEAM's schedulers need a core too: a
/// flush that takes every core delays every process in the VM).
fn encode_parallel(runs: &[(SeriesId, &[Point])], level: usize) -> Result<Vec<ChunkInput>> {
    let encode = |part: &[(SeriesId, &[Point])]| -> Result<Vec<ChunkInput>> {
        part.iter()
            .map(|(series, points)| ChunkInput::encode(*series, points, level))
            .collect()
    };
    let threads = cores().saturating_sub(1).max(1);
    if runs.len() < 64 || threads == 1 {
        return encode(runs);
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = runs
            .chunks(runs.len().div_ceil(threads))
            .map(|part| scope.spawn(move || encode(part)))
            .collect();
        let mut out = Vec::with_capacity(runs.len());
        for handle in handles {
            let part = handle
                .join()
                .map_err(|_| EngineError::invalid("a compression thread panicked"))??;
            out.extend(part);
        }
        Ok(out)
    })
}

/// Deletes the files of segments taken out of the index; returns failures.
fn remove_files(segments: &[Arc<Segment>]) -> Vec<(String, String)> {
    let mut failures = Vec::new();
    for segment in segments {
        if let Err(err) = fs::remove_file(&segment.path) {
            failures.push((segment.path.display().to_string(), err.to_string()));
        } else if let Ok(dir) = crate::files::parent(&segment.path) {
            // An emptied partition directory goes too; failing that is harmless.
            let _ = fs::remove_dir(dir);
        }
    }
    failures
}

/// Indexes every segment under `dir/chunks`, moving corrupt ones to
/// `dir/quarantine`. Returns (files quarantined, bytes read).
fn load_segments(dir: &Path, index: &ChunkIndex, problems: &mut Vec<String>) -> Result<(u64, u64)> {
    let chunks_dir = dir.join("chunks");
    ensure_dir(&chunks_dir)?;
    let mut segments = Vec::new();
    let mut quarantined = 0;
    let mut bytes_read = 0;
    for partition in fs::read_dir(&chunks_dir).map_err(io_err("list directory", &chunks_dir))? {
        let partition = partition
            .map_err(io_err("list directory", &chunks_dir))?
            .path();
        if !partition.is_dir() {
            continue;
        }
        remove_stale_tmp(&partition)?;
        for file in fs::read_dir(&partition).map_err(io_err("list directory", &partition))? {
            let path = file.map_err(io_err("list directory", &partition))?.path();
            if path.extension().is_none_or(|e| e != "seg") {
                continue;
            }
            match segment::open(&path) {
                Ok((segment, read)) => {
                    bytes_read += read;
                    segments.push(segment);
                }
                Err(EngineError::CorruptData { reason, .. }) => {
                    quarantine(dir, &path)?;
                    quarantined += 1;
                    if problems.len() < MAX_PROBLEMS {
                        problems.push(format!("quarantined {}: {reason}", path.display()));
                    }
                }
                Err(other) => return Err(other),
            }
        }
    }
    segments.sort_unstable_by_key(|s| s.seq);
    for segment in segments {
        index.add(Arc::new(segment));
    }
    Ok((quarantined, bytes_read))
}

/// Moves a corrupt file to `dir/quarantine/` so it is kept for inspection
/// but never read again.
fn quarantine(dir: &Path, path: &Path) -> Result<()> {
    let target_dir = dir.join("quarantine");
    ensure_dir(&target_dir)?;
    let partition = path
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let target = target_dir.join(format!("{partition}-{name}"));
    fs::rename(path, &target).map_err(io_err("quarantine", path))?;
    sync_dir(&target_dir)?;
    sync_dir(crate::files::parent(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_flush_is_skipped_while_another_flush_runs() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            wal_sync: SyncMode::Never,
            ..Config::default()
        };
        let engine = Engine::open(dir.path(), config).unwrap();
        let id = engine.resolve("m", &mut [("a", "b")]).unwrap();
        let mut raw = Vec::new();
        raw.extend_from_slice(&id.to_le_bytes());
        raw.extend_from_slice(&5i64.to_le_bytes());
        raw.extend_from_slice(&1.0f64.to_bits().to_le_bytes());
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
