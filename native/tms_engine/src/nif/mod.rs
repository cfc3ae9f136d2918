//! The only module that speaks Erlang terms: decode arguments, call the
//! engine, encode results. Every NIF returns `Result<T, EngineError>`,
//! which reaches Elixir as `{:ok, value}` or `{:error, {kind, details}}`
//! (error.rs); `Tms` turns the latter into a `Tms.Error`.
//!
//! Scheduling: every function that can touch the disk (open, close, writes,
//! resolve, flush, compaction, retention, info) runs on a dirty I/O
//! scheduler, queries on dirty CPU schedulers. No NIF runs on a normal
//! scheduler: a `write(2)` to the WAL can stall on a busy disk for longer
//! than the 1 ms a normal scheduler may be held, and measured on this
//! machine the dirty hop costs about 1 to 8 microseconds per call, which
//! batching amortizes.

mod decode;
mod encode;
mod error;
mod promql;

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

use rustler::{Binary, Resource, ResourceArc, Term};

use crate::engine::{
    CompactReport, Config, Engine, FlushReport, ImportReport, Info, RetentionReport,
};
use crate::error::{EngineError, Result};
use crate::ingest::ImportOptions;
use crate::types::{SeriesId, POINT_BYTES};
use decode::{
    decode_batch, decode_format, decode_label_name, decode_labels, decode_matchers,
    decode_query_opts, decode_scope, decode_str,
};
use encode::{Answer, LabelSets};

mod atoms {
    rustler::atoms! {
        error, message, nan, infinity, neg_infinity,
        always, never, interval, all, pending, idle,
        op, path, errno, reason, found, supported, id, entry,
        buffered, incoming, limit,
        metric, labels, points, nil, binary, list, skip, line, column,
        prometheus_text, json_lines, remote_write,
        type_ = "type", result, value, scalar, vector, matrix, string,
        lookback_delta, max_samples, timeout, subquery_step, json,
    }
}

#[rustler::resource_impl]
impl Resource for Engine {}

// A NIF's return value must be unwind-safe, and `open` returns the engine.
// The engine keeps its invariants across a panic the NIF wrapper catches:
// its locks are parking_lot's (no poisoning), and no engine code panics at
// all (clippy denies unwrap/expect/panic outside tests).
impl std::panic::RefUnwindSafe for Engine {}

type EngineArc = ResourceArc<Engine>;

#[rustler::nif(schedule = "DirtyIo")]
fn open(path: Term<'_>, config: Term<'_>) -> Result<EngineArc> {
    let path = decode_str(path, "data_dir")?;
    let config: Config = config.decode().map_err(|_| {
        EngineError::invalid("engine options are missing a field or have a wrong type")
    })?;
    Engine::open(Path::new(path), config).map(ResourceArc::new)
}

/// Answers the final flush's report.
#[rustler::nif(schedule = "DirtyIo")]
fn close(engine: EngineArc) -> Result<FlushReport> {
    engine.close()
}

/// A new series is announced in the WAL: a write, so a dirty I/O scheduler.
#[rustler::nif(schedule = "DirtyIo")]
fn resolve(engine: EngineArc, metric: Term<'_>, labels: Term<'_>) -> Result<SeriesId> {
    let metric = decode_str(metric, "metric name")?;
    let mut pairs = Vec::new();
    decode_labels(labels, &mut pairs)?;
    engine.resolve(metric, &mut pairs)
}

/// Writes block on the WAL's `write(2)` (and on fsync with `wal_sync:
/// :always`), which a busy disk can stall for milliseconds: every write
/// runs on a dirty I/O scheduler, never on a normal one. Answers the
/// number of points written.
#[rustler::nif(schedule = "DirtyIo")]
fn write_batch(engine: EngineArc, entries: Term<'_>, default_ts: i64) -> Result<usize> {
    let mut batch = decode_batch(&engine, entries, default_ts)?;
    engine.write_labeled(&mut batch)?;
    Ok(batch.points.len())
}

/// Answers the number of points written.
#[rustler::nif(schedule = "DirtyIo")]
fn write_raw(engine: EngineArc, raw: Term<'_>) -> Result<usize> {
    let raw =
        Binary::from_term(raw).map_err(|_| EngineError::invalid("raw batch must be a binary"))?;
    engine.write_raw(raw.as_slice())?;
    Ok(raw.len() / POINT_BYTES)
}

#[rustler::nif(schedule = "DirtyCpu")]
fn query_range<'a>(
    engine: EngineArc,
    metric: Term<'a>,
    matchers: Term<'a>,
    from: i64,
    to: i64,
    opts: Term<'a>,
) -> Result<Answer<'a>> {
    let metric = decode_str(metric, "metric name")?;
    let matchers = decode_matchers(matchers)?;
    let (spec, binary) = decode_query_opts(opts)?;
    let results = engine.query(metric, &matchers, from, to, &spec)?;
    Ok(Answer {
        metric,
        results,
        binary,
    })
}

/// The series with data in `[from, to]`.
#[rustler::nif(schedule = "DirtyCpu")]
fn series(
    engine: EngineArc,
    metric: Term<'_>,
    matchers: Term<'_>,
    from: i64,
    to: i64,
) -> Result<LabelSets> {
    let metric = decode_str(metric, "metric name")?;
    let matchers = decode_matchers(matchers)?;
    engine
        .select_between(metric, &matchers, from, to)
        .map(LabelSets)
}

#[rustler::nif(schedule = "DirtyCpu")]
fn label_values(engine: EngineArc, metric: Term<'_>, label: Term<'_>) -> Result<Vec<String>> {
    let metric = decode_str(metric, "metric name")?;
    let label: Cow<'_, str> = decode_label_name(label)?;
    engine.label_values(metric, &label)
}

#[rustler::nif(schedule = "DirtyCpu")]
fn metrics(engine: EngineArc) -> Result<Vec<String>> {
    engine.metrics()
}

#[rustler::nif(schedule = "DirtyIo")]
fn flush(engine: EngineArc, scope: Term<'_>) -> Result<FlushReport> {
    engine.flush(decode_scope(scope)?)
}

#[rustler::nif(schedule = "DirtyIo")]
fn delete_before(engine: EngineArc, cutoff: i64, force: bool) -> Result<RetentionReport> {
    engine.delete_before(cutoff, force)
}

#[rustler::nif(schedule = "DirtyIo")]
fn compact(engine: EngineArc, idle_ms: u64) -> Result<CompactReport> {
    engine.compact(Duration::from_millis(idle_ms))
}

/// A whole body in `format` (`:prometheus_text`), parsed and written in
/// one call. The body is borrowed, never copied.
///
/// Parsing is the work here: on a dirty CPU scheduler, of which there are
/// as many as cores, the threads that import keep their caches of
/// spellings warm, where the many dirty I/O threads each held a cold one
/// (`bench/http.exs`, 4 connections: 3.4 -> 4.8 M samples/s for
/// remote_write). Its write(2) to the WAL lands in the page cache; a store
/// that fsyncs every write (`wal_sync: :always`) imports through
/// [`import_synced`] instead, so no CPU scheduler waits on a disk.
#[rustler::nif(schedule = "DirtyCpu")]
fn import(
    engine: EngineArc,
    format: Term<'_>,
    body: Term<'_>,
    opts: Term<'_>,
) -> Result<ImportReport> {
    import_body(&engine, format, body, opts)
}

/// [`import`] for a store that fsyncs every write: on a dirty I/O
/// scheduler, as every other write.
#[rustler::nif(schedule = "DirtyIo")]
fn import_synced(
    engine: EngineArc,
    format: Term<'_>,
    body: Term<'_>,
    opts: Term<'_>,
) -> Result<ImportReport> {
    import_body(&engine, format, body, opts)
}

fn import_body(
    engine: &Engine,
    format: Term<'_>,
    body: Term<'_>,
    opts: Term<'_>,
) -> Result<ImportReport> {
    let format = decode_format(format)?;
    let body =
        Binary::from_term(body).map_err(|_| EngineError::invalid("body must be a binary"))?;
    let opts: ImportOptions = opts.decode().map_err(|_| {
        EngineError::invalid("import options are missing a field or have a wrong type")
    })?;
    engine.import(format, body.as_slice(), &opts)
}

/// Problems noted since the last call, for the caller to log.
#[rustler::nif(schedule = "DirtyCpu")]
fn take_warnings(engine: EngineArc) -> Result<Vec<String>> {
    Ok(engine.take_warnings())
}

/// Reads directory sizes: dirty I/O.
#[rustler::nif(schedule = "DirtyIo")]
fn info(engine: EngineArc) -> Result<Info> {
    Ok(engine.info())
}
