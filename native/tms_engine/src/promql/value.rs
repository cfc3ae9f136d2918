//! What expressions evaluate to, and the label operations every part of the
//! evaluator shares.
//!
//! A range evaluation computes every step at once: an instant vector is a
//! set of series, each with one optional value per step of the query (the
//! steps are shared, as VictoriaMetrics shares one timestamps slice).

use std::collections::HashMap;

use super::Error;
use crate::query::{no_stale, Points};
use crate::types::is_stale;

/// Label pairs sorted by name, `__name__` among them; never an empty value.
pub type Labels = Vec<(String, String)>;

/// The label holding the metric name.
pub const NAME: &str = "__name__";

/// An instant vector's series: a value or nothing at each step.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub values: Vec<Option<f64>>,
}

/// A range vector's series: raw `(timestamp ms, value)` points, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    pub points: Vec<(i64, f64)>,
}

/// A series' raw points as the evaluator reads them: shared with the
/// engine's chunk cache when they are one run (no copy), else its own.
#[derive(Debug, Clone)]
pub enum Samples {
    Shared(Points),
    Owned(Vec<(i64, f64)>),
}

impl Samples {
    /// The engine's points, shared when they are one run.
    pub fn from_points(points: Points) -> Samples {
        if points.runs().count() <= 1 {
            Samples::Shared(points)
        } else {
            Samples::Owned(points.iter().collect())
        }
    }

    /// Drops staleness markers, copying only when there is one; no pass at
    /// all over a cached chunk known to have none.
    pub fn remove_stale(&mut self) {
        if matches!(self, Samples::Shared(points) if points.known_no_stale()) {
            return;
        }
        if !no_stale(self) {
            let kept = self.iter().filter(|p| !is_stale(p.1)).copied().collect();
            *self = Samples::Owned(kept);
        }
    }

    /// True when it is known without a pass that no value is lower than
    /// the one before (see [`Points::known_never_falls`]).
    pub fn known_never_falls(&self) -> bool {
        matches!(self, Samples::Shared(points) if points.known_never_falls())
    }
}

impl std::ops::Deref for Samples {
    type Target = [(i64, f64)];

    fn deref(&self) -> &[(i64, f64)] {
        match self {
            // One run at most (from_points sees to it).
            Samples::Shared(points) => points.runs().next().unwrap_or(&[]),
            Samples::Owned(points) => points,
        }
    }
}

/// A series read from storage (or a subquery's values at its steps).
#[derive(Debug, Clone)]
pub struct Raw {
    pub labels: Labels,
    pub points: Samples,
}

/// The value of an expression over the steps of an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// One value per step.
    Scalar(Vec<f64>),
    Vector(Vec<Series>),
    /// Only as the result of an instant query (`m[5m]`, a subquery).
    Matrix(Vec<RangeSeries>),
    String(String),
}

/// The steps an expression is evaluated at: `start`, `start + step`, ...,
/// up to `end` (milliseconds; one step for an instant query).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Steps {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

impl Steps {
    pub fn instant(at: i64) -> Steps {
        Steps {
            start: at,
            end: at,
            step: 1,
        }
    }

    pub fn len(&self) -> usize {
        ((self.end - self.start) / self.step) as usize + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The time of step `i`.
    pub fn at(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }

    pub fn times(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.len()).map(|i| self.at(i))
    }
}

/// The value of `name`, `""` when absent.
pub fn get<'a>(labels: &'a Labels, name: &str) -> &'a str {
    labels
        .binary_search_by(|(n, _)| n.as_str().cmp(name))
        .map(|i| labels[i].1.as_str())
        .unwrap_or("")
}

/// Sets `name` to `value`; an empty value removes the label.
pub fn set(labels: &mut Labels, name: &str, value: &str) {
    match labels.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
        Ok(i) if value.is_empty() => {
            labels.remove(i);
        }
        Ok(i) => labels[i].1 = value.to_string(),
        Err(_) if value.is_empty() => {}
        Err(i) => labels.insert(i, (name.to_string(), value.to_string())),
    }
}

/// The labels without the metric name.
pub fn without_name(labels: &Labels) -> Labels {
    labels.iter().filter(|(n, _)| n != NAME).cloned().collect()
}

/// Only the labels named in `names` (`keep`) or all but those (`!keep`).
pub fn filter(labels: &Labels, names: &[String], keep: bool) -> Labels {
    labels
        .iter()
        .filter(|(n, _)| names.iter().any(|x| x == n) == keep)
        .cloned()
        .collect()
}

/// A byte key of the labels named in `names` (`on`), or of all but those
/// and the metric name (`!on`): equal keys, equal label subsets.
pub fn signature(labels: &Labels, names: &[String], on: bool) -> Vec<u8> {
    let mut key = Vec::new();
    for (n, v) in labels {
        let named = names.iter().any(|x| x == n);
        if (on && named) || (!on && !named && n != NAME) {
            key.extend_from_slice(n.as_bytes());
            key.push(0xff);
            key.extend_from_slice(v.as_bytes());
            key.push(0xff);
        }
    }
    key
}

/// Prometheus' text form of a label set (Go's `labels.Labels.String`):
/// `{__name__="up", job="api"}`.
pub fn display(labels: &Labels) -> String {
    let pairs: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    format!("{{{}}}", pairs.join(", "))
}

/// Collects the series an operation produces, joining those that end up
/// with the same labels (their steps must not overlap: Prometheus' "vector
/// cannot contain metrics with the same labelset"). Keeps the order in
/// which label sets first appear.
pub struct Assembler {
    steps: usize,
    slots: HashMap<Labels, usize>,
    out: Vec<Series>,
}

impl Assembler {
    pub fn new(steps: usize) -> Assembler {
        Assembler {
            steps,
            slots: HashMap::new(),
            out: Vec::new(),
        }
    }

    /// The output series with these labels, created empty if new.
    pub fn slot(&mut self, labels: Labels) -> usize {
        if let Some(&i) = self.slots.get(&labels) {
            return i;
        }
        let i = self.out.len();
        self.out.push(Series {
            labels: labels.clone(),
            values: vec![None; self.steps],
        });
        self.slots.insert(labels, i);
        i
    }

    /// Sets a value of a slot; a second value at the same step is an error.
    pub fn put(&mut self, slot: usize, step: usize, value: f64) -> Result<(), Error> {
        let cell = &mut self.out[slot].values[step];
        if cell.is_some() {
            return Err(Error::execution(
                "vector cannot contain metrics with the same labelset",
            ));
        }
        *cell = Some(value);
        Ok(())
    }

    /// Adds a whole series.
    pub fn add(&mut self, series: Series) -> Result<(), Error> {
        if !self.slots.contains_key(&series.labels) {
            let i = self.out.len();
            self.slots.insert(series.labels.clone(), i);
            self.out.push(series);
            return Ok(());
        }
        let slot = self.slot(series.labels);
        for (step, v) in series.values.into_iter().enumerate() {
            if let Some(v) = v {
                self.put(slot, step, v)?;
            }
        }
        Ok(())
    }

    /// The series that have at least one value.
    pub fn finish(self) -> Vec<Series> {
        self.out
            .into_iter()
            .filter(|s| s.values.iter().any(Option::is_some))
            .collect()
    }
}

/// Joins series with equal labels (see [`Assembler`]).
pub fn assemble(steps: usize, series: Vec<Series>) -> Result<Vec<Series>, Error> {
    // Usually every label set is distinct: nothing to join or copy.
    let mut seen = std::collections::HashSet::with_capacity(series.len());
    if series.iter().all(|s| seen.insert(&s.labels)) {
        drop(seen);
        let mut series = series;
        series.retain(|s| s.values.iter().any(Option::is_some));
        return Ok(series);
    }
    drop(seen);
    let mut out = Assembler::new(steps);
    for s in series {
        out.add(s)?;
    }
    Ok(out.finish())
}
