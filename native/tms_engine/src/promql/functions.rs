//! PromQL's functions: those over range vectors (one value per window, see
//! `range.rs`) and those over instant vectors and scalars, per step.

use regex::Regex;

use super::ast::{Expr, Kind};
use super::eval::Evaluator;
use super::range;
use super::value::{
    assemble, get, set, signature, without_name, Assembler, Labels, Series, Steps, Value, NAME,
};
use super::Error;

/// Evaluates `func(args)` at every step.
pub fn call(
    ev: &mut Evaluator<'_>,
    func: &str,
    args: &[Expr],
    steps: Steps,
) -> Result<Value, Error> {
    if let Some(at) = args.iter().position(|a| a.kind() == Kind::Matrix) {
        return range::call(ev, func, args, at, steps);
    }
    let n = steps.len();
    let vector = |ev: &mut Evaluator<'_>, i: usize| ev.vector(&args[i], steps);
    let scalar = |ev: &mut Evaluator<'_>, i: usize| ev.scalar(&args[i], steps);
    Ok(match func {
        "time" => Value::Scalar(steps.times().map(|t| t as f64 / 1000.0).collect()),
        "pi" => Value::Scalar(vec![std::f64::consts::PI; n]),
        "scalar" => {
            let series = vector(ev, 0)?;
            Value::Scalar(
                (0..n)
                    .map(|i| {
                        let mut present = series.iter().filter_map(|s| s.values[i]);
                        match (present.next(), present.next()) {
                            (Some(v), None) => v,
                            _ => f64::NAN,
                        }
                    })
                    .collect(),
            )
        }
        "vector" => Value::Vector(vec![Series {
            labels: Labels::new(),
            values: scalar(ev, 0)?.into_iter().map(Some).collect(),
        }]),
        "timestamp" => {
            let series = match &args[0] {
                Expr::Selector(sel) => ev.instant_selector(sel, steps, true)?,
                other => {
                    let mut series = ev.vector(other, steps)?;
                    for s in &mut series {
                        for (i, v) in s.values.iter_mut().enumerate() {
                            *v = v.map(|_| steps.at(i) as f64 / 1000.0);
                        }
                    }
                    series
                }
            };
            Value::Vector(map_values(n, series, |_, v| Some(v))?)
        }
        "absent" => {
            let series = vector(ev, 0)?;
            let labels = absent_labels(&args[0]);
            let values = (0..n)
                .map(|i| series.iter().all(|s| s.values[i].is_none()).then_some(1.0))
                .collect();
            Value::Vector(present(vec![Series { labels, values }]))
        }
        "sort" | "sort_desc" => {
            let mut series = vector(ev, 0)?;
            if n == 1 {
                // Only an instant query has an order; NaN goes last.
                let desc = func == "sort_desc";
                series.sort_by(|a, b| {
                    let (x, y) = (
                        a.values[0].unwrap_or(f64::NAN),
                        b.values[0].unwrap_or(f64::NAN),
                    );
                    match (x.is_nan(), y.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ if desc => y.total_cmp(&x),
                        _ => x.total_cmp(&y),
                    }
                });
            }
            Value::Vector(series)
        }
        "round" => {
            let series = vector(ev, 0)?;
            let to = if args.len() > 1 {
                scalar(ev, 1)?
            } else {
                vec![1.0; n]
            };
            Value::Vector(map_values(n, series, |i, v| {
                let inverse = 1.0 / to[i];
                Some((v * inverse + 0.5).floor() / inverse)
            })?)
        }
        "clamp" => {
            let series = vector(ev, 0)?;
            let (lo, hi) = (scalar(ev, 1)?, scalar(ev, 2)?);
            Value::Vector(map_values(n, series, |i, v| {
                (hi[i] >= lo[i] || hi[i].is_nan() || lo[i].is_nan())
                    .then(|| go_max(lo[i], go_min(hi[i], v)))
            })?)
        }
        "clamp_max" => {
            let series = vector(ev, 0)?;
            let hi = scalar(ev, 1)?;
            Value::Vector(map_values(n, series, |i, v| Some(go_min(hi[i], v)))?)
        }
        "clamp_min" => {
            let series = vector(ev, 0)?;
            let lo = scalar(ev, 1)?;
            Value::Vector(map_values(n, series, |i, v| Some(go_max(lo[i], v)))?)
        }
        "label_replace" => {
            let series = vector(ev, 0)?;
            let [dst, repl, src, regex] = [1, 2, 3, 4].map(|i| string_arg(&args[i]));
            let re = Regex::new(&format!("^(?:{regex})$")).map_err(|_| {
                Error::execution(format!(
                    "invalid regular expression in label_replace(): {regex}"
                ))
            })?;
            if !valid_label_name(dst) {
                return Err(Error::execution(format!(
                    "invalid destination label name in label_replace(): {dst}"
                )));
            }
            let relabeled = series
                .into_iter()
                .map(|mut s| {
                    if let Some(caps) = re.captures(get(&s.labels, src)) {
                        let mut value = String::new();
                        caps.expand(repl, &mut value);
                        set(&mut s.labels, dst, &value);
                    }
                    s
                })
                .collect();
            Value::Vector(assemble(n, relabeled)?)
        }
        "label_join" => {
            let series = vector(ev, 0)?;
            let dst = string_arg(&args[1]);
            let sep = string_arg(&args[2]);
            let sources: Vec<&str> = args[3..].iter().map(string_arg).collect();
            if let Some(bad) = sources.iter().find(|s| !valid_label_name(s)) {
                return Err(Error::execution(format!(
                    "invalid source label name in label_join(): {bad}"
                )));
            }
            if !valid_label_name(dst) {
                return Err(Error::execution(format!(
                    "invalid destination label name in label_join(): {dst}"
                )));
            }
            let relabeled = series
                .into_iter()
                .map(|mut s| {
                    let joined: Vec<&str> = sources.iter().map(|l| get(&s.labels, l)).collect();
                    let joined = joined.join(sep);
                    set(&mut s.labels, dst, &joined);
                    s
                })
                .collect();
            Value::Vector(assemble(n, relabeled)?)
        }
        "histogram_quantile" => {
            let q = scalar(ev, 0)?;
            let series = vector(ev, 1)?;
            Value::Vector(histogram_quantile(n, &q, series)?)
        }
        // Native histograms only: float samples have none.
        "histogram_count" | "histogram_sum" | "histogram_fraction" => Value::Vector(Vec::new()),
        "days_in_month" | "day_of_month" | "day_of_week" | "day_of_year" | "hour" | "minute"
        | "month" | "year" => {
            let part = date_part(func);
            if args.is_empty() {
                let values = steps
                    .times()
                    .map(|t| Some(part(t.div_euclid(1000))))
                    .collect();
                Value::Vector(vec![Series {
                    labels: Labels::new(),
                    values,
                }])
            } else {
                let series = vector(ev, 0)?;
                Value::Vector(map_values(n, series, |_, v| Some(part(v as i64)))?)
            }
        }
        _ => {
            let f =
                math(func).ok_or_else(|| Error::bad_data(format!("unknown function {func}")))?;
            let series = vector(ev, 0)?;
            Value::Vector(map_values(n, series, |_, v| Some(f(v)))?)
        }
    })
}

/// Go's `math.Min`: NaN wins (Rust's `min` drops it).
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// Go's `math.Max`: NaN wins.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// The element-wise functions of one float.
fn math(func: &str) -> Option<fn(f64) -> f64> {
    Some(match func {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "rad" => |v| v * std::f64::consts::PI / 180.0,
        "deg" => |v| v * 180.0 / std::f64::consts::PI,
        "sgn" => |v: f64| {
            if v < 0.0 {
                -1.0
            } else if v > 0.0 {
                1.0
            } else {
                v
            }
        },
        _ => return None,
    })
}

/// Applies `f(step, value)` to every value, dropping the metric name; a
/// `None` leaves the step out.
fn map_values(
    n: usize,
    series: Vec<Series>,
    f: impl Fn(usize, f64) -> Option<f64>,
) -> Result<Vec<Series>, Error> {
    let mapped = series
        .into_iter()
        .map(|s| Series {
            labels: without_name(&s.labels),
            values: s
                .values
                .iter()
                .enumerate()
                .map(|(i, v)| v.and_then(|v| f(i, v)))
                .collect(),
        })
        .collect();
    assemble(n, mapped)
}

/// Series that have a value somewhere.
fn present(series: Vec<Series>) -> Vec<Series> {
    series
        .into_iter()
        .filter(|s| s.values.iter().any(Option::is_some))
        .collect()
}

/// The labels `absent(sel)` answers with: the selector's equality matchers
/// (a label matched more than once, or not by equality, is left out).
pub fn absent_labels(arg: &Expr) -> Labels {
    let selector = match arg {
        Expr::Selector(sel) | Expr::Range { selector: sel, .. } => sel,
        _ => return Labels::new(),
    };
    let mut labels = Labels::new();
    let mut seen: Vec<&str> = Vec::new();
    for m in selector.matchers.iter().filter(|m| m.label != NAME) {
        match &m.op {
            crate::index::MatchOp::Eq(v) if !seen.contains(&m.label.as_str()) => {
                set(&mut labels, &m.label, v);
                seen.push(&m.label);
            }
            _ => set(&mut labels, &m.label, ""),
        }
    }
    labels
}

/// A string argument (the parser checked its type).
fn string_arg(e: &Expr) -> &str {
    match e {
        Expr::String(s) => s,
        _ => "",
    }
}

/// Prometheus' label name syntax: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `histogram_quantile` over classic buckets: per step, the series that
/// differ only in `le` (and share the metric name) form one histogram.
fn histogram_quantile(n: usize, q: &[f64], series: Vec<Series>) -> Result<Vec<Series>, Error> {
    let le = ["le".to_string()];
    let mut index: std::collections::HashMap<Vec<u8>, usize> = std::collections::HashMap::new();
    let mut groups: Vec<Labels> = Vec::new();
    let mut members: Vec<(usize, f64, usize)> = Vec::new(); // (group, bound, series)
    for (i, s) in series.iter().enumerate() {
        let Ok(bound) = parse_go_float(get(&s.labels, "le")) else {
            continue;
        };
        let mut key = signature(&s.labels, &le, false);
        key.extend_from_slice(get(&s.labels, NAME).as_bytes());
        let group = *index.entry(key).or_insert_with(|| {
            let labels = without_name(&s.labels)
                .into_iter()
                .filter(|(n, _)| n != "le")
                .collect();
            groups.push(labels);
            groups.len() - 1
        });
        members.push((group, bound, i));
    }
    let mut out = Assembler::new(n);
    let slots: Vec<usize> = groups.into_iter().map(|l| out.slot(l)).collect();
    let mut buckets: Vec<Vec<(f64, f64)>> = vec![Vec::new(); slots.len()];
    for (step, &q) in q.iter().enumerate().take(n) {
        for b in &mut buckets {
            b.clear();
        }
        for &(group, bound, i) in &members {
            if let Some(v) = series[i].values[step] {
                buckets[group].push((bound, v));
            }
        }
        for (group, b) in buckets.iter_mut().enumerate() {
            if !b.is_empty() {
                out.put(slots[group], step, bucket_quantile(q, b))?;
            }
        }
    }
    Ok(out.finish())
}

/// The `q` quantile of cumulative `(upper bound, count)` buckets, as
/// Prometheus interpolates it.
fn bucket_quantile(q: f64, buckets: &mut Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // Equal bounds are one bucket; counts must not fall.
    buckets.dedup_by(|later, earlier| {
        if later.0 == earlier.0 {
            earlier.1 += later.1;
            true
        } else {
            false
        }
    });
    let mut max = buckets[0].1;
    for b in buckets.iter_mut().skip(1) {
        if b.1 > max {
            max = b.1;
        } else {
            b.1 = max;
        }
    }
    if buckets.len() < 2 {
        return f64::NAN;
    }
    let observations = buckets[buckets.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = buckets[..buckets.len() - 1].partition_point(|b| b.1 < rank);
    if b == buckets.len() - 1 {
        return buckets[buckets.len() - 2].0;
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let (mut start, end, mut count) = (0.0, buckets[b].0, buckets[b].1);
    if b > 0 {
        start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// Go's `strconv.ParseFloat` for what label values hold: decimals,
/// exponents, `Inf`/`+Inf`/`-Inf`/`NaN` in any case.
pub fn parse_go_float(s: &str) -> Result<f64, ()> {
    let lower = s.to_ascii_lowercase();
    match lower.trim_start_matches(['+', '-']) {
        "inf" | "infinity" if lower.starts_with('-') => return Ok(f64::NEG_INFINITY),
        "inf" | "infinity" => return Ok(f64::INFINITY),
        "nan" => return Ok(f64::NAN),
        _ => {}
    }
    s.parse::<f64>().map_err(|_| ())
}

/// A calendar part of a Unix time in seconds (UTC).
fn date_part(func: &str) -> fn(i64) -> f64 {
    match func {
        "minute" => |t| t.rem_euclid(3600).div_euclid(60) as f64,
        "hour" => |t| t.rem_euclid(86_400).div_euclid(3600) as f64,
        // 1970-01-01 was a Thursday.
        "day_of_week" => |t| (t.div_euclid(86_400) + 4).rem_euclid(7) as f64,
        "day_of_month" => |t| civil(t).2 as f64,
        "month" => |t| civil(t).1 as f64,
        "year" => |t| civil(t).0 as f64,
        "day_of_year" => |t| {
            let (y, m, d) = civil(t);
            (days_before_month(y, m) + d) as f64
        },
        _ => |t| {
            let (y, m, _) = civil(t);
            days_in_month(y, m) as f64
        },
    }
}

/// (year, month 1-12, day 1-31) of a Unix time in seconds, proleptic
/// Gregorian (Howard Hinnant's days-to-civil).
fn civil(t: i64) -> (i64, i64, i64) {
    let z = t.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn days_before_month(y: i64, m: i64) -> i64 {
    (1..m).map(|month| days_in_month(y, month)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(951_782_400), (2000, 2, 29));
        assert_eq!(civil(-86_400), (1969, 12, 31));
        assert_eq!(date_part("day_of_year")(951_782_400), 60.0);
        assert_eq!(date_part("days_in_month")(951_782_400), 29.0);
        assert_eq!(date_part("day_of_week")(0), 4.0);
    }

    #[test]
    fn bucket_quantile_interpolates_inside_a_bucket() {
        let mut b = vec![(1.0, 10.0), (2.0, 20.0), (f64::INFINITY, 20.0)];
        assert_eq!(bucket_quantile(0.75, &mut b), 1.5);
        let mut no_inf = vec![(1.0, 10.0)];
        assert!(bucket_quantile(0.5, &mut no_inf).is_nan());
    }
}
