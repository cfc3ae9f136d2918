//! Decoding NIF arguments. Every decoder returns an `InvalidArgument`
//! error for a malformed term (a wrong type, an improper list, invalid
//! UTF-8, a number out of range) and never panics.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use rustler::types::map::MapIterator;
use rustler::{Atom, Binary, Decoder, Encoder, Env, NifResult, Term};

use super::atoms;
use crate::engine::{
    BatchSeries, Engine, FlushScope, LabeledBatch, OnDamage, QuerySpec, MAX_BATCH_POINTS,
};
use crate::error::{EngineError, Result};
use crate::hash::FastBuildHasher;
use crate::index::Matcher;
use crate::ingest::Format;
use crate::query::Agg;
use crate::series_key::SeriesKey;
use crate::wal::SyncMode;

fn invalid(message: impl Into<String>) -> EngineError {
    EngineError::invalid(message)
}

/// The items of a list term, each `Err` once the list turns out improper
/// (rustler's own list iterator panics there). `what` names the list in
/// the error. A term that is not a list at all yields one error.
pub fn list_items<'a>(
    term: Term<'a>,
    what: &'static str,
) -> impl Iterator<Item = Result<Term<'a>>> {
    let mut rest = Some(term);
    std::iter::from_fn(move || {
        let current = rest.take()?;
        match current.list_get_cell() {
            Ok((head, tail)) => {
                rest = Some(tail);
                Some(Ok(head))
            }
            Err(_) if current.is_empty_list() => None,
            Err(_) => Some(Err(invalid(format!("{what} must be a proper list")))),
        }
    })
}

pub fn decode_str<'a>(term: Term<'a>, what: &str) -> Result<&'a str> {
    let bin = Binary::from_term(term).map_err(|_| invalid(format!("{what} must be a string")))?;
    std::str::from_utf8(bin.as_slice()).map_err(|_| invalid(format!("{what} is not valid UTF-8")))
}

/// A label name: a string or an atom.
pub fn decode_label_name<'a>(term: Term<'a>) -> Result<Cow<'a, str>> {
    if term.is_atom() {
        return term
            .atom_to_string()
            .map(Cow::Owned)
            .map_err(|_| invalid("label name atom could not be read"));
    }
    decode_str(term, "label name").map(Cow::Borrowed)
}

/// Appends the labels of a map or a list of `{name, value}` pairs.
pub fn decode_labels<'a>(term: Term<'a>, out: &mut Vec<(Cow<'a, str>, &'a str)>) -> Result<()> {
    let mut push = |name: Term<'a>, value: Term<'a>| -> Result<()> {
        let name = decode_label_name(name)?;
        let value = decode_str(value, "label value")
            .map_err(|e| invalid(format!("label {name:?}: {e}")))?;
        out.push((name, value));
        Ok(())
    };
    if term.is_map() {
        let iter = MapIterator::new(term).ok_or_else(|| invalid("labels map could not be read"))?;
        for (name, value) in iter {
            push(name, value)?;
        }
        return Ok(());
    }
    if term.is_list() {
        for pair in list_items(term, "labels") {
            let (name, value): (Term, Term) = pair?
                .decode()
                .map_err(|_| invalid("labels in a list must be {name, value} tuples"))?;
            push(name, value)?;
        }
        return Ok(());
    }
    Err(invalid("labels must be a map or a keyword list"))
}

/// A value: a float, an integer, or `:nan` / `:infinity` / `:neg_infinity`.
fn decode_value(term: Term<'_>) -> Result<f64> {
    if term.is_float() || term.is_integer() {
        return term
            .decode::<f64>()
            .map_err(|_| invalid("integer value does not fit in 64 bits"));
    }
    if let Ok(atom) = term.decode::<Atom>() {
        if atom == atoms::nan() {
            return Ok(f64::NAN);
        } else if atom == atoms::infinity() {
            return Ok(f64::INFINITY);
        } else if atom == atoms::neg_infinity() {
            return Ok(f64::NEG_INFINITY);
        }
    }
    Err(invalid(
        "value must be a number, :nan, :infinity or :neg_infinity",
    ))
}

fn decode_timestamp(term: Term<'_>) -> Result<i64> {
    if !term.is_integer() {
        return Err(invalid("timestamp must be an integer"));
    }
    term.decode::<i64>()
        .map_err(|_| invalid("timestamp does not fit in 64 bits"))
}

/// Decodes a list of `{metric, labels, value}` / `{metric, labels, value, ts}`.
///
/// Entries whose metric and labels are the *same terms* (one map shared by
/// many entries, the common case when a caller builds a host's labels once)
/// are decoded once: identical raw term words mean the same immutable term.
/// Equal but separately built terms are decoded separately and resolve to
/// the same series anyway.
pub fn decode_batch<'a>(
    engine: &Engine,
    list: Term<'a>,
    default_ts: i64,
) -> Result<LabeledBatch<'a, Cow<'a, str>, &'a str>> {
    let iter = list_items(list, "entries");
    let mut batch = LabeledBatch::default();
    let mut seen: HashMap<
        (rustler::sys::ErlNifTerm, rustler::sys::ErlNifTerm),
        usize,
        FastBuildHasher,
    > = HashMap::default();
    let mut same_hint: HashMap<u64, (Term<'a>, Term<'a>, usize), FastBuildHasher> =
        HashMap::default();
    for (i, term) in iter.enumerate() {
        // Refuse an oversized batch as soon as it shows (walking the list
        // up front to count it costs a cache miss per entry).
        if i == MAX_BATCH_POINTS {
            return Err(invalid(format!(
                "a batch may hold at most {MAX_BATCH_POINTS} points"
            )));
        }
        let at = |e: EngineError| invalid(format!("entry {i}: {e}"));
        let term = term?;
        let (metric, labels, value, ts) = if let Ok((m, l, v, t)) =
            term.decode::<(Term, Term, Term, Term)>()
        {
            (m, l, v, Some(t))
        } else if let Ok((m, l, v)) = term.decode::<(Term, Term, Term)>() {
            (m, l, v, None)
        } else {
            return Err(invalid(format!(
                "entry {i}: expected {{metric, labels, value}} or {{metric, labels, value, timestamp}}"
            )));
        };
        let identity = (metric.as_c_arg(), labels.as_c_arg());
        let series = match seen.get(&identity) {
            Some(&series) => series,
            None => {
                let hint =
                    metric.hash_internal(0x6d65_7472_6963) ^ labels.hash_internal(0x6c61_6265_6c73);
                // Equal terms built apart (a map per entry) are compared in C
                // with an earlier entry of this batch instead of decoded again.
                let earlier = same_hint
                    .get(&hint)
                    .filter(|(m, l, _)| *m == metric && *l == labels)
                    .map(|(_, _, series)| *series);
                let series = match earlier {
                    Some(series) => series,
                    None => {
                        let start = batch.labels.len();
                        let known = engine.hinted(hint, |key| same_series(metric, labels, key));
                        if known.is_none() {
                            decode_labels(labels, &mut batch.labels).map_err(at)?;
                        }
                        batch.series.push(BatchSeries {
                            metric: if known.is_some() {
                                Cow::Borrowed("")
                            } else {
                                Cow::Borrowed(decode_str(metric, "metric name").map_err(at)?)
                            },
                            labels: start..batch.labels.len(),
                            first_point: i,
                            known,
                            hint: Some(hint),
                            spelling: None,
                        });
                        let series = batch.series.len() - 1;
                        // One candidate per hash: a second series with the same
                        // 64-bit hash in one batch just takes the slower path.
                        same_hint.entry(hint).or_insert((metric, labels, series));
                        series
                    }
                };
                seen.insert(identity, series);
                series
            }
        };
        let timestamp = ts.map_or(Ok(default_ts), decode_timestamp).map_err(at)?;
        let value = decode_value(value).map_err(at)?;
        batch.points.push((series, timestamp, value));
    }
    Ok(batch)
}

/// True when `metric` and `labels` (as terms) spell exactly `key`: bytes
/// are compared, nothing is decoded or allocated (but atom names). Labels
/// with an empty value are skipped (they are no labels); the others must
/// arrive in canonical order, which is a small map's iteration order; any
/// other spelling answers false and takes the decoding path.
fn same_series(metric: Term<'_>, labels: Term<'_>, key: &SeriesKey) -> bool {
    let same_str = |term: Term<'_>, s: &str| match Binary::from_term(term) {
        Ok(bin) => bin.as_slice() == s.as_bytes(),
        Err(_) => term.is_atom() && term.atom_to_string().is_ok_and(|a| a == s),
    };
    if !same_str(metric, &key.metric) {
        return false;
    }
    if labels.is_map() {
        MapIterator::new(labels).is_some_and(|iter| same_labels(iter.map(Some), key, same_str))
    } else if labels.is_list() {
        let pairs = list_items(labels, "labels").map(|item| item.ok()?.decode().ok());
        same_labels(pairs, key, same_str)
    } else {
        false
    }
}

/// [`same_series`]' label comparison, over the pairs of a map or a list
/// (`None`: an item that is not a pair).
fn same_labels<'a>(
    pairs: impl Iterator<Item = Option<(Term<'a>, Term<'a>)>>,
    key: &SeriesKey,
    same_str: impl Fn(Term<'a>, &str) -> bool,
) -> bool {
    let mut expected = key.labels.iter();
    for pair in pairs {
        let Some((name, value)) = pair else {
            return false;
        };
        let Ok(value) = Binary::from_term(value) else {
            return false;
        };
        if value.is_empty() {
            continue;
        }
        match expected.next() {
            Some((k, v)) if same_str(name, k) && value.as_slice() == v.as_bytes() => {}
            _ => return false,
        }
    }
    expected.next().is_none()
}

/// Matchers: a map or keyword list of equalities, or a list mixing
/// `{label, value}` and `{label, :eq | :neq | :regex | :not_regex, value}`.
pub fn decode_matchers(term: Term<'_>) -> Result<Vec<Matcher>> {
    let bad = |e: EngineError| invalid(format!("matchers: {e}"));
    let mut matchers = Vec::new();
    if term.is_list() {
        for item in list_items(term, "matchers") {
            let item = item?;
            if let Ok((label, op, value)) = item.decode::<(Term, Atom, Term)>() {
                let label = decode_label_name(label).map_err(bad)?;
                let value = decode_str(value, "matcher value").map_err(bad)?;
                let op = op
                    .to_term(term.get_env())
                    .atom_to_string()
                    .map_err(|_| invalid("matcher operator"))?;
                matchers.push(Matcher::new(&label, &op, value).map_err(invalid)?);
                continue;
            }
            let (label, value): (Term, Term) = item.decode().map_err(|_| {
                invalid("matchers: each must be {label, value} or {label, op, value}")
            })?;
            let label = decode_label_name(label).map_err(bad)?;
            let value = decode_str(value, "matcher value").map_err(bad)?;
            matchers.push(Matcher::new(&label, "eq", value).map_err(invalid)?);
        }
        return Ok(matchers);
    }
    let mut pairs = Vec::new();
    decode_labels(term, &mut pairs).map_err(bad)?;
    for (label, value) in pairs {
        matchers.push(Matcher::new(&label, "eq", value).map_err(invalid)?);
    }
    Ok(matchers)
}

/// Query options: a map with `step` (integer or nil), `agg` (atom or nil),
/// `group_by` (list of label names or nil) and `format` (`:list` | `:binary`).
pub fn decode_query_opts(opts: Term<'_>) -> Result<(QuerySpec, bool)> {
    let env = opts.get_env();
    let get = |key: &str| -> Result<Option<Term<'_>>> {
        let atom = Atom::from_str(env, key).map_err(|_| invalid(key.to_string()))?;
        match opts.map_get(atom) {
            Ok(value) if value.decode::<Atom>().is_ok_and(|a| a == atoms::nil()) => Ok(None),
            Ok(value) => Ok(Some(value)),
            Err(_) => Ok(None),
        }
    };
    let step = get("step")?
        .map(|t| {
            t.decode::<i64>()
                .map_err(|_| invalid("step must be a 64-bit integer"))
        })
        .transpose()?;
    let agg = get("agg")?
        .map(|t| {
            t.atom_to_string()
                .map_err(|_| invalid(format!("agg must be an atom, one of {}", Agg::NAMES)))
                .and_then(|name| Agg::from_name(&name).map_err(invalid))
        })
        .transpose()?;
    let group_by = get("group_by")?
        .map(|t| -> Result<Vec<String>> {
            if !t.is_list() {
                return Err(invalid("group_by must be a list of label names"));
            }
            list_items(t, "group_by")
                .map(|l| decode_label_name(l?).map(Cow::into_owned))
                .collect()
        })
        .transpose()?;
    let binary = match get("format")? {
        None => false,
        Some(f) if f.decode::<Atom>().is_ok_and(|a| a == atoms::binary()) => true,
        Some(f) if f.decode::<Atom>().is_ok_and(|a| a == atoms::list()) => false,
        Some(_) => return Err(invalid("format must be :list or :binary")),
    };
    let on_damage = match get("on_damage")? {
        None => OnDamage::default(),
        Some(f) if f.decode::<Atom>().is_ok_and(|a| a == atoms::skip()) => OnDamage::Skip,
        Some(f) if f.decode::<Atom>().is_ok_and(|a| a == atoms::error()) => OnDamage::Fail,
        Some(_) => return Err(invalid("on_damage must be :skip or :error")),
    };
    Ok((
        QuerySpec {
            step,
            agg,
            group_by,
            on_damage,
        },
        binary,
    ))
}

/// An import format: `:prometheus_text`, `:remote_write` or `:json_lines`.
pub fn decode_format(term: Term<'_>) -> Result<Format> {
    match term.decode::<Atom>() {
        Ok(atom) if atom == atoms::prometheus_text() => Ok(Format::PrometheusText),
        Ok(atom) if atom == atoms::json_lines() => Ok(Format::JsonLines),
        Ok(atom) if atom == atoms::remote_write() => Ok(Format::RemoteWrite),
        _ => Err(invalid(
            "format must be :prometheus_text, :remote_write or :json_lines",
        )),
    }
}

pub fn decode_scope(term: Term<'_>) -> Result<FlushScope> {
    if let Ok(atom) = term.decode::<Atom>() {
        if atom == atoms::all() {
            return Ok(FlushScope::All);
        } else if atom == atoms::pending() {
            return Ok(FlushScope::Pending);
        }
    }
    match term.decode::<(Atom, u64)>() {
        Ok((tag, ms)) if tag == atoms::idle() => Ok(FlushScope::Idle(Duration::from_millis(ms))),
        _ => Err(invalid("flush scope must be :all, :pending or {:idle, ms}")),
    }
}

/// `:always`, `:never` or `{:interval, ms}` with `ms > 0`.
impl<'a> Decoder<'a> for SyncMode {
    fn decode(term: Term<'a>) -> NifResult<SyncMode> {
        if let Ok(atom) = term.decode::<Atom>() {
            if atom == atoms::always() {
                return Ok(SyncMode::Always);
            } else if atom == atoms::never() {
                return Ok(SyncMode::Never);
            }
        }
        match term.decode::<(Atom, u64)>() {
            Ok((tag, ms)) if tag == atoms::interval() && ms > 0 => {
                Ok(SyncMode::Interval(Duration::from_millis(ms)))
            }
            _ => Err(rustler::Error::BadArg),
        }
    }
}

/// The term [`SyncMode`]'s decoder reads (the map derive needs both ways).
impl Encoder for SyncMode {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        match self {
            SyncMode::Always => atoms::always().encode(env),
            SyncMode::Never => atoms::never().encode(env),
            SyncMode::Interval(every) => (atoms::interval(), every.as_millis() as u64).encode(env),
        }
    }
}
