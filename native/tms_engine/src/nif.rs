//! The only module that speaks Erlang terms: decode arguments, call the
//! engine, encode results. Errors leave as `{:error, {kind, details}}` with
//! `details` a map holding at least `:message`.
//!
//! Scheduling: every function that can touch the disk (open, close, writes,
//! resolve, flush, compaction, retention, info) runs on a dirty I/O
//! scheduler, queries on dirty CPU schedulers. No NIF runs on a normal
//! scheduler: a `write(2)` to the WAL can stall on a busy disk for longer
//! than the 1 ms a normal scheduler may be held, and measured on this
//! machine the dirty hop costs about 1 to 8 microseconds per call, which
//! batching amortizes.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use rustler::types::map::MapIterator;
use rustler::{Atom, Binary, Encoder, Env, NewBinary, Resource, ResourceArc, Term};

use crate::engine::{
    BatchSeries, CompactReport, Config, Engine, FlushReport, FlushScope, Info, LabeledBatch,
    QuerySpec, RetentionReport, MAX_BATCH_POINTS,
};
use crate::error::{EngineError, Result};
use crate::hash::FastBuildHasher;
use crate::index::Matcher;
use crate::query::{Agg, Points};
use crate::registry::SeriesKey;
use crate::wal::SyncMode;

mod atoms {
    rustler::atoms! {
        ok, error, message, nan, infinity, neg_infinity,
        always, never, interval, all, pending, idle,
        op, path, errno, reason, found, supported, id, entry,
        buffered, incoming, limit,
        metric, labels, points, nil, binary, list,
    }
}

#[rustler::resource_impl]
impl Resource for Engine {}

type EngineArc = ResourceArc<Engine>;

/// `{:ok, value}` or `{:error, {kind, details}}`.
fn reply<'a, T: Encoder>(env: Env<'a>, result: Result<T>) -> Term<'a> {
    match result {
        Ok(value) => (atoms::ok(), value).encode(env),
        Err(err) => error_term(env, &err),
    }
}

/// `:ok` or `{:error, {kind, details}}`.
fn reply_unit(env: Env<'_>, result: Result<()>) -> Term<'_> {
    match result {
        Ok(()) => atoms::ok().encode(env),
        Err(err) => error_term(env, &err),
    }
}

fn error_term<'a>(env: Env<'a>, err: &EngineError) -> Term<'a> {
    let kind = Atom::from_str(env, err.kind())
        .map_or_else(|_| atoms::error().encode(env), |a| a.encode(env));
    let mut details = Term::map_new(env);
    let mut put = |key: Atom, value: Term<'a>| {
        if let Ok(map) = details.map_put(key, value) {
            details = map;
        }
    };
    put(atoms::message(), err.to_string().encode(env));
    match err {
        EngineError::Io {
            op, path, errno, ..
        } => {
            put(atoms::op(), op.encode(env));
            put(atoms::path(), path.encode(env));
            if let Some(name) = errno.and_then(|e| Atom::from_str(env, e).ok()) {
                put(atoms::errno(), name.encode(env));
            }
        }
        EngineError::CorruptData { path, reason } => {
            put(atoms::path(), path.encode(env));
            put(atoms::reason(), reason.encode(env));
        }
        EngineError::UnsupportedVersion {
            path,
            found,
            supported,
        } => {
            put(atoms::path(), path.encode(env));
            put(atoms::found(), found.encode(env));
            put(atoms::supported(), supported.encode(env));
        }
        EngineError::SeriesNotFound { id, entry } => {
            put(atoms::id(), id.encode(env));
            put(atoms::entry(), entry.encode(env));
        }
        EngineError::Overloaded {
            buffered,
            incoming,
            limit,
        } => {
            put(atoms::buffered(), buffered.encode(env));
            put(atoms::incoming(), incoming.encode(env));
            put(atoms::limit(), limit.encode(env));
        }
        EngineError::Locked { path } => put(atoms::path(), path.encode(env)),
        EngineError::InvalidArgument(_) | EngineError::Closed | EngineError::Poisoned(_) => {}
    }
    (atoms::error(), (kind, details)).encode(env)
}

fn invalid(message: impl Into<String>) -> EngineError {
    EngineError::invalid(message)
}

// ---------------------------------------------------------------- decoding

fn decode_str<'a>(term: Term<'a>, what: &str) -> Result<&'a str> {
    let bin = Binary::from_term(term).map_err(|_| invalid(format!("{what} must be a string")))?;
    std::str::from_utf8(bin.as_slice()).map_err(|_| invalid(format!("{what} is not valid UTF-8")))
}

/// A label name: a string or an atom.
fn decode_label_name<'a>(term: Term<'a>) -> Result<Cow<'a, str>> {
    if term.is_atom() {
        return term
            .atom_to_string()
            .map(Cow::Owned)
            .map_err(|_| invalid("label name atom could not be read"));
    }
    decode_str(term, "label name").map(Cow::Borrowed)
}

/// Appends the labels of a map or a list of `{name, value}` pairs.
fn decode_labels<'a>(term: Term<'a>, out: &mut Vec<(Cow<'a, str>, &'a str)>) -> Result<()> {
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
        let iter = term
            .into_list_iterator()
            .map_err(|_| invalid("labels must be a proper list"))?;
        for pair in iter {
            let (name, value): (Term, Term) = pair
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
fn decode_batch<'a>(
    engine: &Engine,
    list: Term<'a>,
    default_ts: i64,
) -> Result<LabeledBatch<'a, Cow<'a, str>, &'a str>> {
    let iter = list
        .into_list_iterator()
        .map_err(|_| invalid("entries must be a list"))?;
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
                                ""
                            } else {
                                decode_str(metric, "metric name").map_err(at)?
                            },
                            labels: start..batch.labels.len(),
                            first_point: i,
                            known,
                            hint: Some(hint),
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
/// must arrive in canonical order, which is a small map's iteration order;
/// any other spelling answers false and takes the decoding path.
fn same_series(metric: Term<'_>, labels: Term<'_>, key: &SeriesKey) -> bool {
    let same_str = |term: Term<'_>, s: &str| match Binary::from_term(term) {
        Ok(bin) => bin.as_slice() == s.as_bytes(),
        Err(_) => term.is_atom() && term.atom_to_string().is_ok_and(|a| a == s),
    };
    if !same_str(metric, &key.metric) {
        return false;
    }
    let same_pair = |(name, value): (Term<'_>, Term<'_>), (k, v): &(Box<str>, Box<str>)| {
        same_str(name, k) && Binary::from_term(value).is_ok_and(|b| b.as_slice() == v.as_bytes())
    };
    if labels.is_map() {
        return labels.map_size().is_ok_and(|n| n == key.labels.len())
            && MapIterator::new(labels)
                .is_some_and(|iter| iter.zip(key.labels.iter()).all(|(p, k)| same_pair(p, k)));
    }
    let Ok(iter) = labels.into_list_iterator() else {
        return false;
    };
    let mut expected = key.labels.iter();
    for item in iter {
        match (item.decode::<(Term, Term)>(), expected.next()) {
            (Ok(pair), Some(k)) if same_pair(pair, k) => {}
            _ => return false,
        }
    }
    expected.next().is_none()
}

fn get_opt<'a, T: rustler::Decoder<'a>>(opts: Term<'a>, key: &str) -> Result<T> {
    let env = opts.get_env();
    let atom = Atom::from_str(env, key).map_err(|_| invalid(key.to_string()))?;
    opts.map_get(atom).and_then(|v| v.decode()).map_err(|_| {
        invalid(format!(
            "engine option {key} is missing or has the wrong type"
        ))
    })
}

fn decode_config(opts: Term<'_>) -> Result<Config> {
    let sync: Term = get_opt(opts, "wal_sync")?;
    let wal_sync = if sync.decode::<Atom>().is_ok_and(|a| a == atoms::always()) {
        SyncMode::Always
    } else if sync.decode::<Atom>().is_ok_and(|a| a == atoms::never()) {
        SyncMode::Never
    } else {
        match sync.decode::<(Atom, u64)>() {
            Ok((tag, ms)) if tag == atoms::interval() && ms > 0 => {
                SyncMode::Interval(Duration::from_millis(ms))
            }
            _ => {
                return Err(invalid(
                    "wal_sync must be :always, :never or {:interval, ms}",
                ))
            }
        }
    };
    Ok(Config {
        wal_sync,
        wal_segment_bytes: get_opt(opts, "wal_segment_bytes")?,
        partition_duration: get_opt(opts, "partition_duration")?,
        flush_threshold: get_opt(opts, "flush_threshold")?,
        max_buffered_points: get_opt(opts, "max_buffered_points")?,
        compression_level: get_opt(opts, "compression_level")?,
        cache_bytes: get_opt(opts, "cache_bytes")?,
        max_abs_timestamp: get_opt(opts, "max_abs_timestamp")?,
        units_per_second: get_opt(opts, "units_per_second")?,
    })
}

fn decode_scope(term: Term<'_>) -> Result<FlushScope> {
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

// ---------------------------------------------------------------- encoding

fn encode_value(env: Env<'_>, v: f64) -> Term<'_> {
    if v.is_nan() {
        atoms::nan().encode(env)
    } else if v == f64::INFINITY {
        atoms::infinity().encode(env)
    } else if v == f64::NEG_INFINITY {
        atoms::neg_infinity().encode(env)
    } else {
        v.encode(env)
    }
}

fn encode_labels<'a>(env: Env<'a>, labels: &[(Box<str>, Box<str>)]) -> Term<'a> {
    let names: Vec<Term> = labels.iter().map(|(k, _)| (**k).encode(env)).collect();
    let values: Vec<Term> = labels.iter().map(|(_, v)| (**v).encode(env)).collect();
    Term::map_from_arrays(env, &names, &values).unwrap_or_else(|_| Term::map_new(env))
}

fn encode_points<'a>(env: Env<'a>, points: &Points) -> Term<'a> {
    let terms: Vec<Term> = points
        .iter()
        .map(|(t, v)| (t, encode_value(env, v)).encode(env))
        .collect();
    terms.encode(env)
}

fn encode_pairs<'a>(env: Env<'a>, pairs: &[(&str, Term<'a>)]) -> Term<'a> {
    let keys: Vec<Term> = pairs
        .iter()
        .map(|(k, _)| Atom::from_str(env, k).map_or_else(|_| k.encode(env), |a| a.encode(env)))
        .collect();
    let values: Vec<Term> = pairs.iter().map(|(_, v)| *v).collect();
    Term::map_from_arrays(env, &keys, &values).unwrap_or_else(|_| Term::map_new(env))
}

fn encode_info<'a>(env: Env<'a>, i: &Info) -> Term<'a> {
    encode_pairs(
        env,
        &[
            ("series", i.series.encode(env)),
            ("buffered_points", i.buffered_points.encode(env)),
            ("segments", i.segments.encode(env)),
            ("chunks", i.chunks.encode(env)),
            ("segment_bytes", i.segment_bytes.encode(env)),
            ("wal_bytes", i.wal_bytes.encode(env)),
            ("cache_hits", i.cache_hits.encode(env)),
            ("cache_misses", i.cache_misses.encode(env)),
            ("cache_bytes", i.cache_bytes.encode(env)),
            ("flushes", i.flushes.encode(env)),
            ("last_flush_unix_ms", i.last_flush_unix_ms.encode(env)),
            ("quarantined_files", i.quarantined_files.encode(env)),
            ("corrupt_chunk_reads", i.corrupt_chunk_reads.encode(env)),
            ("open_read_bytes", i.open_read_bytes.encode(env)),
            ("wal_replayed_points", i.replay.points.encode(env)),
            ("wal_corrupt_records", i.replay.corrupt_records.encode(env)),
            ("wal_torn_bytes", i.replay.torn_bytes.encode(env)),
            ("problems", i.problems.encode(env)),
        ],
    )
}

/// `[{path, reason}]` of files that could not be removed.
fn encode_unremoved<'a>(env: Env<'a>, unremoved: &[(String, String)]) -> Term<'a> {
    let terms: Vec<Term> = unremoved
        .iter()
        .map(|(p, why)| (p.as_str(), why.as_str()).encode(env))
        .collect();
    terms.encode(env)
}

fn encode_retention<'a>(env: Env<'a>, r: &RetentionReport) -> Term<'a> {
    encode_pairs(
        env,
        &[
            ("segments_removed", r.segments_removed.encode(env)),
            ("bytes_removed", r.bytes_removed.encode(env)),
            ("unremoved", encode_unremoved(env, &r.unremoved)),
        ],
    )
}

fn encode_compact<'a>(env: Env<'a>, r: &CompactReport) -> Term<'a> {
    encode_pairs(
        env,
        &[
            ("partitions", r.partitions.encode(env)),
            ("segments_merged", r.segments_merged.encode(env)),
            ("bytes_before", r.bytes_before.encode(env)),
            ("bytes_after", r.bytes_after.encode(env)),
            ("unremoved", encode_unremoved(env, &r.unremoved)),
        ],
    )
}

fn encode_flush<'a>(env: Env<'a>, r: &FlushReport) -> Term<'a> {
    encode_pairs(
        env,
        &[
            ("points", r.points.encode(env)),
            ("chunks", r.chunks.encode(env)),
            ("segments", r.segments.encode(env)),
            ("unremoved", encode_unremoved(env, &r.unremoved)),
            ("skipped", r.skipped.encode(env)),
        ],
    )
}

// ---------------------------------------------------------------- functions

#[rustler::nif(schedule = "DirtyIo")]
fn open<'a>(env: Env<'a>, path: Term<'a>, opts: Term<'a>) -> Term<'a> {
    let result = decode_str(path, "data_dir")
        .and_then(|p| Ok((p, decode_config(opts)?)))
        .and_then(|(p, config)| Engine::open(std::path::Path::new(p), config))
        .map(ResourceArc::new);
    reply(env, result)
}

#[rustler::nif(schedule = "DirtyIo")]
fn close(env: Env<'_>, engine: EngineArc) -> Term<'_> {
    reply_unit(env, engine.close())
}

/// A new series is announced in the WAL: a write, so a dirty I/O scheduler.
#[rustler::nif(schedule = "DirtyIo")]
fn resolve<'a>(env: Env<'a>, engine: EngineArc, metric: Term<'a>, labels: Term<'a>) -> Term<'a> {
    let result = (|| {
        let metric = decode_str(metric, "metric name")?;
        let mut pairs = Vec::new();
        decode_labels(labels, &mut pairs)?;
        engine.resolve(metric, &mut pairs)
    })();
    reply(env, result)
}

/// Writes block on the WAL's `write(2)` (and on fsync with `wal_sync:
/// :always`), which a busy disk can stall for milliseconds: every write
/// runs on a dirty I/O scheduler, never on a normal one.
#[rustler::nif(schedule = "DirtyIo")]
fn write_batch<'a>(
    env: Env<'a>,
    engine: EngineArc,
    entries: Term<'a>,
    default_ts: i64,
) -> Term<'a> {
    let result = decode_batch(&engine, entries, default_ts)
        .and_then(|mut batch| engine.write_labeled(&mut batch));
    reply_unit(env, result)
}

#[rustler::nif(schedule = "DirtyIo")]
fn write_raw<'a>(env: Env<'a>, engine: EngineArc, raw: Term<'a>) -> Term<'a> {
    let result = Binary::from_term(raw)
        .map_err(|_| invalid("raw batch must be a binary"))
        .and_then(|bin| engine.write_raw(bin.as_slice()));
    reply_unit(env, result)
}

/// Matchers: a map or keyword list of equalities, or a list mixing
/// `{label, value}` and `{label, :eq | :neq | :regex | :not_regex, value}`.
fn decode_matchers(term: Term<'_>) -> Result<Vec<Matcher>> {
    let bad = |e: EngineError| invalid(format!("matchers: {e}"));
    let mut matchers = Vec::new();
    if term.is_list() {
        let iter = term
            .into_list_iterator()
            .map_err(|_| invalid("matchers must be a proper list"))?;
        for item in iter {
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
fn decode_query_opts(opts: Term<'_>) -> Result<(QuerySpec, bool)> {
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
                .map_err(|_| invalid("agg must be an atom"))
                .and_then(|name| Agg::from_name(&name).map_err(invalid))
        })
        .transpose()?;
    let group_by = get("group_by")?
        .map(|t| -> Result<Vec<String>> {
            let iter = t
                .into_list_iterator()
                .map_err(|_| invalid("group_by must be a list of label names"))?;
            iter.map(|l| decode_label_name(l).map(Cow::into_owned))
                .collect()
        })
        .transpose()?;
    let binary = match get("format")? {
        None => false,
        Some(f) if f.decode::<Atom>().is_ok_and(|a| a == atoms::binary()) => true,
        Some(f) if f.decode::<Atom>().is_ok_and(|a| a == atoms::list()) => false,
        Some(_) => return Err(invalid("format must be :list or :binary")),
    };
    Ok((
        QuerySpec {
            step,
            agg,
            group_by,
        },
        binary,
    ))
}

/// `<<ts::little-signed-64, value::little-float-64>>` per point, one
/// binary for the whole series: no term per point.
fn encode_points_binary<'a>(env: Env<'a>, points: &Points) -> Term<'a> {
    let mut bin = NewBinary::new(env, points.len() * 16);
    for (slot, (t, v)) in bin.as_mut_slice().chunks_exact_mut(16).zip(points.iter()) {
        slot[..8].copy_from_slice(&t.to_le_bytes());
        slot[8..].copy_from_slice(&v.to_bits().to_le_bytes());
    }
    Binary::from(bin).to_term(env)
}

#[rustler::nif(schedule = "DirtyCpu")]
fn query_range<'a>(
    env: Env<'a>,
    engine: EngineArc,
    metric: Term<'a>,
    matchers: Term<'a>,
    from: i64,
    to: i64,
    opts: Term<'a>,
) -> Term<'a> {
    let result = (|| {
        let metric = decode_str(metric, "metric name")?;
        let matchers = decode_matchers(matchers)?;
        let (spec, binary) = decode_query_opts(opts)?;
        Ok((
            metric,
            engine.query(metric, &matchers, from, to, &spec)?,
            binary,
        ))
    })();
    match result {
        Ok((metric, results, binary)) => {
            let metric = metric.encode(env);
            let keys = [atoms::metric(), atoms::labels(), atoms::points()].map(|a| a.encode(env));
            let terms: Vec<Term> = results
                .iter()
                .map(|r| {
                    let points = if binary {
                        encode_points_binary(env, &r.points)
                    } else {
                        encode_points(env, &r.points)
                    };
                    let values = [metric, encode_labels(env, &r.labels), points];
                    Term::map_from_arrays(env, &keys, &values)
                        .unwrap_or_else(|_| Term::map_new(env))
                })
                .collect();
            (atoms::ok(), terms).encode(env)
        }
        Err(err) => error_term(env, &err),
    }
}

#[rustler::nif(schedule = "DirtyCpu")]
fn series<'a>(env: Env<'a>, engine: EngineArc, metric: Term<'a>, matchers: Term<'a>) -> Term<'a> {
    let result = (|| {
        let metric = decode_str(metric, "metric name")?;
        let matchers = decode_matchers(matchers)?;
        engine.select(metric, &matchers)
    })();
    match result {
        Ok(series) => {
            let terms: Vec<Term> = series
                .iter()
                .map(|(_, key)| encode_labels(env, &key.labels))
                .collect();
            (atoms::ok(), terms).encode(env)
        }
        Err(err) => error_term(env, &err),
    }
}

#[rustler::nif(schedule = "DirtyCpu")]
fn label_values<'a>(
    env: Env<'a>,
    engine: EngineArc,
    metric: Term<'a>,
    label: Term<'a>,
) -> Term<'a> {
    let result = decode_str(metric, "metric name")
        .and_then(|m| Ok((m, decode_label_name(label)?)))
        .and_then(|(m, l)| engine.label_values(m, &l));
    reply(env, result)
}

#[rustler::nif(schedule = "DirtyCpu")]
fn metrics(env: Env<'_>, engine: EngineArc) -> Term<'_> {
    reply(env, engine.metrics())
}

#[rustler::nif(schedule = "DirtyIo")]
fn flush<'a>(env: Env<'a>, engine: EngineArc, scope: Term<'a>) -> Term<'a> {
    match decode_scope(scope).and_then(|s| engine.flush(s)) {
        Ok(report) => (atoms::ok(), encode_flush(env, &report)).encode(env),
        Err(err) => error_term(env, &err),
    }
}

#[rustler::nif(schedule = "DirtyIo")]
fn delete_before(env: Env<'_>, engine: EngineArc, cutoff: i64) -> Term<'_> {
    match engine.delete_before(cutoff) {
        Ok(report) => (atoms::ok(), encode_retention(env, &report)).encode(env),
        Err(err) => error_term(env, &err),
    }
}

#[rustler::nif(schedule = "DirtyIo")]
fn compact(env: Env<'_>, engine: EngineArc, idle_ms: u64) -> Term<'_> {
    match engine.compact(Duration::from_millis(idle_ms)) {
        Ok(report) => (atoms::ok(), encode_compact(env, &report)).encode(env),
        Err(err) => error_term(env, &err),
    }
}

#[rustler::nif(schedule = "DirtyIo")]
fn info(env: Env<'_>, engine: EngineArc) -> Term<'_> {
    encode_info(env, &engine.info())
}
