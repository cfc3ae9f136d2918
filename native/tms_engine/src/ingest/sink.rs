//! The one batch every import format fills: series deduplicated by the
//! bytes that spell them, the import's extra labels applied, timestamps
//! converted from milliseconds to the store's unit. A series an earlier
//! import spelled the same way (same format, same extra labels) is
//! recognized by a hash of its spelling and a cache probe, without parsing
//! its labels or looking it up.

use std::borrow::Cow;
use std::collections::HashMap;

use super::sequence::{spelling_hash, Follower, Predicted, Sequences};
use crate::batch::{BatchSeries, LabeledBatch, MAX_BATCH_POINTS};
use crate::error::{EngineError, Result};
use crate::hash::FastBuildHasher;
use crate::types::SeriesId;

/// Label pairs as parsed: borrowed from the body, owned where unescaped.
pub type Labels<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

/// Answers the series an earlier import spelled: `(hash, spelling) -> id`.
pub type Known<'a> = &'a dyn Fn(u64, &[u8]) -> Option<SeriesId>;

/// What every import takes besides the body.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "nif", derive(rustler::NifMap))]
pub struct ImportOptions {
    /// Added to every series, replacing a label of the same name.
    pub labels: Vec<(String, String)>,
    /// The timestamp (store units) of text samples that carry none.
    pub default_ts: i64,
    /// Largest body after decompression (remote_write), in bytes.
    pub max_decompressed: usize,
    /// Keep a body label that clashes with one of `labels` as
    /// `exported_<name>` instead of dropping it (Prometheus' scrape rule,
    /// `honor_labels: false`).
    pub rename_clashing: bool,
}

/// Collects one body's series and points.
pub struct Sink<'a> {
    pub batch: LabeledBatch<'a, Cow<'a, str>, Cow<'a, str>>,
    opts: &'a ImportOptions,
    /// The store's timestamp units in a second (imports carry milliseconds).
    units_per_second: i64,
    /// New series of this body by their spelling, so each is created once.
    seen: HashMap<Spelled<'a>, usize, FastBuildHasher>,
    /// Mixed into every spelling's hash: the format and the extra labels,
    /// which change what a spelling means.
    seed: u64,
    /// Series earlier imports spelled: `(hash, spelling) -> id`.
    known: Option<Known<'a>>,
    /// Earlier bodies' sequences of series, and the one this body follows.
    sequences: Option<&'a Sequences>,
    follower: Follower,
    /// Spelled series no sequence predicted.
    pub unpredicted: usize,
}

impl<'a> Sink<'a> {
    /// An empty sink for one body, for a store of `units_per_second`.
    pub fn new(opts: &'a ImportOptions, units_per_second: i64) -> Self {
        Sink {
            batch: LabeledBatch::default(),
            opts,
            units_per_second,
            seen: HashMap::default(),
            seed: 0,
            known: None,
            sequences: None,
            follower: Follower::default(),
            unpredicted: 0,
        }
    }

    /// Reserves room for about `samples` samples of as many series (a body
    /// of that many lines), so the batch and the series map grow once.
    pub fn expecting(mut self, samples: usize) -> Self {
        self.batch.series.reserve(samples);
        self.batch.points.reserve(samples);
        self.seen.reserve(samples);
        self
    }

    /// Recognizes series earlier imports spelled, through `known`; `seed`
    /// stands for what, besides the spelling, decides the series.
    pub fn recognizing(mut self, seed: u64, known: Known<'a>) -> Self {
        self.seed = seed;
        self.known = Some(known);
        self
    }

    /// What, besides the spelling, decides a series (see [`import_seed`]).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Predicts the body's series from the sequences of earlier bodies
    /// (see sequence.rs).
    pub fn following(mut self, sequences: &'a Sequences) -> Self {
        self.sequences = Some(sequences);
        self
    }

    /// The series the body's sequence predicts next, when `rest` starts
    /// with its spelling (see [`Follower::peek`]).
    pub fn predicted(&self, rest: &[u8]) -> Option<Predicted> {
        self.follower.peek(rest)
    }

    /// The index of a predicted series, once the parser found its spelling
    /// `spelling` ends where the prediction's does.
    pub fn series_predicted(&mut self, predicted: Predicted, spelling: &'a [u8]) -> usize {
        let id = self.follower.take(predicted);
        self.push_known(id, spelling)
    }

    /// The index of the series spelled `spelling` (when the format has one
    /// contiguous spelling per series), parsing it with `parse` only the
    /// first time: `parse` pushes the labels and answers the metric name.
    pub fn series(
        &mut self,
        spelling: Option<&'a [u8]>,
        parse: impl FnOnce(&mut Labels<'a>) -> Result<Cow<'a, str>>,
    ) -> Result<usize> {
        // A predicted spelling needs no hash at all.
        let mut hash = None;
        if let Some(bytes) = spelling {
            if let Some(id) = self.follower.next(bytes) {
                return Ok(self.push_known(id, bytes));
            }
            let h = spelling_hash(self.seed, bytes);
            if let Some(id) = self.resumed(h, bytes) {
                return Ok(self.push_known(id, bytes));
            }
            self.unpredicted += 1;
            // A series the store knows needs no deduplication here: each
            // occurrence names the same id.
            if let Some(id) = self.known.and_then(|known| known(h, bytes)) {
                return Ok(self.push_known(id, bytes));
            }
            if let Some(&index) = self.seen.get(&Spelled { hash: h, bytes }) {
                return Ok(index);
            }
            hash = Some(h);
        }
        let start = self.batch.labels.len();
        let metric = parse(&mut self.batch.labels)?;
        // The import's own labels win over the body's; a clashing body
        // label is dropped, or renamed exported_<name> (again while the new
        // name clashes too).
        let extra = &self.opts.labels;
        if !extra.is_empty() {
            let clashes = |name: &str| extra.iter().any(|(k, _)| k == name);
            let mut kept = start;
            for i in start..self.batch.labels.len() {
                let name = &self.batch.labels[i].0;
                if clashes(name) && self.opts.rename_clashing {
                    let mut renamed = format!("exported_{name}");
                    while clashes(&renamed) {
                        renamed.insert_str(0, "exported_");
                    }
                    self.batch.labels[i].0 = Cow::Owned(renamed);
                }
                if !clashes(&self.batch.labels[i].0) {
                    self.batch.labels.swap(kept, i);
                    kept += 1;
                }
            }
            self.batch.labels.truncate(kept);
            self.batch.labels.extend(
                extra
                    .iter()
                    .map(|(k, v)| (Cow::Borrowed(k.as_str()), Cow::Borrowed(v.as_str()))),
            );
        }
        let index = self.batch.series.len();
        self.batch.series.push(BatchSeries {
            metric,
            labels: start..self.batch.labels.len(),
            first_point: self.batch.points.len(),
            known: None,
            hint: hash,
            spelling,
        });
        if let (Some(bytes), Some(hash)) = (spelling, hash) {
            self.seen.insert(Spelled { hash, bytes }, index);
        }
        Ok(index)
    }

    /// The id of an unpredicted spelling (hashed to `hash`) found at the
    /// start or an anchor of a remembered sequence, which the body then
    /// follows.
    fn resumed(&mut self, hash: u64, bytes: &[u8]) -> Option<SeriesId> {
        if !self.follower.should_look(hash) {
            return None;
        }
        let (sequence, at) = self.sequences?.find(hash, self.seed, bytes)?;
        self.follower.resume(sequence, at)
    }

    /// A batch series for the known series `id`, spelled `spelling` (kept
    /// for the body's sequence).
    fn push_known(&mut self, id: SeriesId, spelling: &'a [u8]) -> usize {
        let at = self.batch.labels.len();
        self.batch.series.push(BatchSeries {
            metric: Cow::Borrowed(""),
            labels: at..at,
            first_point: self.batch.points.len(),
            known: Some(id),
            hint: None,
            spelling: Some(spelling),
        });
        self.batch.series.len() - 1
    }

    /// Adds a point of `series` at `ts_ms` (milliseconds since the epoch).
    pub fn point(&mut self, series: usize, ts_ms: i64, value: f64) -> Result<()> {
        let ts = self.units_of_ms(ts_ms)?;
        self.push(series, ts, value)
    }

    /// Adds a point of `series` at the import's default timestamp.
    pub fn point_now(&mut self, series: usize, value: f64) -> Result<()> {
        self.push(series, self.opts.default_ts, value)
    }

    /// A body stops at [`MAX_BATCH_POINTS`] samples, before its batch grows
    /// past what one write may carry.
    fn push(&mut self, series: usize, ts: i64, value: f64) -> Result<()> {
        if self.batch.points.len() == MAX_BATCH_POINTS {
            return Err(EngineError::invalid(format!(
                "a body may hold at most {MAX_BATCH_POINTS} samples; split it"
            )));
        }
        self.batch.points.push((series, ts, value));
        Ok(())
    }

    fn units_of_ms(&self, ms: i64) -> Result<i64> {
        let ups = self.units_per_second;
        if ups == 1000 {
            return Ok(ms);
        }
        let units = i128::from(ms) * i128::from(ups) / 1000;
        i64::try_from(units)
            .map_err(|_| EngineError::invalid(format!("timestamp {ms} ms is out of range")))
    }
}

/// A series' spelling with its hash, computed once: the map hashes only
/// the hash, and equality compares the bytes.
#[derive(PartialEq, Eq)]
struct Spelled<'a> {
    hash: u64,
    bytes: &'a [u8],
}

impl std::hash::Hash for Spelled<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// The seed of an import's spellings: its format, extra labels and clash
/// rule (all of which change what a spelling means).
pub fn import_seed(format: u8, opts: &ImportOptions) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = FastBuildHasher::default().build_hasher();
    hasher.write_u8(format);
    hasher.write_u8(u8::from(opts.rename_clashing));
    let labels = &opts.labels;
    for (k, v) in labels {
        // Lengths first, so that ("ab","c") and ("a","bc") differ.
        hasher.write_usize(k.len());
        hasher.write(k.as_bytes());
        hasher.write_usize(v.len());
        hasher.write(v.as_bytes());
    }
    hasher.finish()
}

/// The error for a malformed body at `line` (1-based), quoting the line.
pub fn bad_line(line: usize, text: &[u8], reason: impl std::fmt::Display) -> EngineError {
    const QUOTE: usize = 120;
    let shown = String::from_utf8_lossy(&text[..text.len().min(QUOTE)]);
    let more = if text.len() > QUOTE { "..." } else { "" };
    EngineError::BadInput {
        line: line as u64,
        reason: format!("{reason}: {shown:?}{more}"),
    }
}

/// A series as plain values, for tests: its metric and its labels.
#[cfg(test)]
pub type PlainSeries = (String, Vec<(String, String)>);

#[cfg(test)]
impl Sink<'_> {
    /// The batch as plain values, for the parsers' tests: every series,
    /// and every point as `(series, timestamp, value bits)`.
    pub fn plain(&self) -> (Vec<PlainSeries>, Vec<(usize, i64, u64)>) {
        let b = &self.batch;
        let series = b
            .series
            .iter()
            .map(|s| {
                let labels = b.labels[s.labels.clone()]
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                (s.metric.to_string(), labels)
            })
            .collect();
        let points = b
            .points
            .iter()
            .map(|&(s, t, v)| (s, t, v.to_bits()))
            .collect();
        (series, points)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_stops_at_the_batch_limit() {
        let opts = ImportOptions {
            labels: Vec::new(),
            default_ts: 0,
            max_decompressed: 0,
            rename_clashing: false,
        };
        let mut sink = Sink::new(&opts, 1000);
        let series = sink.series(None, |_| Ok(Cow::Borrowed("m"))).unwrap();
        for ts in 0..MAX_BATCH_POINTS as i64 {
            sink.point(series, ts, 1.0).unwrap();
        }
        assert!(matches!(
            sink.point(series, -1, 1.0),
            Err(EngineError::InvalidArgument(_))
        ));
        assert!(sink.point_now(series, 1.0).is_err());
    }
}
