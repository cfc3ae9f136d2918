//! Binary operators: between scalars, a vector and a scalar, and two
//! vectors with Prometheus' vector matching (`on`/`ignoring`,
//! `group_left`/`group_right`, the set operators) and its errors.

use std::collections::HashMap;

use super::ast::{BinOp, Card, Expr, Kind, Matching};
use super::eval::Evaluator;
use super::value::{
    display, filter, get, set, signature, without_name, Assembler, Labels, Series, Steps, Value,
    NAME,
};
use super::Error;

/// Evaluates `lhs op rhs` at every step.
pub fn eval(
    ev: &mut Evaluator<'_>,
    op: BinOp,
    lhs: &Expr,
    rhs: &Expr,
    return_bool: bool,
    matching: &Matching,
    steps: Steps,
) -> Result<Value, Error> {
    let n = steps.len();
    match (lhs.kind(), rhs.kind()) {
        (Kind::Scalar, Kind::Scalar) => {
            let (l, r) = (ev.scalar(lhs, steps)?, ev.scalar(rhs, steps)?);
            Ok(Value::Scalar(
                l.iter()
                    .zip(&r)
                    .map(|(&a, &b)| match apply(op, a, b) {
                        (_, keep) if op.is_comparison() => f64::from(u8::from(keep)),
                        (v, _) => v,
                    })
                    .collect(),
            ))
        }
        (Kind::Vector, Kind::Scalar) => {
            let (series, scalar) = (ev.vector(lhs, steps)?, ev.scalar(rhs, steps)?);
            vector_scalar(op, series, &scalar, false, return_bool, n)
        }
        (Kind::Scalar, Kind::Vector) => {
            let (scalar, series) = (ev.scalar(lhs, steps)?, ev.vector(rhs, steps)?);
            vector_scalar(op, series, &scalar, true, return_bool, n)
        }
        _ => {
            let (l, r) = (ev.vector(lhs, steps)?, ev.vector(rhs, steps)?);
            let out = match op {
                BinOp::And | BinOp::Or | BinOp::Unless => set_op(op, l, r, matching, n)?,
                _ => vector_vector(op, &l, &r, return_bool, matching, n)?,
            };
            ev.charge(out.iter().map(|s| s.values.len()).sum())?;
            Ok(Value::Vector(out))
        }
    }
}

/// The result of `a op b` and, for comparisons, whether it holds (a
/// comparison's value is its left operand).
fn apply(op: BinOp, a: f64, b: f64) -> (f64, bool) {
    match op {
        BinOp::Add => (a + b, true),
        BinOp::Sub => (a - b, true),
        BinOp::Mul => (a * b, true),
        BinOp::Div => (a / b, true),
        BinOp::Pow => (a.powf(b), true),
        // Go's math.Mod, like Rust's %, keeps the sign of `a`.
        BinOp::Mod => (a % b, true),
        BinOp::Atan2 => (a.atan2(b), true),
        BinOp::Eq => (a, a == b),
        BinOp::Ne => (a, a != b),
        BinOp::Gt => (a, a > b),
        BinOp::Lt => (a, a < b),
        BinOp::Ge => (a, a >= b),
        BinOp::Le => (a, a <= b),
        BinOp::And | BinOp::Or | BinOp::Unless => (a, true),
    }
}

fn vector_scalar(
    op: BinOp,
    series: Vec<Series>,
    scalar: &[f64],
    scalar_first: bool,
    return_bool: bool,
    n: usize,
) -> Result<Value, Error> {
    let drop_name = op.drops_name() || return_bool;
    let mapped = series
        .into_iter()
        .map(|s| {
            let values = s
                .values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let v = (*v)?;
                    let (a, b) = if scalar_first {
                        (scalar[i], v)
                    } else {
                        (v, scalar[i])
                    };
                    let (mut value, keep) = apply(op, a, b);
                    if op.is_comparison() {
                        // A comparison keeps the vector's sample.
                        value = v;
                    }
                    if return_bool {
                        return Some(f64::from(u8::from(keep)));
                    }
                    keep.then_some(value)
                })
                .collect();
            Series {
                labels: if drop_name {
                    without_name(&s.labels)
                } else {
                    s.labels
                },
                values,
            }
        })
        .collect();
    Ok(Value::Vector(super::value::assemble(n, mapped)?))
}

/// Interns the matching signature of each series: equal ids, equal
/// matching labels.
fn signatures(
    l: &[Series],
    r: &[Series],
    matching: &Matching,
) -> (Vec<usize>, Vec<usize>, Vec<Vec<u8>>) {
    let mut ids: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut keys = Vec::new();
    let mut intern = |s: &Series| {
        let key = signature(&s.labels, &matching.labels, matching.on);
        *ids.entry(key.clone()).or_insert_with(|| {
            keys.push(key);
            keys.len() - 1
        })
    };
    let left = l.iter().map(&mut intern).collect();
    let right = r.iter().map(&mut intern).collect();
    (left, right, keys)
}

/// `and`, `or`, `unless`, per step.
fn set_op(
    op: BinOp,
    l: Vec<Series>,
    r: Vec<Series>,
    matching: &Matching,
    n: usize,
) -> Result<Vec<Series>, Error> {
    let (lsig, rsig, keys) = signatures(&l, &r, matching);
    let mut l = l;
    let mut r = r;
    let mut present = vec![usize::MAX; keys.len()];
    match op {
        BinOp::And | BinOp::Unless => {
            for step in 0..n {
                for (s, &sig) in r.iter().zip(&rsig) {
                    if s.values[step].is_some() {
                        present[sig] = step;
                    }
                }
                let want = op == BinOp::And;
                for (s, &sig) in l.iter_mut().zip(&lsig) {
                    if (present[sig] == step) != want {
                        s.values[step] = None;
                    }
                }
            }
            l.retain(|s| s.values.iter().any(Option::is_some));
            Ok(l)
        }
        _ => {
            for step in 0..n {
                for (s, &sig) in l.iter().zip(&lsig) {
                    if s.values[step].is_some() {
                        present[sig] = step;
                    }
                }
                for (s, &sig) in r.iter_mut().zip(&rsig) {
                    if present[sig] == step {
                        s.values[step] = None;
                    }
                }
            }
            r.retain(|s| s.values.iter().any(Option::is_some));
            l.extend(r);
            // Both sides may hold a label set, at different steps.
            super::value::assemble(n, l)
        }
    }
}

/// Arithmetic and comparisons between two vectors, per step.
fn vector_vector(
    op: BinOp,
    l: &[Series],
    r: &[Series],
    return_bool: bool,
    matching: &Matching,
    n: usize,
) -> Result<Vec<Series>, Error> {
    let (lsig, rsig, keys) = signatures(l, r, matching);
    // With group_right the right side is the "many" side: swap, as
    // Prometheus does, and swap values back for the operation.
    let swapped = matching.card == Card::OneToMany;
    let (many, one, many_sig, one_sig) = if swapped {
        (r, l, &rsig, &lsig)
    } else {
        (l, r, &lsig, &rsig)
    };
    let mut out = Assembler::new(n);
    let mut pairs: HashMap<(usize, usize), usize> = HashMap::new();
    // Per signature: the "one" side's series at this step, and which step
    // last matched it (one-to-one) or produced each output (many-to-one).
    let mut one_at: Vec<(usize, usize)> = vec![(usize::MAX, 0); keys.len()];
    let mut matched_at: Vec<usize> = vec![usize::MAX; keys.len()];
    let mut produced: HashMap<usize, (usize, usize)> = HashMap::new();
    for step in 0..n {
        for (j, s) in one.iter().enumerate() {
            if s.values[step].is_none() {
                continue;
            }
            let sig = one_sig[j];
            if one_at[sig].0 == step {
                let side = if swapped { "left" } else { "right" };
                let matched = filter(&s.labels, &matching.labels, matching.on);
                return Err(Error::execution(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    display(&matched),
                    display(&s.labels),
                    display(&one[one_at[sig].1].labels)
                )));
            }
            one_at[sig] = (step, j);
        }
        for (i, s) in many.iter().enumerate() {
            let Some(mv) = s.values[step] else { continue };
            let sig = many_sig[i];
            if one_at[sig].0 != step {
                continue;
            }
            let j = one_at[sig].1;
            let Some(ov) = one[j].values[step] else {
                continue;
            };
            let (a, b) = if swapped { (ov, mv) } else { (mv, ov) };
            let (mut value, keep) = apply(op, a, b);
            if return_bool {
                value = f64::from(u8::from(keep));
            } else if !keep {
                continue;
            }
            let slot = match pairs.get(&(i, j)) {
                Some(&slot) => slot,
                None => {
                    let mut labels = result_labels(&s.labels, &one[j].labels, op, matching);
                    if return_bool {
                        labels.retain(|(n, _)| n != NAME);
                    }
                    let slot = out.slot(labels);
                    pairs.insert((i, j), slot);
                    slot
                }
            };
            if matching.card == Card::OneToOne {
                if matched_at[sig] == step {
                    return Err(Error::execution("multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"));
                }
                matched_at[sig] = step;
            } else if produced.get(&slot) == Some(&(step, sig)) {
                return Err(Error::execution(
                    "multiple matches for labels: grouping labels must ensure unique matches",
                ));
            }
            produced.insert(slot, (step, sig));
            out.put(slot, step, value)?;
        }
    }
    Ok(out.finish())
}

/// The labels of a result: the "many" side's, without the metric name for
/// arithmetic, cut to the matching labels for one-to-one matching, with
/// the `group_*` labels copied from the "one" side.
fn result_labels(many: &Labels, one: &Labels, op: BinOp, matching: &Matching) -> Labels {
    let mut labels = if op.drops_name() {
        without_name(many)
    } else {
        many.clone()
    };
    if matching.card == Card::OneToOne {
        labels = if matching.on {
            filter(&labels, &matching.labels, true)
        } else {
            filter(&labels, &matching.labels, false)
        };
    }
    for name in &matching.include {
        set(&mut labels, name, get(one, name));
    }
    labels
}
