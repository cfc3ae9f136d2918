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
use crate::registry::SeriesId;
use crate::segment::Segment;

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
    use crate::segment::ChunkMeta;
    use std::path::PathBuf;

    fn segment(seq: u64, chunks: &[(SeriesId, i64, i64)]) -> Arc<Segment> {
        Arc::new(Segment::new(
            seq,
            0,
            PathBuf::from(format!("{seq}.seg")),
            100,
            chunks
                .iter()
                .map(|&(series, min_ts, max_ts)| ChunkMeta {
                    series,
                    min_ts,
                    max_ts,
                    count: 1,
                    ts_len: 0,
                    val_len: 0,
                    crc: 0,
                    offset: 0,
                })
                .collect(),
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

/// How a matcher compares a label's value.
#[derive(Debug, Clone)]
pub enum MatchOp {
    Eq(String),
    Neq(String),
    /// Anchored: the whole value must match, as in Prometheus.
    Regex(regex::Regex),
    NotRegex(regex::Regex),
}

/// A label matcher. As in Prometheus, a series without the label has the
/// value `""` for it: `{"env", :eq, ""}` selects series without `env`.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub label: String,
    pub op: MatchOp,
}

impl Matcher {
    /// Builds a matcher; a regex is compiled once, anchored to the whole value.
    pub fn new(label: &str, op: &str, value: &str) -> Result<Matcher, String> {
        let anchored = || {
            regex::Regex::new(&format!("^(?:{value})$"))
                .map_err(|e| format!("label {label:?}: bad regex {value:?}: {e}"))
        };
        let op = match op {
            "eq" => MatchOp::Eq(value.to_string()),
            "neq" => MatchOp::Neq(value.to_string()),
            "regex" => MatchOp::Regex(anchored()?),
            "not_regex" => MatchOp::NotRegex(anchored()?),
            other => return Err(format!("unknown matcher operator {other:?}")),
        };
        Ok(Matcher {
            label: label.to_string(),
            op,
        })
    }

    /// True if a series whose value for the label is `value` (`""` when it
    /// lacks the label) matches.
    pub fn accepts(&self, value: &str) -> bool {
        match &self.op {
            MatchOp::Eq(v) => value == v,
            MatchOp::Neq(v) => value != v,
            MatchOp::Regex(re) => re.is_match(value),
            MatchOp::NotRegex(re) => !re.is_match(value),
        }
    }
}

/// Posting lists of one metric: every series, and per label and value the
/// series that carry it. Ids are appended in creation order, so every list
/// is sorted without sorting.
#[derive(Default)]
struct Postings {
    all: Vec<SeriesId>,
    labels: HashMap<Box<str>, BTreeMap<Box<str>, Vec<SeriesId>>, FastBuildHasher>,
}

/// The inverted index `(metric, label, value) -> sorted series ids`.
#[derive(Default)]
pub struct LabelIndex {
    inner: RwLock<HashMap<Box<str>, Postings, FastBuildHasher>>,
}

impl LabelIndex {
    /// Adds series `id`, which must be higher than every id added before.
    pub fn add(&self, id: SeriesId, metric: &str, labels: &[(Box<str>, Box<str>)]) {
        let mut inner = self.inner.write();
        let postings = inner.entry(metric.into()).or_default();
        postings.all.push(id);
        for (name, value) in labels {
            postings
                .labels
                .entry(name.clone())
                .or_default()
                .entry(value.clone())
                .or_default()
                .push(id);
        }
    }

    /// Sorted ids of the series of `metric` matching every matcher. Equality
    /// matchers intersect posting lists; regex matchers test each distinct
    /// value of their label once, not each series.
    pub fn select(&self, metric: &str, matchers: &[Matcher]) -> Vec<SeriesId> {
        let inner = self.inner.read();
        let Some(postings) = inner.get(metric) else {
            return Vec::new();
        };
        // Most selective first: equality on a non-empty value.
        let mut order: Vec<&Matcher> = matchers.iter().collect();
        order.sort_by_key(|m| !matches!(&m.op, MatchOp::Eq(v) if !v.is_empty()));
        let mut selected: Option<Vec<SeriesId>> = None;
        for matcher in order {
            let values = postings.labels.get(matcher.label.as_str());
            let matching = match (&matcher.op, values) {
                (MatchOp::Eq(v), Some(values)) if !v.is_empty() => {
                    values.get(v.as_str()).cloned().unwrap_or_default()
                }
                (_, None) if matcher.accepts("") => postings.all.clone(),
                (_, None) => Vec::new(),
                (_, Some(values)) => {
                    let mut ids = union(
                        values
                            .iter()
                            .filter(|(v, _)| matcher.accepts(v))
                            .map(|(_, ids)| ids),
                    );
                    if matcher.accepts("") {
                        // Series without the label count as having "".
                        let labeled = union(values.values());
                        ids = union([&ids, &difference(&postings.all, &labeled)]);
                    }
                    ids
                }
            };
            let narrowed = match selected {
                None => matching,
                Some(current) => intersect(&current, &matching),
            };
            if narrowed.is_empty() {
                return narrowed;
            }
            selected = Some(narrowed);
        }
        selected.unwrap_or_else(|| postings.all.clone())
    }

    /// Distinct values of `label` among the series of `metric`, sorted.
    pub fn label_values(&self, metric: &str, label: &str) -> Vec<String> {
        let inner = self.inner.read();
        inner
            .get(metric)
            .and_then(|p| p.labels.get(label))
            .map(|values| values.keys().map(|v| v.to_string()).collect())
            .unwrap_or_default()
    }

    /// Every metric name, sorted.
    pub fn metrics(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.read().keys().map(|m| m.to_string()).collect();
        names.sort_unstable();
        names
    }
}

/// Ids in both sorted lists.
pub fn intersect(a: &[SeriesId], b: &[SeriesId]) -> Vec<SeriesId> {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let mut out = Vec::with_capacity(small.len());
    let mut rest = large;
    for &id in small {
        // Galloping would win on very skewed sizes; a binary search per id
        // of the smaller list already does, and stays simple.
        let at = rest.partition_point(|&x| x < id);
        rest = &rest[at..];
        if rest.first() == Some(&id) {
            out.push(id);
        }
    }
    out
}

/// Ids in `a` and not in `b` (both sorted).
pub fn difference(a: &[SeriesId], b: &[SeriesId]) -> Vec<SeriesId> {
    a.iter()
        .copied()
        .filter(|id| b.binary_search(id).is_err())
        .collect()
}

/// Sorted, deduplicated union of sorted lists.
pub fn union<'a>(lists: impl IntoIterator<Item = &'a Vec<SeriesId>>) -> Vec<SeriesId> {
    let mut out: Vec<SeriesId> = lists.into_iter().flatten().copied().collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod label_tests {
    use super::*;

    fn index() -> LabelIndex {
        let index = LabelIndex::default();
        let series: [&[(&str, &str)]; 5] = [
            &[("dc", "eu-1"), ("env", "prod"), ("host", "a")],
            &[("dc", "eu-2"), ("env", "dev"), ("host", "b")],
            &[("dc", "us-1"), ("env", "prod"), ("host", "c")],
            &[("dc", "eu-1"), ("host", "d")],
            &[("dc", "eu-10"), ("env", "prod"), ("host", "e")],
        ];
        for (id, labels) in series.iter().enumerate() {
            let labels: Vec<(Box<str>, Box<str>)> = labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect();
            index.add(id as u64, "cpu", &labels);
        }
        index
    }

    fn select(index: &LabelIndex, matchers: &[(&str, &str, &str)]) -> Vec<SeriesId> {
        let matchers: Vec<Matcher> = matchers
            .iter()
            .map(|(l, op, v)| Matcher::new(l, op, v).unwrap())
            .collect();
        index.select("cpu", &matchers)
    }

    #[test]
    fn each_matcher_kind_selects_like_prometheus() {
        let i = index();
        assert_eq!(select(&i, &[]), vec![0, 1, 2, 3, 4]);
        assert_eq!(select(&i, &[("env", "eq", "prod")]), vec![0, 2, 4]);
        assert_eq!(select(&i, &[("env", "neq", "prod")]), vec![1, 3]);
        assert_eq!(select(&i, &[("env", "eq", "")]), vec![3]);
        assert_eq!(select(&i, &[("env", "neq", "")]), vec![0, 1, 2, 4]);
        // Anchored: "eu-1" does not match "eu-10".
        assert_eq!(select(&i, &[("dc", "regex", "eu-1")]), vec![0, 3]);
        assert_eq!(select(&i, &[("dc", "regex", "eu-.*")]), vec![0, 1, 3, 4]);
        assert_eq!(select(&i, &[("dc", "not_regex", "eu-.*")]), vec![2]);
        assert_eq!(select(&i, &[("env", "regex", "dev|")]), vec![1, 3]);
        assert_eq!(
            select(&i, &[("dc", "regex", "eu-.*"), ("env", "eq", "prod")]),
            vec![0, 4]
        );
        assert_eq!(select(&i, &[("nope", "eq", "x")]), Vec::<u64>::new());
        assert_eq!(select(&i, &[("nope", "neq", "x")]), vec![0, 1, 2, 3, 4]);
        assert!(i.select("mem", &[]).is_empty());
        assert_eq!(i.label_values("cpu", "env"), vec!["dev", "prod"]);
        assert_eq!(i.metrics(), vec!["cpu"]);
    }

    #[test]
    fn a_bad_regex_or_operator_is_an_error() {
        assert!(Matcher::new("a", "regex", "(").is_err());
        assert!(Matcher::new("a", "like", "x").is_err());
    }

    #[test]
    fn sorted_list_operations() {
        assert_eq!(intersect(&[1, 3, 5, 7], &[2, 3, 4, 7, 9]), vec![3, 7]);
        assert_eq!(intersect(&[], &[1]), Vec::<u64>::new());
        assert_eq!(difference(&[1, 2, 3, 4], &[2, 4]), vec![1, 3]);
        assert_eq!(union([&vec![1, 4], &vec![2, 4, 6]]), vec![1, 2, 4, 6]);
    }
}
