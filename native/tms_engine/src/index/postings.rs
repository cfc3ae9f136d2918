//! The inverted index `(metric, label, value) -> sorted series ids`, and
//! the sorted-list operations that combine posting lists.

use std::collections::{BTreeMap, HashMap};

use parking_lot::RwLock;

use super::matcher::{MatchOp, Matcher};
use crate::hash::FastBuildHasher;
use crate::types::SeriesId;

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
        // Keys are copied only when new: `entry` would take (and, for an
        // existing key, free) a copy per label of every series, which is most
        // of what opening a store with a million series spends.
        if !inner.contains_key(metric) {
            inner.insert(metric.into(), Postings::default());
        }
        let Some(postings) = inner.get_mut(metric) else {
            return;
        };
        postings.all.push(id);
        for (name, value) in labels {
            if !postings.labels.contains_key(name) {
                postings.labels.insert(name.clone(), BTreeMap::new());
            }
            let Some(values) = postings.labels.get_mut(name) else {
                continue;
            };
            match values.get_mut(value) {
                Some(ids) => ids.push(id),
                None => {
                    values.insert(value.clone(), vec![id]);
                }
            }
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
mod tests {
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
    fn sorted_list_operations() {
        assert_eq!(intersect(&[1, 3, 5, 7], &[2, 3, 4, 7, 9]), vec![3, 7]);
        assert_eq!(intersect(&[], &[1]), Vec::<u64>::new());
        assert_eq!(difference(&[1, 2, 3, 4], &[2, 4]), vec![1, 3]);
        assert_eq!(union([&vec![1, 4], &vec![2, 4, 6]]), vec![1, 2, 4, 6]);
    }
}
