//! The series registry: `(metric, labels)` to a dense id, and back.
//!
//! Ids are assigned sequentially from 0, so "is this id known" is one
//! comparison against [`Registry::len`]. Lookup is two-level: a concurrent
//! map from metric name to that metric's series, then a hash of the sorted
//! labels. The labels hash is only a hint: every hit is verified against the
//! stored key, so a collision can never return another series. A hit borrows
//! the caller's strings and allocates nothing.
//!
//! Durability: a new series is announced to the WAL (through the `on_create`
//! callback, under the creation lock, so WAL order equals id order) before it
//! becomes visible. The registry file is a snapshot written at flush time,
//! before the WAL segments that announced its series are deleted; its
//! format is in snapshot.rs.

mod snapshot;

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use parking_lot::{Mutex, RwLock};

use crate::error::{EngineError, Result};
use crate::files::write_atomic;
use crate::hash::FastBuildHasher;
use crate::index::{LabelIndex, Matcher};
use crate::series_key::SeriesKey;
use crate::types::SeriesId;

/// The series of one metric, found by a hash of their labels.
#[derive(Default)]
struct MetricSeries {
    by_labels: HashMap<u64, Vec<(SeriesId, Arc<SeriesKey>)>, FastBuildHasher>,
}

/// Maps series keys to dense ids and back. Generic over the labels hasher
/// only so that a test can force collisions.
pub struct Registry<H: BuildHasher = FastBuildHasher> {
    by_metric: DashMap<Box<str>, MetricSeries, FastBuildHasher>,
    keys: RwLock<Vec<Arc<SeriesKey>>>,
    /// The inverted label index queries select series with.
    postings: LabelIndex,
    /// Serializes id assignment with its WAL announcement.
    create_lock: Mutex<()>,
    len: AtomicU64,
    persisted_len: AtomicU64,
    /// Most series [`Registry::resolve`] may create (replay is not limited:
    /// series that exist always load).
    max_series: AtomicU64,
    hasher: H,
}

impl Registry<FastBuildHasher> {
    /// An empty registry.
    pub fn new() -> Self {
        Self::with_hasher(FastBuildHasher::default())
    }

    /// Loads the snapshot at `path`; an empty registry if there is none.
    /// A snapshot that fails its checksum or parse is an error.
    pub fn load(path: &Path) -> Result<Self> {
        let registry = Self::new();
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(registry),
            Err(e) => return Err(EngineError::io("read", path, e)),
        };
        registry.load_snapshot(path, &bytes)?;
        Ok(registry)
    }
}

impl Default for Registry<FastBuildHasher> {
    fn default() -> Self {
        Self::new()
    }
}

impl<H: BuildHasher> Registry<H> {
    /// An empty registry hashing labels with `hasher`.
    pub fn with_hasher(hasher: H) -> Self {
        Registry {
            by_metric: DashMap::default(),
            keys: RwLock::new(Vec::new()),
            postings: LabelIndex::default(),
            create_lock: Mutex::new(()),
            len: AtomicU64::new(0),
            persisted_len: AtomicU64::new(0),
            max_series: AtomicU64::new(u64::MAX),
            hasher,
        }
    }

    /// Sets the most series [`Registry::resolve`] may create.
    pub fn set_max_series(&self, max_series: u64) {
        self.max_series.store(max_series, Ordering::Relaxed);
    }

    /// Number of series; every id below it is assigned.
    pub fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }

    /// True when no series exists.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn labels_hash<K: AsRef<str>, V: AsRef<str>>(&self, labels: &[(K, V)]) -> u64 {
        let mut h = self.hasher.build_hasher();
        for (k, v) in labels {
            k.as_ref().hash(&mut h);
            v.as_ref().hash(&mut h);
        }
        h.finish()
    }

    /// The id of an existing series. `labels` must be canonical.
    pub fn lookup<K: AsRef<str>, V: AsRef<str>>(
        &self,
        metric: &str,
        labels: &[(K, V)],
    ) -> Option<SeriesId> {
        let hash = self.labels_hash(labels);
        let series = self.by_metric.get(metric)?;
        let candidates = series.by_labels.get(&hash)?;
        candidates
            .iter()
            .find(|(_, key)| key.same_labels(labels))
            .map(|(id, _)| *id)
    }

    /// The id of the series, creating it if new. `labels` must be canonical.
    /// For a new series `on_create(id, key)` runs first (the WAL announcement);
    /// if it fails the series is not created. What it returns is dropped only
    /// once the series is visible (a WAL ticket).
    pub fn resolve<K: AsRef<str>, V: AsRef<str>, T>(
        &self,
        metric: &str,
        labels: &[(K, V)],
        on_create: impl FnOnce(SeriesId, &SeriesKey) -> Result<T>,
    ) -> Result<SeriesId> {
        if let Some(id) = self.lookup(metric, labels) {
            return Ok(id);
        }
        let _creating = self.create_lock.lock();
        if let Some(id) = self.lookup(metric, labels) {
            return Ok(id);
        }
        let id = self.len();
        let limit = self.max_series.load(Ordering::Relaxed);
        if id >= limit {
            return Err(EngineError::CardinalityLimit { limit });
        }
        let key = SeriesKey::new(metric, labels);
        let announced = on_create(id, &key)?;
        self.insert(id, Arc::new(key));
        drop(announced);
        Ok(id)
    }

    /// Re-applies a series announced in the WAL: ids already known must carry
    /// the same key, the next id is created, a gap is corruption.
    pub fn replay(&self, id: SeriesId, key: SeriesKey, source: &Path) -> Result<()> {
        let _creating = self.create_lock.lock();
        let len = self.len();
        if id < len {
            return match self.key(id) {
                Some(known) if *known == key => Ok(()),
                _ => Err(EngineError::corrupt(
                    source,
                    format!("series {id} announced with a different key than the registry holds"),
                )),
            };
        }
        if id > len {
            return Err(EngineError::corrupt(
                source,
                format!("series {id} announced but the registry has only {len}"),
            ));
        }
        self.insert(id, Arc::new(key));
        Ok(())
    }

    fn insert(&self, id: SeriesId, key: Arc<SeriesKey>) {
        let hash = self.labels_hash(&key.labels);
        self.keys.write().push(Arc::clone(&key));
        self.postings.add(id, &key.metric, &key.labels);
        // The metric name is copied only for a new metric, and a hash's list
        // starts with room for one series (a Vec's first push reserves four).
        let mut series = match self.by_metric.get_mut(&*key.metric) {
            Some(series) => series,
            None => self.by_metric.entry(key.metric.clone()).or_default(),
        };
        series
            .by_labels
            .entry(hash)
            .or_insert_with(|| Vec::with_capacity(1))
            .push((id, key));
        // Publish the id last: a raw write may use it as soon as len passes it.
        self.len.store(id + 1, Ordering::Release);
    }

    /// The key of series `id`.
    pub fn key(&self, id: SeriesId) -> Option<Arc<SeriesKey>> {
        let index = usize::try_from(id).ok()?;
        self.keys.read().get(index).cloned()
    }

    /// Sorted ids of the series of `metric` matching every matcher.
    pub fn select(&self, metric: &str, matchers: &[Matcher]) -> Vec<SeriesId> {
        self.postings.select(metric, matchers)
    }

    /// Distinct values of `label` among the series of `metric`, sorted.
    pub fn label_values(&self, metric: &str, label: &str) -> Vec<String> {
        self.postings.label_values(metric, label)
    }

    /// Every metric name, sorted.
    pub fn metrics(&self) -> Vec<String> {
        self.postings.metrics()
    }

    /// Writes the snapshot to `path` if series were added since the last one.
    pub fn persist(&self, path: &Path) -> Result<()> {
        let (bytes, count) = {
            let keys = self.keys.read();
            if keys.len() as u64 == self.persisted_len.load(Ordering::Acquire) {
                return Ok(());
            }
            (snapshot::encode(&keys), keys.len() as u64)
        };
        write_atomic(path, &bytes)?;
        self.persisted_len.store(count, Ordering::Release);
        Ok(())
    }

    fn load_snapshot(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let keys = snapshot::decode(path, bytes)?;
        let count = keys.len() as u64;
        for (id, key) in (0..).zip(keys) {
            self.insert(id, Arc::new(key));
        }
        self.persisted_len.store(count, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasherDefault;

    /// Sends every label set to the same hash, so every lookup collides.
    #[derive(Default)]
    struct Colliding;
    impl Hasher for Colliding {
        fn write(&mut self, _: &[u8]) {}
        fn finish(&self) -> u64 {
            42
        }
    }

    fn none(_: SeriesId, _: &SeriesKey) -> Result<()> {
        Ok(())
    }

    #[test]
    fn a_forced_hash_collision_never_returns_another_series() {
        let reg = Registry::with_hasher(BuildHasherDefault::<Colliding>::default());
        let a = reg.resolve("cpu", &[("host", "a")], none).unwrap();
        let b = reg.resolve("cpu", &[("host", "b")], none).unwrap();
        let c = reg
            .resolve("cpu", &[("host", "a"), ("zone", "1")], none)
            .unwrap();
        assert_eq!((a, b, c), (0, 1, 2));
        assert_eq!(reg.lookup("cpu", &[("host", "b")]), Some(1));
        assert_eq!(reg.lookup("cpu", &[("host", "a")]), Some(0));
        assert_eq!(reg.lookup("cpu", &[("host", "c")]), None);
        assert_eq!(reg.resolve("cpu", &[("host", "b")], none).unwrap(), 1);
        assert_eq!(reg.len(), 3);
    }

    #[test]
    fn same_labels_under_another_metric_are_another_series() {
        let reg = Registry::new();
        let a = reg.resolve("cpu", &[("host", "a")], none).unwrap();
        let b = reg.resolve("mem", &[("host", "a")], none).unwrap();
        assert_ne!(a, b);
        assert_eq!(reg.select("cpu", &[]), vec![a]);
        assert_eq!(reg.metrics(), vec!["cpu", "mem"]);
    }

    #[test]
    fn a_failed_announcement_creates_nothing() {
        let reg = Registry::new();
        let err = reg
            .resolve("cpu", &[("h", "a")], |_, _| {
                Err::<(), _>(EngineError::Closed)
            })
            .unwrap_err();
        assert_eq!(err, EngineError::Closed);
        assert!(reg.is_empty());
        assert_eq!(reg.lookup("cpu", &[("h", "a")]), None);
    }

    #[test]
    fn snapshot_round_trips_and_a_flipped_byte_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::layout::Layout::new(dir.path()).registry();
        let reg = Registry::new();
        reg.resolve("cpu", &[("host", "a"), ("zone", "ü")], none)
            .unwrap();
        reg.resolve("mem", &[] as &[(&str, &str)], none).unwrap();
        reg.persist(&path).unwrap();

        let loaded = Registry::load(&path).unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!(
            loaded.lookup("cpu", &[("host", "a"), ("zone", "ü")]),
            Some(0)
        );
        assert_eq!(*loaded.key(1).unwrap().metric, *"mem");

        let mut bytes = std::fs::read(&path).unwrap();
        for i in [0, 9, 14, bytes.len() / 2, bytes.len() - 1] {
            bytes[i] ^= 0x10;
            std::fs::write(&path, &bytes).unwrap();
            assert!(Registry::load(&path).is_err(), "flip at {i} went unnoticed");
            bytes[i] ^= 0x10;
        }
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert!(Registry::load(&path).is_err());
    }

    #[test]
    fn replay_accepts_known_and_next_ids_and_rejects_gaps() {
        let reg = Registry::new();
        let p = Path::new("wal");
        let key = |m: &str| SeriesKey::new(m, &[("a", "1")]);
        reg.replay(0, key("x"), p).unwrap();
        reg.replay(0, key("x"), p).unwrap();
        assert!(reg.replay(0, key("y"), p).is_err());
        assert!(reg.replay(5, key("z"), p).is_err());
        reg.replay(1, key("y"), p).unwrap();
        assert_eq!(reg.lookup("y", &[("a", "1")]), Some(1));
    }
}
