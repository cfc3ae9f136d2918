//! Aggregation operators (`sum by (job) (...)` and the rest), per step,
//! with Prometheus 2.42's arithmetic: plain sums, a running mean for `avg`,
//! Welford for `stddev`/`stdvar`, NaN losing to numbers in `min`/`max`.

use std::collections::HashMap;

use super::ast::{AggOp, Expr, Kind};
use super::eval::Evaluator;
use super::functions::valid_label_name;
use super::json::write_float;
use super::numeric::quantile;
use super::value::{filter, set, signature, Assembler, Labels, Series, Steps, Value, NAME};
use super::Error;

/// Evaluates `op [by|without (grouping)] ([param,] expr)` at every step.
pub fn eval(
    ev: &mut Evaluator<'_>,
    op: AggOp,
    expr: &Expr,
    param: Option<&Expr>,
    grouping: &[String],
    without: bool,
    steps: Steps,
) -> Result<Value, Error> {
    let n = steps.len();
    let mut label_param = None;
    let mut scalar_param = vec![0.0; n];
    match param {
        Some(Expr::String(s)) => label_param = Some(s.clone()),
        Some(p) if p.kind() == Kind::Scalar => scalar_param = ev.scalar(p, steps)?,
        _ => {}
    }
    let series = ev.vector(expr, steps)?;
    let out = match op {
        AggOp::Topk | AggOp::Bottomk => select_k(
            &series,
            grouping,
            without,
            &scalar_param,
            op == AggOp::Topk,
            n,
        )?,
        AggOp::CountValues => {
            let label = label_param.unwrap_or_default();
            if !valid_label_name(&label) {
                return Err(Error::execution(format!("invalid label name {label:?}")));
            }
            count_values(&series, grouping, without, &label, n)?
        }
        _ => reduce(op, &series, grouping, without, &scalar_param, n),
    };
    ev.charge(out.iter().map(|s| s.values.len()).sum())?;
    Ok(Value::Vector(out))
}

/// The group of each series and each group's labels, groups in the order
/// their first series comes.
fn groups(series: &[Series], grouping: &[String], without: bool) -> (Vec<usize>, Vec<Labels>) {
    let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut labels = Vec::new();
    let of = series
        .iter()
        .map(|s| {
            let key = signature(&s.labels, grouping, !without);
            *index.entry(key).or_insert_with(|| {
                labels.push(group_labels(&s.labels, grouping, without));
                labels.len() - 1
            })
        })
        .collect();
    (of, labels)
}

/// A group's labels: the `by` labels, or all but the `without` labels and
/// the metric name.
fn group_labels(labels: &Labels, grouping: &[String], without: bool) -> Labels {
    if without {
        filter(labels, grouping, false)
            .into_iter()
            .filter(|(n, _)| n != NAME)
            .collect()
    } else {
        filter(labels, grouping, true)
    }
}

/// One group's running state at one step for `avg`, `stddev`, `stdvar` and
/// `quantile` (the others are `simple`).
#[derive(Default, Clone)]
struct Acc {
    count: usize,
    value: f64,
    mean: f64,
    values: Vec<f64>,
}

impl Acc {
    fn add(&mut self, op: AggOp, v: f64) {
        self.count += 1;
        if self.count == 1 {
            self.value = 0.0;
            self.mean = v;
            if op == AggOp::Quantile {
                self.values.clear();
                self.values.push(v);
            }
            return;
        }
        let count = self.count as f64;
        match op {
            AggOp::Avg => {
                if self.mean.is_infinite() {
                    if v.is_infinite() && (self.mean > 0.0) == (v > 0.0) {
                        return;
                    }
                    if !v.is_infinite() && !v.is_nan() {
                        return;
                    }
                }
                self.mean += v / count - self.mean / count;
            }
            AggOp::Stddev | AggOp::Stdvar => {
                let delta = v - self.mean;
                self.mean += delta / count;
                self.value += delta * (v - self.mean);
            }
            AggOp::Quantile => self.values.push(v),
            _ => {}
        }
    }

    fn finish(&mut self, op: AggOp, q: f64) -> f64 {
        let count = self.count as f64;
        match op {
            AggOp::Avg => self.mean,
            AggOp::Stdvar => self.value / count,
            AggOp::Stddev => (self.value / count).sqrt(),
            AggOp::Quantile => quantile(q, &mut self.values),
            _ => self.value,
        }
    }
}

/// The aggregations with one value per group.
fn reduce(
    op: AggOp,
    series: &[Series],
    grouping: &[String],
    without: bool,
    param: &[f64],
    n: usize,
) -> Vec<Series> {
    let (group_of, labels) = groups(series, grouping, without);
    let mut out: Vec<Series> = labels
        .into_iter()
        .map(|labels| Series {
            labels,
            values: vec![None; n],
        })
        .collect();
    if op == AggOp::Quantile {
        // A list of samples per group: one step at a time.
        let mut accs = vec![Acc::default(); out.len()];
        for (step, &q) in param.iter().enumerate().take(n) {
            for acc in &mut accs {
                acc.count = 0;
            }
            for (s, &g) in series.iter().zip(&group_of) {
                if let Some(v) = s.values[step] {
                    accs[g].add(op, v);
                }
            }
            for (acc, o) in accs.iter_mut().zip(&mut out) {
                if acc.count > 0 {
                    o.values[step] = Some(acc.finish(op, q));
                }
            }
        }
    } else if matches!(
        op,
        AggOp::Sum | AggOp::Max | AggOp::Min | AggOp::Count | AggOp::Group
    ) {
        simple(op, series, &group_of, &mut out, n);
    } else {
        // A series at a time, all its steps (memory in order); each group's
        // samples at a step still arrive in series order.
        let mut accs = vec![Acc::default(); out.len() * n];
        for (s, &g) in series.iter().zip(&group_of) {
            let row = &mut accs[g * n..(g + 1) * n];
            for (acc, v) in row.iter_mut().zip(&s.values) {
                if let Some(v) = *v {
                    acc.add(op, v);
                }
            }
        }
        for (o, row) in out.iter_mut().zip(accs.chunks_mut(n.max(1))) {
            for ((value, acc), &q) in o.values.iter_mut().zip(row).zip(param) {
                if acc.count > 0 {
                    *value = Some(acc.finish(op, q));
                }
            }
        }
    }
    out.retain(|s| s.values.iter().any(Option::is_some));
    out
}

/// `sum`, `min`, `max`, `count` and `group`, whose state is a count and a
/// value: 16 bytes per group and step instead of `Acc`'s 48, in the inner
/// loop of most dashboards' aggregations.
fn simple(op: AggOp, series: &[Series], group_of: &[usize], out: &mut [Series], n: usize) {
    let mut cells = vec![(0u32, 0.0f64); out.len() * n];
    let (c, g) = (&mut cells, group_of);
    // Each arm its own loop, the fold inlined.
    match op {
        AggOp::Sum => accumulate(c, series, g, n, |acc, v| acc + v),
        AggOp::Max => accumulate(
            c,
            series,
            g,
            n,
            |a, v| if a < v || a.is_nan() { v } else { a },
        ),
        AggOp::Min => accumulate(
            c,
            series,
            g,
            n,
            |a, v| if a > v || a.is_nan() { v } else { a },
        ),
        _ => accumulate(c, series, g, n, |acc, _| acc),
    }
    for (o, row) in out.iter_mut().zip(cells.chunks(n.max(1))) {
        for (value, &(count, acc)) in o.values.iter_mut().zip(row) {
            if count > 0 {
                *value = Some(match op {
                    AggOp::Count => f64::from(count),
                    AggOp::Group => 1.0,
                    _ => acc,
                });
            }
        }
    }
}

/// Each series' samples into its group's cells, a series at a time, all its
/// steps (memory in order); the first sample of a cell is its value.
#[inline(always)]
fn accumulate(
    cells: &mut [(u32, f64)],
    series: &[Series],
    group_of: &[usize],
    n: usize,
    fold: impl Fn(f64, f64) -> f64,
) {
    for (s, &g) in series.iter().zip(group_of) {
        let row = &mut cells[g * n..(g + 1) * n];
        for (cell, v) in row.iter_mut().zip(&s.values) {
            if let Some(v) = *v {
                cell.1 = if cell.0 == 0 { v } else { fold(cell.1, v) };
                cell.0 += 1;
            }
        }
    }
}

/// `topk` and `bottomk`: per group and step, the k largest (smallest)
/// samples; the series keep their labels.
fn select_k(
    series: &[Series],
    grouping: &[String],
    without: bool,
    k: &[f64],
    top: bool,
    n: usize,
) -> Result<Vec<Series>, Error> {
    let (group_of, labels) = groups(series, grouping, without);
    let mut slots: Vec<Option<usize>> = vec![None; series.len()];
    let mut out = Assembler::new(n);
    let mut heaps: Vec<KHeap> = (0..labels.len()).map(|_| KHeap::new(top)).collect();
    for (step, &kf) in k.iter().enumerate().take(n) {
        if !(kf >= i64::MIN as f64 && kf <= i64::MAX as f64) {
            return Err(Error::execution(format!(
                "Scalar value {kf} overflows int64"
            )));
        }
        if (kf as i64) < 1 {
            continue;
        }
        let k = usize::try_from(kf as i64).unwrap_or(usize::MAX);
        for heap in &mut heaps {
            heap.items.clear();
        }
        for (i, s) in series.iter().enumerate() {
            if let Some(v) = s.values[step] {
                heaps[group_of[i]].offer(k, (i, v));
            }
        }
        for heap in &mut heaps {
            for (i, v) in heap.sorted() {
                let slot = match slots[i] {
                    Some(slot) => slot,
                    None => {
                        let slot = out.slot(series[i].labels.clone());
                        slots[i] = Some(slot);
                        slot
                    }
                };
                out.put(slot, step, v)?;
            }
        }
    }
    Ok(out.finish())
}

/// Prometheus' k-selection, move for move: a binary heap with Go's
/// `container/heap` algorithm and Prometheus' order (NaN below every
/// number), so that among ties and NaNs the same series are kept as in
/// Prometheus.
struct KHeap {
    items: Vec<(usize, f64)>,
    /// topk (a min-heap of the largest) or bottomk.
    top: bool,
}

impl KHeap {
    fn new(top: bool) -> KHeap {
        KHeap {
            items: Vec::new(),
            top,
        }
    }

    fn less(&self, i: usize, j: usize) -> bool {
        let (a, b) = (self.items[i].1, self.items[j].1);
        a.is_nan() || if self.top { a < b } else { a > b }
    }

    fn up(&mut self, mut j: usize) {
        while j > 0 {
            let parent = (j - 1) / 2;
            if !self.less(j, parent) {
                break;
            }
            self.items.swap(parent, j);
            j = parent;
        }
    }

    fn down(&mut self, mut i: usize, n: usize) {
        loop {
            let left = 2 * i + 1;
            if left >= n {
                break;
            }
            let mut j = left;
            if left + 1 < n && self.less(left + 1, left) {
                j = left + 1;
            }
            if !self.less(j, i) {
                break;
            }
            self.items.swap(i, j);
            i = j;
        }
    }

    /// Takes `x` if the heap holds fewer than `k` or `x` beats its top (a
    /// NaN top is always replaced).
    fn offer(&mut self, k: usize, x: (usize, f64)) {
        let Some(&(_, top)) = self.items.first() else {
            self.items.push(x);
            return;
        };
        let beats = if self.top { top < x.1 } else { top > x.1 };
        if self.items.len() < k || beats || top.is_nan() {
            if self.items.len() == k {
                if k == 1 {
                    self.items[0] = x;
                    return;
                }
                let last = self.items.len() - 1;
                self.items.swap(0, last);
                self.down(0, last);
                self.items.pop();
            }
            self.items.push(x);
            self.up(self.items.len() - 1);
        }
    }

    /// Best first, by the insertion sort Go's `sort.Sort` uses on short
    /// slices.
    fn sorted(&mut self) -> Vec<(usize, f64)> {
        for i in 1..self.items.len() {
            let mut j = i;
            while j > 0 && self.less(j - 1, j) {
                self.items.swap(j, j - 1);
                j -= 1;
            }
        }
        std::mem::take(&mut self.items)
    }
}

/// `count_values("label", v)`: per group and distinct value, how many
/// samples have it, the value in `label`.
fn count_values(
    series: &[Series],
    grouping: &[String],
    without: bool,
    label: &str,
    n: usize,
) -> Result<Vec<Series>, Error> {
    let mut by = grouping.to_vec();
    if !without {
        by.push(label.to_string());
    }
    let mut out = Assembler::new(n);
    for step in 0..n {
        let mut counts: Vec<(usize, f64)> = Vec::new();
        for s in series {
            let Some(v) = s.values[step] else { continue };
            let mut labels = s.labels.clone();
            let mut value = String::new();
            write_float(&mut value, v, false);
            set(&mut labels, label, &value);
            let slot = out.slot(group_labels(&labels, &by, without));
            match counts.iter_mut().find(|(s, _)| *s == slot) {
                Some((_, c)) => *c += 1.0,
                None => counts.push((slot, 1.0)),
            }
        }
        for (slot, c) in counts {
            out.put(slot, step, c)?;
        }
    }
    Ok(out.finish())
}
