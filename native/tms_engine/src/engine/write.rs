//! The write path: validate the whole batch, resolve series, append one WAL
//! record, append to hot buffers, acknowledge. A batch is all or nothing.

use dashmap::DashMap;

use std::sync::Arc;

use super::{local_spellings, Engine};
use crate::batch::{LabeledBatch, MAX_BATCH_POINTS};
use crate::error::{EngineError, Result};
use crate::hash::FastBuildHasher;
use crate::series_key::{self, SeriesKey};
use crate::types::{decode_entry, encode_entry, SeriesId, POINT_BYTES};

impl Engine {
    /// A timestamp is writable when it is in range and not before the
    /// retention cutoff (where it would be invisible, and deleted).
    fn check_timestamp(&self, ts: i64, cutoff: i64, entry: usize) -> Result<()> {
        if ts.unsigned_abs() > self.config.max_abs_timestamp as u64 {
            return Err(EngineError::invalid(format!(
                "entry {entry}: timestamp {ts} is outside ±{}",
                self.config.max_abs_timestamp
            )));
        }
        if ts < cutoff {
            return Err(EngineError::invalid(format!(
                "entry {entry}: timestamp {ts} is before the retention cutoff {cutoff}"
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
    /// `labels` are put in canonical order in place (see
    /// [`series_key::canonicalize`]: empty values are no labels).
    pub fn resolve<K: AsRef<str>, V: AsRef<str>>(
        &self,
        metric: &str,
        labels: &mut [(K, V)],
    ) -> Result<SeriesId> {
        self.check_open()?;
        let kept = series_key::canonicalize(metric, labels)?;
        self.resolve_canonical(metric, &labels[..kept])
    }

    fn resolve_canonical<K: AsRef<str>, V: AsRef<str>>(
        &self,
        metric: &str,
        labels: &[(K, V)],
    ) -> Result<SeriesId> {
        match self.registry.lookup(metric, labels) {
            Some(id) => Ok(id),
            None => self.create(metric, labels),
        }
    }

    /// Creates a series the caller just failed to look up (the registry
    /// looks again under its creation lock, for a racing creator).
    fn create<K: AsRef<str>, V: AsRef<str>>(
        &self,
        metric: &str,
        labels: &[(K, V)],
    ) -> Result<SeriesId> {
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
        let cutoff = self.cutoff();
        for (entry, bytes) in raw.chunks_exact(POINT_BYTES).enumerate() {
            let (id, ts, _) = decode_entry(bytes);
            if id >= known {
                return Err(EngineError::SeriesNotFound { id, entry });
            }
            self.check_timestamp(ts, cutoff, entry)?;
        }
        self.append(raw)
    }

    /// Writes labeled points, creating series as needed; answers the id of
    /// each of the batch's series. Everything is validated before any
    /// series is created or point written.
    pub fn write_labeled<K: AsRef<str>, V: AsRef<str>>(
        &self,
        batch: &mut LabeledBatch<'_, K, V>,
    ) -> Result<Vec<SeriesId>> {
        self.check_open()?;
        Self::check_batch_len(batch.points.len())?;
        for series in batch.series.iter_mut().filter(|s| s.known.is_none()) {
            let first_point = series.first_point;
            let at = |e: EngineError| EngineError::invalid(format!("entry {first_point}: {e}"));
            let own = batch
                .labels
                .get_mut(series.labels.clone())
                .ok_or_else(|| at(EngineError::invalid("label range out of bounds")))?;
            let kept = series_key::canonicalize(&series.metric, own).map_err(at)?;
            // Labels with an empty value stay behind the range, unused.
            series.labels.end = series.labels.start + kept;
        }
        let cutoff = self.cutoff();
        for (entry, &(series, ts, _)) in batch.points.iter().enumerate() {
            if series >= batch.series.len() {
                return Err(EngineError::invalid(format!(
                    "entry {entry}: series index out of bounds"
                )));
            }
            self.check_timestamp(ts, cutoff, entry)?;
        }
        // Known series first, so that a batch needing more new series than
        // max_series allows is refused before it creates any.
        let found: Vec<Option<SeriesId>> = batch
            .series
            .iter()
            .map(|s| {
                s.known.or_else(|| {
                    self.registry
                        .lookup(&s.metric, &batch.labels[s.labels.clone()])
                })
            })
            .collect();
        let new = found.iter().filter(|id| id.is_none()).count() as u64;
        let limit = self.config.max_series;
        if new > 0 && self.registry.len().saturating_add(new) > limit {
            return Err(EngineError::CardinalityLimit { limit });
        }
        let ids = batch
            .series
            .iter()
            .zip(found)
            .map(|(s, found)| {
                let id = match found {
                    Some(id) => id,
                    None => self.create(&s.metric, &batch.labels[s.labels.clone()])?,
                };
                if s.known.is_none() {
                    match (s.hint, s.spelling) {
                        (Some(hint), Some(spelling)) => self.remember_spelling(hint, id, spelling),
                        (Some(hint), None) => self.remember_hint(hint, id),
                        _ => {}
                    }
                }
                Ok(id)
            })
            .collect::<Result<Vec<SeriesId>>>()?;
        let mut raw = Vec::with_capacity(batch.points.len() * POINT_BYTES);
        for &(series, ts, value) in &batch.points {
            encode_entry(&mut raw, ids[series], ts, value);
        }
        self.append(&raw)?;
        Ok(ids)
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
        if let Some(key) = self.registry.key(id) {
            self.bounded(&self.hints);
            self.hints.insert(hint, (id, key));
        }
    }

    /// The series an import spelled `spelling` before (its hash `hash`
    /// includes the import's labels and format): a hash and a probe, and a
    /// byte comparison so that a collision costs a miss, never a wrong series.
    /// This thread's cache answers first: a hit writes no shared memory.
    pub fn spelled(&self, hash: u64, spelling: &[u8]) -> Option<SeriesId> {
        if let Some(id) = local_spellings::get(self.instance, hash, spelling) {
            return Some(id);
        }
        let (id, known) = {
            let entry = self.spellings.get(&hash)?;
            (entry.0, Arc::clone(&entry.1))
        };
        (*known == *spelling).then(|| {
            local_spellings::put(self.instance, hash, id, known);
            id
        })
    }

    fn remember_spelling(&self, hash: u64, id: SeriesId, spelling: &[u8]) {
        self.bounded(&self.spellings);
        self.spellings.insert(hash, (id, spelling.into()));
    }

    /// Keeps a cache of caller spellings bounded: a caller sending many
    /// spellings of its series cannot grow it past a few entries per series.
    fn bounded<V>(&self, cache: &DashMap<u64, V, FastBuildHasher>) {
        if cache.len() as u64 > 4 * self.registry.len() + 1024 {
            cache.clear();
        }
    }

    /// Logs and buffers validated raw entries.
    fn append(&self, raw: &[u8]) -> Result<()> {
        let incoming = (raw.len() / POINT_BYTES) as u64;
        if incoming == 0 {
            return Ok(());
        }
        let limit = self.config.max_buffered_points;
        if incoming > limit {
            // Retrying could never help: this is the caller's to split.
            return Err(EngineError::invalid(format!(
                "a batch of {incoming} points can never fit under max_buffered_points ({limit}); split it"
            )));
        }
        let buffered = self.buffers.len();
        if buffered.saturating_add(incoming) > limit {
            return Err(EngineError::Overloaded {
                buffered,
                incoming,
                limit: self.config.max_buffered_points,
            });
        }
        let ticket = self.wal.append_points(raw)?;
        let partition = self.config.partition_duration;
        self.buffers
            .append(raw, ticket.seq(), self.now_ms(), partition);
        drop(ticket);
        Ok(())
    }
}
