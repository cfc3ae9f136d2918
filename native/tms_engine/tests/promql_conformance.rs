//! Prometheus' own PromQL test files (v2.42.0, `../shared/conformance/`),
//! run against the engine the way Prometheus' `promql/test.go` runs them:
//! each `load` block written into a fresh engine, each `eval` run as an
//! instant query, as a range query from t-1m to t+1m at a 1m step (its
//! point at t compared), and, when the query has no `@` and no
//! time-dependent function, with `@ t` pinned on every selector and
//! evaluated at other times.
//!
//! The files are not part of this repository; set `TMS_PROMQL_TESTS` to
//! their directory when they are elsewhere. Skipped cases are listed in
//! `SKIPPED` with the reason.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use tms_engine::engine::{Config, Engine, FlushScope};
use tms_engine::promql::ast::{self, Expr};
use tms_engine::promql::{self, syntax, Labels, Options, QueryValue, Steps};
use tms_engine::types::STALE_NAN;

/// Cases this engine does not run, by file and query, with why.
const SKIPPED: &[(&str, &str, &str)] = &[];

fn conformance_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("TMS_PROMQL_TESTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/conformance/promql-2.42")
        });
    dir.is_dir().then_some(dir)
}

#[test]
fn prometheus_2_42_promql_test_files_pass() {
    let Some(dir) = conformance_dir() else {
        eprintln!("PromQL conformance files not found; set TMS_PROMQL_TESTS");
        return;
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "test"))
        .collect();
    files.sort();
    let (mut passed, mut failed, mut skipped, mut runs) = (0, Vec::new(), 0, 0);
    // Each file twice: its points buffered, and flushed to chunks (which
    // the evaluator reads through the chunk cache, with what it knows of
    // their points).
    for stored in [Stored::Buffered, Stored::Flushed] {
        for file in &files {
            let name = file.file_name().unwrap().to_string_lossy().to_string();
            let text = std::fs::read_to_string(file).unwrap();
            let mut run = Runner::new(stored);
            for cmd in parse_script(&text) {
                match cmd {
                    Command::Clear => run = Runner::new(stored),
                    Command::Load { interval, series } => run.load(interval, &series),
                    Command::Eval(eval) => {
                        if SKIPPED
                            .iter()
                            .any(|(f, q, _)| *f == name && *q == eval.query)
                        {
                            skipped += 1;
                            continue;
                        }
                        match run.check(&eval) {
                            Ok(n) => {
                                passed += 1;
                                runs += n;
                            }
                            Err(why) => failed.push(format!(
                                "{name}:{} ({stored:?}): {}\n    {why}",
                                eval.line, eval.query
                            )),
                        }
                    }
                }
            }
        }
    }
    eprintln!(
        "PromQL conformance, buffered and flushed: {passed} evals passed ({runs} evaluation times, each instant and range), {} failed, {skipped} skipped",
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} failures:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

enum Command {
    Clear,
    Load {
        interval: i64,
        series: Vec<(Labels, Vec<Option<f64>>)>,
    },
    Eval(Eval),
}

struct Eval {
    line: usize,
    query: String,
    at: i64,
    fail: bool,
    ordered: bool,
    /// None: a scalar is expected.
    expected: Expected,
}

enum Expected {
    Scalar(f64),
    Vector(Vec<(Labels, f64)>),
}

/// Where a run keeps the points it loads.
#[derive(Debug, Clone, Copy)]
enum Stored {
    Buffered,
    Flushed,
}

struct Runner {
    _dir: tempfile::TempDir,
    engine: Engine,
    stored: Stored,
}

impl Runner {
    fn new(stored: Stored) -> Runner {
        let dir = tempfile::tempdir().unwrap();
        // Flushed: a day's partitions, so that a series is one chunk (one
        // run, shared with the cache) as in a store flushed hourly.
        let engine = match stored {
            Stored::Buffered => common::open(dir.path()),
            Stored::Flushed => Engine::open(dir.path(), Config::scratch()).unwrap(),
        };
        Runner {
            _dir: dir,
            engine,
            stored,
        }
    }

    fn load(&mut self, interval: i64, series: &[(Labels, Vec<Option<f64>>)]) {
        let mut raw = Vec::new();
        for (labels, values) in series {
            let metric = labels
                .iter()
                .find(|(n, _)| n == "__name__")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let mut rest: Vec<(&str, &str)> = labels
                .iter()
                .filter(|(n, _)| n != "__name__")
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let id = self.engine.resolve(&metric, &mut rest).unwrap();
            for (i, v) in values.iter().enumerate() {
                if let Some(v) = v {
                    tms_engine::types::encode_entry(&mut raw, id, i as i64 * interval, *v);
                }
            }
        }
        for chunk in raw.chunks(24 * 10_000) {
            self.engine.write_raw(chunk).unwrap();
        }
        if let Stored::Flushed = self.stored {
            self.engine.flush(FlushScope::All).unwrap();
        }
    }

    /// Runs one `eval` as Prometheus' harness does: as written, then with
    /// `@ t` pinned at several other evaluation times.
    fn check(&self, eval: &Eval) -> Result<usize, String> {
        let options = Options {
            max_samples: 10_000,
            ..Options::default()
        };
        let parsed = ast::parse(&eval.query, eval.at, eval.at).map_err(|e| e.to_string());
        // The reader that places syntax errors takes all the parser takes.
        if let Some(refused) = parsed
            .is_ok()
            .then(|| syntax::explain(&eval.query, ""))
            .filter(|e| e.position.is_some())
        {
            return Err(format!("the syntax reader refused it: {refused}"));
        }
        if eval.fail {
            let failed = parsed.and_then(|e| {
                promql::instant_expr(&self.engine, &e, eval.at, &options).map_err(|e| e.message)
            });
            return match failed {
                Err(_) => Ok(0),
                Ok(v) => Err(format!("expected an error, got {v:?}")),
            };
        }
        let expr = parsed.map_err(|e| format!("parse: {e}"))?;
        self.check_at(eval, &expr, eval.at, &options)?;
        let mut pinned = expr.clone();
        let mut runs = 1;
        if pin_at(&mut pinned, eval.at) {
            let t = eval.at;
            let times = if t == 0 {
                vec![-1000, 0, 1000]
            } else {
                vec![-10 * t, 0, t / 5, t, 10 * t]
            };
            for at in times {
                self.check_at(eval, &pinned, at, &options)
                    .map_err(|e| format!("with @ {t} evaluated at {at}: {e}"))?;
                runs += 1;
            }
        }
        Ok(runs)
    }

    fn check_at(&self, eval: &Eval, expr: &Expr, at: i64, options: &Options) -> Result<(), String> {
        let value = promql::instant_expr(&self.engine, expr, at, options)
            .map_err(|e| format!("instant query failed: {e}"))?;
        compare(eval, &value, true).map_err(|e| format!("instant: {e}"))?;
        let steps = Steps {
            start: at - 60_000,
            end: at + 60_000,
            step: 60_000,
        };
        let range = promql::range_expr(&self.engine, expr, steps, options)
            .map_err(|e| format!("range query failed: {e}"))?;
        if eval.ordered {
            return Ok(());
        }
        let QueryValue::Matrix(matrix) = range else {
            return Err("range query did not answer a matrix".into());
        };
        let at_t: Vec<promql::Sample> = matrix
            .into_iter()
            .filter_map(|s| {
                let v = s.points.iter().find(|p| p.0 == at)?.1;
                Some(promql::Sample {
                    labels: s.labels,
                    t: at,
                    v,
                })
            })
            .collect();
        let as_value = match eval.expected {
            Expected::Scalar(_) => QueryValue::Scalar {
                t: at,
                v: at_t.first().map_or(f64::NAN, |s| s.v),
            },
            Expected::Vector(_) => QueryValue::Vector(at_t),
        };
        compare(eval, &as_value, false).map_err(|e| format!("range: {e}"))
    }
}

/// Pins `@ t` on every selector and subquery without one (not inside a
/// subquery: its times are its own), as Prometheus' `atModifierTestCases`
/// does; false when the query uses a function of the evaluation time.
fn pin_at(e: &mut Expr, t: i64) -> bool {
    match e {
        Expr::Number(_) | Expr::String(_) => true,
        Expr::Selector(sel) | Expr::Range { selector: sel, .. } => {
            sel.at.get_or_insert(t);
            true
        }
        Expr::Subquery { expr, at, .. } => {
            at.get_or_insert(t);
            !uses_time(expr)
        }
        Expr::Call { func, args, .. } => {
            !time_function(func) && args.iter_mut().all(|a| pin_at(a, t))
        }
        Expr::Aggregate { expr, param, .. } => {
            let param_ok = param.as_deref_mut().is_none_or(|p| pin_at(p, t));
            pin_at(expr, t) && param_ok
        }
        Expr::Negate(inner) => pin_at(inner, t),
        Expr::Binary { lhs, rhs, .. } => {
            let l = pin_at(lhs, t);
            pin_at(rhs, t) && l
        }
    }
}

fn time_function(func: &str) -> bool {
    matches!(
        func,
        "days_in_month"
            | "day_of_month"
            | "day_of_week"
            | "day_of_year"
            | "hour"
            | "minute"
            | "month"
            | "year"
            | "predict_linear"
            | "time"
            | "timestamp"
    )
}

fn uses_time(e: &Expr) -> bool {
    match e {
        Expr::Call { func, args, .. } => time_function(func) || args.iter().any(uses_time),
        Expr::Subquery { expr, .. } | Expr::Negate(expr) => uses_time(expr),
        Expr::Aggregate { expr, param, .. } => {
            uses_time(expr) || param.as_deref().is_some_and(uses_time)
        }
        Expr::Binary { lhs, rhs, .. } => uses_time(lhs) || uses_time(rhs),
        _ => false,
    }
}

fn compare(eval: &Eval, value: &QueryValue, check_order: bool) -> Result<(), String> {
    match (&eval.expected, value) {
        (Expected::Scalar(want), QueryValue::Scalar { v, .. }) => {
            if almost_equal(*want, *v) {
                Ok(())
            } else {
                Err(format!("expected scalar {want}, got {v}"))
            }
        }
        (Expected::Vector(want), QueryValue::Vector(got)) => {
            let expected: HashMap<&Labels, (usize, f64)> = want
                .iter()
                .enumerate()
                .map(|(i, (l, v))| (l, (i, *v)))
                .collect();
            for (pos, s) in got.iter().enumerate() {
                let Some(&(want_pos, want_v)) = expected.get(&s.labels) else {
                    return Err(format!("unexpected {:?} = {} in {got:?}", s.labels, s.v));
                };
                if check_order && eval.ordered && want_pos != pos {
                    return Err(format!(
                        "{:?} at position {pos}, expected {want_pos}",
                        s.labels
                    ));
                }
                if !almost_equal(want_v, s.v) {
                    return Err(format!("{:?}: expected {want_v}, got {}", s.labels, s.v));
                }
            }
            if got.len() != want.len() {
                return Err(format!("expected {} samples, got {got:?}", want.len()));
            }
            Ok(())
        }
        (_, other) => Err(format!("unexpected result {other:?}")),
    }
}

/// Prometheus' `almostEqual`: relative difference under 1e-6.
fn almost_equal(a: f64, b: f64) -> bool {
    let min_normal = f64::from_bits(0x0010_0000_0000_0000);
    if a.is_nan() && b.is_nan() || a == b {
        return true;
    }
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || diff < min_normal {
        return diff < 1e-6 * min_normal;
    }
    diff / (a.abs() + b.abs()) < 1e-6
}

fn parse_script(text: &str) -> Vec<Command> {
    let lines: Vec<&str> = text
        .lines()
        .map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                ""
            } else {
                l
            }
        })
        .collect();
    let mut cmds = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if line.is_empty() {
            continue;
        }
        let block = |i: &mut usize| {
            let mut out = Vec::new();
            while *i < lines.len() && !lines[*i].is_empty() {
                out.push(lines[*i]);
                *i += 1;
            }
            out
        };
        if line == "clear" {
            cmds.push(Command::Clear);
        } else if let Some(rest) = line.strip_prefix("load ") {
            let interval = duration(rest.trim());
            let series = block(&mut i)
                .into_iter()
                .map(|l| {
                    let (labels, values) = series_desc(l);
                    (labels, values)
                })
                .collect();
            cmds.push(Command::Load { interval, series });
        } else if line.starts_with("eval") {
            let line_no = i;
            let (head, rest) = line.split_once(char::is_whitespace).unwrap();
            let fail = head == "eval_fail";
            let ordered = head == "eval_ordered";
            let rest = rest
                .trim_start()
                .strip_prefix("instant")
                .unwrap()
                .trim_start();
            let rest = rest.strip_prefix("at").unwrap().trim_start();
            let (at, query) = rest.split_once(char::is_whitespace).unwrap();
            let mut expected = Expected::Vector(Vec::new());
            for l in block(&mut i) {
                if let Some(v) = number(l) {
                    expected = Expected::Scalar(v);
                    break;
                }
                let (labels, values) = series_desc(l);
                if let Expected::Vector(v) = &mut expected {
                    v.push((labels, values[0].unwrap()));
                }
            }
            cmds.push(Command::Eval(Eval {
                line: line_no,
                query: query.trim().to_string(),
                at: duration(at),
                fail,
                ordered,
                expected,
            }));
        } else {
            panic!("unknown command {line:?}");
        }
    }
    cmds
}

/// Prometheus' duration syntax (`5m`, `1h30m`, `10s`, `0`), milliseconds.
fn duration(s: &str) -> i64 {
    let mut total = 0i64;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: i64 = rest[..digits].parse().unwrap();
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            "" => 1000,
            other => panic!("unit {other:?} in {s:?}"),
        };
        total += n * unit;
        rest = &rest[unit_len..];
    }
    total
}

fn number(s: &str) -> Option<f64> {
    let lower = s.to_ascii_lowercase();
    match lower.trim_start_matches(['+', '-']) {
        "inf" if lower.starts_with('-') => Some(f64::NEG_INFINITY),
        "inf" => Some(f64::INFINITY),
        "nan" => Some(f64::NAN),
        _ if lower.starts_with("0x") => i64::from_str_radix(&lower[2..], 16).ok().map(|v| v as f64),
        _ => s.parse().ok(),
    }
}

/// `metric{a="b"} 1 2+3x4 _ stale`: the labels and one optional value per
/// interval.
fn series_desc(line: &str) -> (Labels, Vec<Option<f64>>) {
    let mut labels = Labels::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len()
        && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':')
    {
        i += 1;
    }
    if i > 0 {
        labels.push(("__name__".to_string(), line[..i].to_string()));
    }
    if bytes.get(i) == Some(&b'{') {
        i += 1;
        loop {
            while bytes[i] == b' ' || bytes[i] == b',' {
                i += 1;
            }
            if bytes[i] == b'}' {
                i += 1;
                break;
            }
            let start = i;
            while bytes[i] != b'=' && bytes[i] != b' ' {
                i += 1;
            }
            let name = line[start..i].trim().to_string();
            while bytes[i] != b'"' {
                i += 1;
            }
            i += 1;
            let mut value = String::new();
            while bytes[i] != b'"' {
                if bytes[i] == b'\\' {
                    i += 1;
                    value.push(match bytes[i] {
                        b'n' => '\n',
                        b't' => '\t',
                        other => other as char,
                    });
                    i += 1;
                    continue;
                }
                let ch = line[i..].chars().next().unwrap();
                value.push(ch);
                i += ch.len_utf8();
            }
            i += 1;
            if !value.is_empty() {
                labels.push((name, value));
            }
        }
    }
    labels.sort();
    let mut values = Vec::new();
    for token in line[i..].split_whitespace() {
        if token == "_" {
            values.push(None);
        } else if let Some(n) = token.strip_prefix("_x") {
            values.extend(std::iter::repeat_n(None, n.parse().unwrap()));
        } else if token == "stale" {
            values.push(Some(f64::from_bits(STALE_NAN)));
        } else if let Some((base, times)) = token.rsplit_once('x').filter(|(b, _)| !b.is_empty()) {
            let times: usize = times.parse().unwrap();
            // `a+bxN` / `a-bxN`: the sign that is not the first character
            // nor part of an exponent.
            let split = base
                .char_indices()
                .skip(1)
                .find(|&(j, c)| {
                    (c == '+' || c == '-') && !matches!(base.as_bytes()[j - 1], b'e' | b'E')
                })
                .map(|(j, _)| j);
            let (start, step) = match split {
                Some(j) => (number(&base[..j]).unwrap(), number(&base[j..]).unwrap()),
                None => (number(base).unwrap(), 0.0),
            };
            let mut v = start;
            for _ in 0..=times {
                values.push(Some(v));
                v += step;
            }
        } else {
            values.push(Some(
                number(token).unwrap_or_else(|| panic!("value {token:?}")),
            ));
        }
    }
    (labels, values)
}
