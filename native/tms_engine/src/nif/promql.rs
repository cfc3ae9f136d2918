//! PromQL from Elixir: a query string in, Prometheus' JSON (one binary) or
//! terms out. Times are milliseconds; `Tms` converts the store's unit.

use std::time::Duration;

use rustler::{Binary, Encoder, Env, NewBinary, Term};

use super::atoms;
use super::decode::decode_str;
use super::encode::encode_value;
use super::EngineArc;
use crate::error::{EngineError, Result};
use crate::promql::{self, json, Options, QueryValue};

/// `%{lookback_delta: ms, max_samples: n, timeout: ms | nil, json: bool}`,
/// every key optional.
fn decode_options(opts: Term<'_>) -> Result<(Options, bool)> {
    let mut options = Options::default();
    let bad = |what: &str| EngineError::invalid(format!("PromQL option {what}"));
    let get = |key: rustler::Atom| opts.map_get(key.encode(opts.get_env())).ok();
    if let Some(v) = get(atoms::lookback_delta()) {
        options.lookback_delta = v
            .decode::<i64>()
            .ok()
            .filter(|ms| *ms > 0)
            .ok_or_else(|| bad("lookback_delta must be a positive number of milliseconds"))?;
    }
    if let Some(v) = get(atoms::max_samples()) {
        options.max_samples = v
            .decode::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| bad("max_samples must be a positive integer"))?;
    }
    if let Some(v) = get(atoms::timeout()) {
        options.timeout = if v == atoms::nil().encode(opts.get_env()) {
            None
        } else {
            let ms = v
                .decode::<u64>()
                .ok()
                .filter(|ms| *ms > 0)
                .ok_or_else(|| bad("timeout must be a positive number of milliseconds"))?;
            Some(Duration::from_millis(ms))
        };
    }
    let json = match get(atoms::json()) {
        Some(v) => v
            .decode::<bool>()
            .map_err(|_| bad("json must be a boolean"))?,
        None => false,
    };
    Ok((options, json))
}

/// An answer, as Prometheus' JSON or as terms.
pub enum Answer {
    Json(Vec<u8>),
    Terms(QueryValue),
}

impl Encoder for Answer {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        match self {
            Answer::Json(bytes) => {
                let mut bin = NewBinary::new(env, bytes.len());
                bin.as_mut_slice().copy_from_slice(bytes);
                Binary::from(bin).to_term(env)
            }
            Answer::Terms(value) => encode_result(env, value),
        }
    }
}

fn labels_map<'a>(env: Env<'a>, labels: &promql::Labels) -> Term<'a> {
    let names: Vec<Term> = labels.iter().map(|(k, _)| k.encode(env)).collect();
    let values: Vec<Term> = labels.iter().map(|(_, v)| v.encode(env)).collect();
    Term::map_from_arrays(env, &names, &values).unwrap_or_else(|_| Term::map_new(env))
}

fn map<'a>(env: Env<'a>, pairs: &[(rustler::Atom, Term<'a>)]) -> Term<'a> {
    let keys: Vec<Term> = pairs.iter().map(|(k, _)| k.encode(env)).collect();
    let values: Vec<Term> = pairs.iter().map(|(_, v)| *v).collect();
    Term::map_from_arrays(env, &keys, &values).unwrap_or_else(|_| Term::map_new(env))
}

/// `%{type: :vector, result: [%{labels: map, value: {t, v}}]}`, matrices
/// with `points: [{t, v}]`, scalars and strings as `{t, v}`.
fn encode_result<'a>(env: Env<'a>, value: &QueryValue) -> Term<'a> {
    let point = |t: i64, v: f64| (t, encode_value(env, v)).encode(env);
    let (kind, result) = match value {
        QueryValue::Scalar { t, v } => (atoms::scalar(), point(*t, *v)),
        QueryValue::String { t, v } => (atoms::string(), (*t, v.as_str()).encode(env)),
        QueryValue::Vector(samples) => {
            let items: Vec<Term> = samples
                .iter()
                .map(|s| {
                    map(
                        env,
                        &[
                            (atoms::labels(), labels_map(env, &s.labels)),
                            (atoms::value(), point(s.t, s.v)),
                        ],
                    )
                })
                .collect();
            (atoms::vector(), items.encode(env))
        }
        QueryValue::Matrix(series) => {
            let items: Vec<Term> = series
                .iter()
                .map(|s| {
                    let points: Vec<Term> = s.points.iter().map(|&(t, v)| point(t, v)).collect();
                    map(
                        env,
                        &[
                            (atoms::labels(), labels_map(env, &s.labels)),
                            (atoms::points(), points.encode(env)),
                        ],
                    )
                })
                .collect();
            (atoms::matrix(), items.encode(env))
        }
    };
    map(
        env,
        &[
            (atoms::type_(), kind.encode(env)),
            (atoms::result(), result),
        ],
    )
}

fn answer(value: QueryValue, json: bool) -> Answer {
    if json {
        Answer::Json(json::success(&value))
    } else {
        Answer::Terms(value)
    }
}

/// An instant query at `time` (ms).
#[rustler::nif(schedule = "DirtyCpu")]
fn promql_query(engine: EngineArc, query: Term<'_>, time: i64, opts: Term<'_>) -> Result<Answer> {
    let query = decode_str(query, "query")?;
    let (options, json) = decode_options(opts)?;
    let value = promql::instant(&*engine, query, time, &options)?;
    Ok(answer(value, json))
}

/// A range query over `[start, end]` at `step` (ms).
#[rustler::nif(schedule = "DirtyCpu")]
fn promql_query_range(
    engine: EngineArc,
    query: Term<'_>,
    start: i64,
    end: i64,
    step: i64,
    opts: Term<'_>,
) -> Result<Answer> {
    let query = decode_str(query, "query")?;
    let (options, json) = decode_options(opts)?;
    let value = promql::range(&*engine, query, start, end, step, &options)?;
    Ok(answer(value, json))
}
