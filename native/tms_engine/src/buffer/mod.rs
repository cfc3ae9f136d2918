//! Hot buffers: points accepted but not yet in a chunk segment.
//!
//! One buffer per `(series, partition)`. A buffer is an append-only
//! `Vec<(timestamp, value)>` plus an out-of-order flag set on append, so a
//! flush sorts only when it must. A buffer that reaches the flush threshold is
//! put in a concurrent set for the next pending flush.
//!
//! A flush *seals* a buffer (moves its points aside, sorted and deduplicated,
//! while queries still see them), writes them, then *commits* the seal once
//! the segment is durable and indexed, or *restores* it if the write failed,
//! so a failed flush loses nothing and the points are written next time.
//! Flushes are serialized by the engine, so a buffer has at most one seal.

mod slots;

use slots::Slots;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashSet;
use parking_lot::Mutex;

use crate::hash::FastBuildHasher;
use crate::types::{decode_entry, sort_dedup, Point, SeriesId, POINT_BYTES};

/// Which buffer a point goes to: its series and its time partition.
pub type BufferKey = (SeriesId, i64);

/// Points moved aside by a flush in progress, sorted and deduplicated.
#[derive(Debug)]
pub struct Sealed {
    pub points: Vec<Point>,
    /// Oldest WAL segment holding one of the points.
    pub wal_seq: u64,
}

#[derive(Debug)]
struct Buffer {
    partition: i64,
    points: Vec<Point>,
    out_of_order: bool,
    /// Oldest WAL segment holding one of `points`; `u64::MAX` when empty.
    wal_seq: u64,
    /// Engine clock (ms) of the last append.
    last_append: u64,
    sealed: Option<Arc<Sealed>>,
}

impl Buffer {
    fn new(partition: i64) -> Self {
        Buffer {
            partition,
            points: Vec::new(),
            out_of_order: false,
            wal_seq: u64::MAX,
            last_append: 0,
            sealed: None,
        }
    }

    #[inline]
    fn push(&mut self, point: Point) {
        if let Some(last) = self.points.last() {
            self.out_of_order |= point.0 < last.0;
        }
        self.points.push(point);
    }
}

/// The buffers of one series, one per partition written to recently:
/// nearly always one, kept in place (in the series' slot, so an append
/// reaches it without following a pointer to the heap: perf of imports
/// over HTTP had the buffer append as the largest cost of the engine),
/// any others beside it.
#[derive(Debug)]
struct SeriesBuffers {
    first: Buffer,
    more: Vec<Buffer>,
}

impl Default for SeriesBuffers {
    fn default() -> Self {
        SeriesBuffers {
            first: Buffer::new(0),
            more: Vec::new(),
        }
    }
}

impl Buffer {
    /// Holds no points and no seal: free to take another partition.
    fn is_vacant(&self) -> bool {
        self.points.is_empty() && self.sealed.is_none()
    }
}

impl SeriesBuffers {
    fn parts(&self) -> impl Iterator<Item = &Buffer> {
        std::iter::once(&self.first).chain(&self.more)
    }

    fn part_mut(&mut self, partition: i64) -> Option<&mut Buffer> {
        std::iter::once(&mut self.first)
            .chain(&mut self.more)
            .find(|b| b.partition == partition)
    }

    /// The buffer of the partition (of `duration`) holding `ts`. A bounds
    /// check against each buffer's partition spares the division for the
    /// common case, a point in a partition the series already buffers.
    fn part_or_insert(&mut self, ts: i64, duration: i64) -> &mut Buffer {
        let holds = |b: &Buffer| match b.partition.checked_mul(duration) {
            Some(start) => {
                ts >= start
                    && ts
                        .checked_sub(start)
                        .is_some_and(|offset| offset < duration)
            }
            // The partition starting below i64::MIN: only a division tells.
            None => ts.div_euclid(duration) == b.partition,
        };
        if holds(&self.first) {
            return &mut self.first;
        }
        if let Some(i) = self.more.iter().position(holds) {
            return &mut self.more[i];
        }
        let buffer = Buffer::new(ts.div_euclid(duration));
        if self.first.is_vacant() {
            self.first = buffer;
            return &mut self.first;
        }
        self.more.push(buffer);
        let last = self.more.len() - 1;
        &mut self.more[last]
    }
}

/// Series per page (a power of two).
const PAGE: usize = 64;

/// The buffers of `PAGE` consecutive series ids, under one lock. Ids are
/// issued in the order bodies first spell series, and bodies spell them in
/// about that order again, so an append of a body takes one lock per run
/// of a page instead of one per point (a remote_write body has one point
/// per series), and the cache misses of a run overlap instead of waiting
/// on each lock in turn.
struct Page([SeriesBuffers; PAGE]);

impl Default for Page {
    fn default() -> Self {
        Page(std::array::from_fn(|_| SeriesBuffers::default()))
    }
}

/// The page of a series and its place in the page.
fn page_of(series: SeriesId) -> (u64, usize) {
    (series / PAGE as u64, (series % PAGE as u64) as usize)
}

/// A series' buffers, locked with their page.
type Held<'a> = parking_lot::MappedMutexGuard<'a, SeriesBuffers>;

/// Every hot buffer of an engine, by series.
pub struct Buffers {
    /// A slot per page of series ids: the write path's lookup is an index,
    /// not a hash.
    pages: Slots<Mutex<Page>>,
    full: DashSet<BufferKey, FastBuildHasher>,
    points: AtomicU64,
    threshold: usize,
}

impl Buffers {
    /// Empty buffers; a buffer is queued for flushing at `threshold` points.
    pub fn new(threshold: usize) -> Self {
        Buffers {
            pages: Slots::new(),
            full: DashSet::default(),
            points: AtomicU64::new(0),
            threshold: threshold.max(1),
        }
    }

    /// Points held, sealed ones included.
    pub fn len(&self) -> u64 {
        self.points.load(Ordering::Relaxed)
    }

    /// True when no point is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends validated raw entries that the WAL holds in segment `wal_seq`
    /// to the buffers of their partitions (of `partition_duration`).
    /// Consecutive entries of one series share one lock.
    pub fn append(&self, raw: &[u8], wal_seq: u64, now: u64, partition_duration: i64) {
        // Counted before the points become visible: a flush that seals them
        // at once subtracts them, and the count must never dip below zero.
        self.points
            .fetch_add((raw.len() / POINT_BYTES) as u64, Ordering::Relaxed);
        let mut current: Option<(u64, parking_lot::MutexGuard<'_, Page>)> = None;
        for entry in raw.chunks_exact(POINT_BYTES) {
            let (series, ts, value) = decode_entry(entry);
            let (page, at) = page_of(series);
            if current.as_ref().is_none_or(|(p, _)| *p != page) {
                // Release the previous page's lock before taking another.
                drop(current.take());
                // Unreachable: callers append ids the registry issued, far
                // below the table's capacity. The point is not counted.
                let Some(slot) = self.pages.get_or_alloc(page) else {
                    self.points.fetch_sub(1, Ordering::Relaxed);
                    continue;
                };
                current = Some((page, slot.lock()));
            }
            let Some((_, held)) = current.as_mut() else {
                continue;
            };
            let buffer = held.0[at].part_or_insert(ts, partition_duration);
            buffer.wal_seq = buffer.wal_seq.min(wal_seq);
            buffer.last_append = now;
            buffer.push((ts, value));
            if buffer.points.len() == self.threshold {
                self.full.insert((series, buffer.partition));
            }
        }
    }

    /// The buffers of `series`, locked; `None` if its page never held any.
    fn held(&self, series: SeriesId) -> Option<Held<'_>> {
        let (page, at) = page_of(series);
        let slot = self.pages.get(page)?;
        Some(parking_lot::MutexGuard::map(slot.lock(), |p| &mut p.0[at]))
    }

    /// Visits every series' buffers in id order, a page locked at a time.
    fn each(&self, mut visit: impl FnMut(SeriesId, &SeriesBuffers)) {
        for (page, slot) in self.pages.iter() {
            let held = slot.lock();
            for (at, series) in held.0.iter().enumerate() {
                visit(page * PAGE as u64 + at as u64, series);
            }
        }
    }

    fn keys_where(&self, keep: impl Fn(&Buffer) -> bool) -> Vec<BufferKey> {
        let mut keys = Vec::new();
        self.each(|id, held| {
            for buffer in held.parts() {
                if !buffer.points.is_empty() && keep(buffer) {
                    keys.push((id, buffer.partition));
                }
            }
        });
        keys
    }

    /// Keys of every buffer holding points.
    pub fn keys_all(&self) -> Vec<BufferKey> {
        self.keys_where(|_| true)
    }

    /// Keys of buffers with points and no append after `before` (engine ms).
    pub fn keys_idle(&self, before: u64) -> Vec<BufferKey> {
        self.keys_where(|b| b.last_append <= before)
    }

    /// Keys of buffers that reached the threshold since the last call.
    pub fn take_full(&self) -> Vec<BufferKey> {
        let keys: Vec<BufferKey> = self.full.iter().map(|k| *k).collect();
        for key in &keys {
            self.full.remove(key);
        }
        keys
    }

    /// Moves a buffer's points into a seal (sorted, deduplicated); `None`
    /// if it holds none.
    pub fn seal(&self, (series, partition): BufferKey) -> Option<Arc<Sealed>> {
        let mut held = self.held(series)?;
        let buffer = held.part_mut(partition)?;
        if buffer.points.is_empty() {
            return None;
        }
        let mut points = std::mem::take(&mut buffer.points);
        let before = points.len();
        sort_dedup(&mut points, buffer.out_of_order);
        // Overwritten duplicates are gone for good: stop counting them.
        self.points
            .fetch_sub((before - points.len()) as u64, Ordering::Relaxed);
        let sealed = Arc::new(Sealed {
            points,
            wal_seq: buffer.wal_seq,
        });
        buffer.out_of_order = false;
        buffer.wal_seq = u64::MAX;
        buffer.sealed = Some(Arc::clone(&sealed));
        Some(sealed)
    }

    /// Drops a seal whose points are now durable and indexed. An emptied
    /// buffer is removed so idle series do not hold memory.
    pub fn commit(&self, (series, partition): BufferKey, sealed: &Arc<Sealed>) {
        if let Some(mut held) = self.held(series) {
            if let Some(buffer) = held.part_mut(partition) {
                buffer.sealed = None;
            }
            held.more.retain(|b| !b.is_vacant());
            if held.more.is_empty() {
                held.more = Vec::new();
            }
            if held.first.is_vacant() {
                held.first.points = Vec::new();
            }
        }
        self.points
            .fetch_sub(sealed.points.len() as u64, Ordering::Relaxed);
    }

    /// Puts a seal's points back in front of the buffer after a failed flush.
    pub fn restore(&self, (series, partition): BufferKey, sealed: &Arc<Sealed>) {
        let Some(mut held) = self.held(series) else {
            return;
        };
        let Some(buffer) = held.part_mut(partition) else {
            return;
        };
        buffer.sealed = None;
        let newer = std::mem::take(&mut buffer.points);
        let mut points = sealed.points.clone();
        let out_of_order = match (points.last(), newer.first()) {
            (Some(a), Some(b)) => b.0 < a.0,
            _ => false,
        };
        points.extend(newer);
        buffer.out_of_order |= out_of_order;
        buffer.points = points;
        buffer.wal_seq = buffer.wal_seq.min(sealed.wal_seq);
    }

    /// Largest buffered timestamp (seals included); `i64::MIN` if none. A
    /// scan of every buffered point: for rare calls, not the write path.
    pub fn max_ts(&self) -> i64 {
        let mut max = i64::MIN;
        self.each(|_, held| {
            for buffer in held.parts() {
                let sealed = buffer.sealed.iter().flat_map(|s| s.points.iter());
                for point in buffer.points.iter().chain(sealed) {
                    max = max.max(point.0);
                }
            }
        });
        max
    }

    /// The partitions some buffer holds points (or a seal) of.
    pub fn partitions(&self) -> std::collections::HashSet<i64> {
        let mut out = std::collections::HashSet::new();
        self.each(|_, held| {
            for b in held.parts().filter(|b| !b.is_vacant()) {
                out.insert(b.partition);
            }
        });
        out
    }

    /// True when some buffer of `partition` holds points (or a seal).
    pub fn holds_partition(&self, partition: i64) -> bool {
        let mut holds = false;
        self.each(|_, held| {
            holds |= held
                .parts()
                .any(|b| b.partition == partition && !b.is_vacant());
        });
        holds
    }

    /// The oldest WAL segment some buffered point still needs; `u64::MAX`
    /// when none. Call with no flush in progress (seals are not counted).
    pub fn min_wal_seq(&self) -> u64 {
        let mut min = u64::MAX;
        self.each(|_, held| {
            for b in held.parts() {
                min = min.min(b.wal_seq);
            }
        });
        min
    }

    /// Whether `series` has a buffered point within `[from, to]`.
    pub fn holds_between(&self, series: SeriesId, from: i64, to: i64) -> bool {
        let Some(held) = self.held(series) else {
            return false;
        };
        let in_range = |p: &Point| p.0 >= from && p.0 <= to;
        let holds = held.parts().any(|buffer| {
            buffer.points.iter().any(in_range)
                || buffer
                    .sealed
                    .as_ref()
                    .is_some_and(|sealed| sealed.points.iter().any(in_range))
        });
        holds
    }

    /// Copies of the buffered points of `series` within `[from, to]`, as
    /// runs each sorted and deduplicated, older runs first: per partition,
    /// the seal (if a flush is writing it) then the live points.
    pub fn read(&self, series: SeriesId, from: i64, to: i64) -> Vec<Vec<Point>> {
        let Some(held) = self.held(series) else {
            return Vec::new();
        };
        let in_range = |p: &&Point| p.0 >= from && p.0 <= to;
        let mut runs = Vec::new();
        let mut unsorted = Vec::new();
        for buffer in held.parts() {
            if let Some(sealed) = &buffer.sealed {
                runs.push(sealed.points.iter().filter(in_range).copied().collect());
            }
            runs.push(buffer.points.iter().filter(in_range).copied().collect());
            unsorted.push(runs.len() - 1);
        }
        let flags: Vec<bool> = held.parts().map(|b| b.out_of_order).collect();
        drop(held);
        for (run, out_of_order) in unsorted.into_iter().zip(flags) {
            sort_dedup(&mut runs[run], out_of_order);
        }
        runs.retain(|r: &Vec<Point>| !r.is_empty());
        runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(entries: &[(u64, i64, f64)]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(s, t, v) in entries {
            crate::types::encode_entry(&mut out, s, t, v);
        }
        out
    }

    #[test]
    fn append_partitions_counts_and_queues_full_buffers() {
        let buffers = Buffers::new(2);
        buffers.append(
            &raw(&[(0, 5, 1.0), (0, 15, 2.0), (1, 1, 3.0), (0, 6, 4.0)]),
            7,
            0,
            10,
        );
        assert_eq!(buffers.len(), 4);
        assert_eq!(buffers.take_full(), vec![(0, 0)]);
        assert!(buffers.take_full().is_empty());
        assert_eq!(buffers.read(0, 0, 9), vec![vec![(5, 1.0), (6, 4.0)]]);
        assert_eq!(buffers.min_wal_seq(), 7);
    }

    #[test]
    fn a_partition_starting_below_i64_min_holds_its_points() {
        let buffers = Buffers::new(100);
        let day = 86_400_000;
        let ts = [i64::MIN + 1, i64::MIN + 2, i64::MIN + 3];
        buffers.append(&raw(&ts.map(|t| (0, t, 1.0))), 1, 0, day);
        let partition = (i64::MIN + 1).div_euclid(day);
        assert_eq!(buffers.keys_all(), vec![(0, partition)]);
        assert_eq!(buffers.seal((0, partition)).unwrap().points.len(), 3);
    }

    #[test]
    fn a_restored_seal_goes_back_in_front_of_newer_points() {
        let buffers = Buffers::new(100);
        buffers.append(&raw(&[(0, 2, 1.0), (0, 1, 1.0)]), 3, 0, 100);
        let sealed = buffers.seal((0, 0)).unwrap();
        assert_eq!(sealed.points, vec![(1, 1.0), (2, 1.0)]);
        buffers.append(&raw(&[(0, 2, 5.0)]), 4, 0, 100);
        assert_eq!(
            buffers.read(0, 0, 9),
            vec![vec![(1, 1.0), (2, 1.0)], vec![(2, 5.0)]]
        );
        buffers.restore((0, 0), &sealed);
        assert_eq!(buffers.read(0, 0, 9), vec![vec![(1, 1.0), (2, 5.0)]]);
        assert_eq!(buffers.min_wal_seq(), 3);

        let sealed = buffers.seal((0, 0)).unwrap();
        buffers.commit((0, 0), &sealed);
        assert!(buffers.is_empty());
        assert_eq!(buffers.min_wal_seq(), u64::MAX);
    }
}
