//! Prometheus' float arithmetic for range functions and aggregations:
//! compensated sums, the running mean, variance, quantiles, least squares
//! and double exponential smoothing, each computed as Prometheus 2.42
//! does so that answers agree to the last bit where its tests demand it.

use super::Error;

/// Double exponential smoothing with smoothing factor `sf` and trend
/// factor `tf`, both strictly between 0 and 1.
pub fn holt_winters(points: &[(i64, f64)], sf: f64, tf: f64) -> Result<Option<f64>, Error> {
    if sf <= 0.0 || sf >= 1.0 {
        return Err(Error::execution(format!(
            "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
        )));
    }
    if tf <= 0.0 || tf >= 1.0 {
        return Err(Error::execution(format!(
            "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
        )));
    }
    if points.len() < 2 {
        return Ok(None);
    }
    let (mut s0, mut s1) = (0.0, points[0].1);
    let mut b = points[1].1 - points[0].1;
    for (i, p) in points.iter().enumerate().skip(1) {
        let x = sf * p.1;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Ok(Some(s1))
}

/// Least-squares slope and intercept, times in seconds from
/// `intercept_time`.
pub fn linear_regression(points: &[(i64, f64)], intercept_time: i64) -> (f64, f64) {
    let (mut n, mut x, mut y, mut xy, mut x2) = (
        0.0,
        Kahan::default(),
        Kahan::default(),
        Kahan::default(),
        Kahan::default(),
    );
    let first = points[0].1;
    let constant = points.iter().all(|p| p.1 == first);
    for &(t, v) in points {
        n += 1.0;
        let dx = (t - intercept_time) as f64 / 1e3;
        x.add(dx);
        y.add(v);
        xy.add(dx * v);
        x2.add(dx * dx);
    }
    if constant {
        if first.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, first);
    }
    let (x, y, xy, x2) = (x.total(), y.total(), xy.total(), x2.total());
    let cov = xy - x * y / n;
    let var = x2 - x * x / n;
    let slope = cov / var;
    (slope, y / n - slope * x / n)
}

/// Neumaier's compensated sum, as Prometheus' `kahanSumInc`.
#[derive(Default, Clone, Copy)]
struct Kahan {
    sum: f64,
    c: f64,
}

impl Kahan {
    fn add(&mut self, inc: f64) {
        let t = self.sum + inc;
        if self.sum.abs() >= inc.abs() {
            self.c += (self.sum - t) + inc;
        } else {
            self.c += (inc - t) + self.sum;
        }
        self.sum = t;
    }

    fn total(&self) -> f64 {
        self.sum + self.c
    }
}

pub fn kahan(values: impl Iterator<Item = f64>) -> f64 {
    let mut k = Kahan::default();
    for v in values {
        k.add(v);
    }
    if k.sum.is_infinite() {
        k.sum
    } else {
        k.total()
    }
}

/// Prometheus 2.42's running mean, with its handling of infinities.
pub fn running_mean(values: impl Iterator<Item = f64>) -> f64 {
    let (mut mean, mut count) = (Kahan::default(), 0.0);
    for v in values {
        count += 1.0;
        if mean.sum.is_infinite() {
            if v.is_infinite() && (mean.sum > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        mean.add(v / count - mean.sum / count);
    }
    if mean.sum.is_infinite() {
        mean.sum
    } else {
        mean.total()
    }
}

/// Population variance by Welford's method with compensated sums.
pub fn variance(values: impl Iterator<Item = f64>) -> f64 {
    let (mut count, mut mean, mut aux) = (0.0, Kahan::default(), Kahan::default());
    for v in values {
        count += 1.0;
        let delta = v - mean.total();
        mean.add(delta / count);
        aux.add(delta * (v - mean.total()));
    }
    aux.total() / count
}

/// The `q` quantile of `values`, interpolated between closest ranks.
pub fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // NaN sorts first, as Go's sort by `Less` puts it.
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.total_cmp(b),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}
