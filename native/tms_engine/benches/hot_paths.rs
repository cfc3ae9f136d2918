//! Micro-benchmarks of the engine's hot paths: a raw batch decoded,
//! logged and buffered; a resolve that hits; a day's chunk encoded and
//! decoded; a 30-day query from rollup tiers; dashboard PromQL over flushed
//! histogram buckets. `cargo bench
//! --no-default-features` in native/tms_engine.

// A benchmark that cannot set up should stop loudly.
#![allow(clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tms_engine::engine::{Config, Engine, FlushScope, OnDamage, QuerySpec};
use tms_engine::ingest::{Format, ImportOptions};
use tms_engine::promql;
use tms_engine::query::Agg;
use tms_engine::rollup::Tier;
use tms_engine::storage::chunk;

fn raw_batch(ids: &[u64], t0: i64) -> Vec<u8> {
    let mut raw = Vec::with_capacity(10_000 * 24);
    for i in 0..10 {
        for (n, &id) in ids.iter().enumerate() {
            raw.extend_from_slice(&id.to_le_bytes());
            raw.extend_from_slice(&(t0 + i * 10_000 + n as i64 % 7).to_le_bytes());
            raw.extend_from_slice(&((n % 100) as f64 / 4.0).to_bits().to_le_bytes());
        }
    }
    raw
}

/// A scratch engine that never refuses a write for buffered points, in a
/// directory that lives as long as the returned guard.
fn unbounded_engine() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        max_buffered_points: u64::MAX,
        ..Config::scratch()
    };
    let engine = Engine::open(dir.path(), config).expect("open");
    (dir, engine)
}

fn engine_paths(c: &mut Criterion) {
    let (_dir, engine) = unbounded_engine();
    let hosts: Vec<String> = (0..1000).map(|h| format!("host_{h}")).collect();
    let ids: Vec<u64> = hosts
        .iter()
        .map(|h| {
            engine
                .resolve(
                    "cpu",
                    &mut [("hostname", h.as_str()), ("region", "eu-west-1")],
                )
                .expect("resolve")
        })
        .collect();

    let mut group = c.benchmark_group("write");
    group.throughput(Throughput::Elements(10_000));
    let mut round = 0i64;
    group.bench_function("write_raw 10k points (validate, WAL append, buffer)", |b| {
        b.iter_batched(
            || {
                round += 1;
                raw_batch(&ids, round * 100_000)
            },
            |raw| engine.write_raw(black_box(&raw)).expect("write"),
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
    engine.flush(FlushScope::All).expect("flush");

    c.bench_function("resolve hit (10 labels)", |b| {
        let mut labels = vec![
            ("arch", "x64"),
            ("datacenter", "eu-west-1a"),
            ("environment", "production"),
            ("hostname", "host_42"),
            ("os", "debian-12"),
            ("rack", "5"),
            ("region", "eu-west-1"),
            ("service", "api"),
            ("service_version", "2"),
            ("team", "core"),
        ];
        engine.resolve("mem", &mut labels).expect("create");
        b.iter(|| {
            engine
                .resolve(black_box("mem"), black_box(&mut labels))
                .expect("hit")
        })
    });
}

/// One real node_exporter scrape (the ExUnit golden fixture) imported
/// again and again at later timestamps: every series known after the
/// first round, as for a steady scraper.
fn import_paths(c: &mut Criterion) {
    let (_dir, engine) = unbounded_engine();
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../test/fixtures/node_exporter_1.5.prom"
    ))
    .expect("fixture");
    let samples = body
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty() && l[0] != b'#')
        .count();
    let mut opts = ImportOptions {
        labels: vec![("instance".into(), "host_1:9100".into())],
        default_ts: 1_700_000_000_000,
        max_decompressed: 1 << 26,
        rename_clashing: false,
    };
    let mut group = c.benchmark_group("import");
    group.throughput(Throughput::Elements(samples as u64));
    group.bench_function("prometheus text, node_exporter body, known series", |b| {
        b.iter(|| {
            opts.default_ts += 2_000;
            engine
                .import(Format::PrometheusText, black_box(&body), &opts)
                .expect("import")
        })
    });
    let body = remote_write_body(2_000);
    group.throughput(Throughput::Elements(2_000));
    group.bench_function(
        "remote_write, 2,000 series of 9 labels, known series",
        |b| {
            b.iter(|| {
                engine
                    .import(Format::RemoteWrite, black_box(&body), &opts)
                    .expect("import")
            })
        },
    );
    group.finish();
}

/// A snappy-compressed WriteRequest of `series` series shaped like
/// node_exporter's (9 labels), one sample each, as Prometheus sends them.
fn remote_write_body(series: usize) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, number: u8, bytes: &[u8]) {
        out.push(number << 3 | 2);
        let mut len = bytes.len();
        while len >= 0x80 {
            out.push(len as u8 | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend_from_slice(bytes);
    }
    let mut request = Vec::new();
    for i in 0..series {
        let mut ts = Vec::new();
        let labels = [
            ("__name__", format!("node_metric_{}", i % 300)),
            ("cpu", (i % 8).to_string()),
            ("device", format!("dev{}", i / 300)),
            ("env", "production".to_string()),
            ("host", "h1".to_string()),
            ("instance", "10.0.0.1:9100".to_string()),
            ("job", "node".to_string()),
            ("mode", "idle".to_string()),
            ("region", "eu-west-1".to_string()),
        ];
        for (k, v) in labels {
            let mut label = Vec::new();
            field(&mut label, 1, k.as_bytes());
            field(&mut label, 2, v.as_bytes());
            field(&mut ts, 1, &label);
        }
        let mut sample = vec![0x09];
        sample.extend_from_slice(&(i as f64 * 1.5).to_le_bytes());
        sample.push(0x10);
        let mut t = 1_700_000_000_000u64 + i as u64;
        while t >= 0x80 {
            sample.push(t as u8 | 0x80);
            t >>= 7;
        }
        sample.push(t as u8);
        field(&mut ts, 2, &sample);
        field(&mut request, 1, &ts);
    }
    snap::raw::Encoder::new()
        .compress_vec(&request)
        .expect("snappy")
}

fn chunk_paths(c: &mut Criterion) {
    let day: Vec<(i64, f64)> = (0..8640)
        .map(|i| {
            (
                1_700_000_000_000 + i * 10_000 + (i * 7919 % 51) - 25,
                ((i * 37 % 1000) as f64 / 100.0).round(),
            )
        })
        .collect();
    let (ts, values): (Vec<i64>, Vec<f64>) = day.iter().copied().unzip();
    let encoded_ts = chunk::encode_timestamps(&ts, 8).expect("encode");
    let encoded_values = chunk::encode_values(&values, 8).expect("encode");
    let mut group = c.benchmark_group("chunk");
    group.throughput(Throughput::Elements(day.len() as u64));
    group.bench_function("encode 8,640 points (pco level 8)", |b| {
        b.iter(|| {
            (
                chunk::encode_timestamps(black_box(&ts), 8),
                chunk::encode_values(black_box(&values), 8),
            )
        })
    });
    group.bench_function("decode 8,640 points", |b| {
        b.iter(|| {
            let ts = chunk::decode_timestamps(black_box(&encoded_ts), day.len()).expect("ts");
            let values = chunk::decode_values(black_box(&encoded_values), day.len());
            chunk::zip(&ts, values.expect("values"))
        })
    });
    group.finish();
}

/// 50 series over 30 closed days (a point a minute) with tiers of 5 min and
/// 1 h, compacted; then the 30 days at a 1 h step, `avg` of all 50 in one
/// line, read from the 1 h tier (720 rows a series), with its rows cached
/// (hot) and not.
fn rollup_paths(c: &mut Criterion) {
    const DAY: i64 = 86_400_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let tiers = [300_000, 3_600_000].map(|resolution| Tier {
        resolution,
        retention: None,
    });
    let config = Config {
        max_buffered_points: u64::MAX,
        rollups: tiers.to_vec(),
        ..Config::scratch()
    };
    let engine = Engine::open(dir.path(), config.clone()).expect("open");
    let hosts: Vec<String> = (0..50).map(|h| format!("host_{h}")).collect();
    let ids: Vec<u64> = hosts
        .iter()
        .map(|h| {
            engine
                .resolve("cpu", &mut [("hostname", h.as_str())])
                .expect("resolve")
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let from = (now / DAY - 31) * DAY;
    for day in 0..30 {
        let mut raw = Vec::with_capacity(1440 * ids.len() * 24);
        for minute in 0..1440 {
            let ts = from + day * DAY + minute * 60_000;
            for (n, &id) in ids.iter().enumerate() {
                raw.extend_from_slice(&id.to_le_bytes());
                raw.extend_from_slice(&ts.to_le_bytes());
                let v = ((minute * 7 + n as i64) % 100) as f64 / 4.0;
                raw.extend_from_slice(&v.to_bits().to_le_bytes());
            }
        }
        engine.write_raw(&raw).expect("write");
        engine.flush(FlushScope::All).expect("flush");
    }
    engine.compact(std::time::Duration::ZERO).expect("compact");
    let spec = QuerySpec {
        step: Some(3_600_000),
        agg: Some(Agg::Avg),
        group_by: Some(Vec::new()),
        on_damage: OnDamage::Skip,
    };
    let to = from + 30 * DAY - 1;
    c.bench_function("30 days, 1 h step, avg of 50 series, 1 h tier, hot", |b| {
        b.iter(|| {
            engine
                .query("cpu", &[], from, to, black_box(&spec))
                .expect("query")
        })
    });
    drop(engine);
    // Uncached: a store just opened (the OS page cache stays warm).
    let reopen = || Engine::open(dir.path(), config.clone()).expect("reopen");
    c.bench_function(
        "30 days, 1 h step, avg of 50 series, 1 h tier, uncached",
        |b| {
            b.iter_batched(
                reopen,
                |engine| {
                    let answer = engine.query("cpu", &[], from, to, black_box(&spec));
                    (answer.expect("query"), engine)
                },
                criterion::BatchSize::PerIteration,
            )
        },
    );
}

/// 20 hosts' request-duration histograms (4 handlers x 10 buckets, 800
/// series), scraped every 2 s for 40 minutes and flushed, as
/// `bench/promql.exs` has the real scrape; range queries over the last hour
/// at a 15 s step, the chunks cached (the queries repeat).
fn promql_paths(c: &mut Criterion) {
    let (_dir, engine) = unbounded_engine();
    let les = [
        "0.1", "0.2", "0.4", "1", "3", "8", "20", "60", "120", "+Inf",
    ];
    let mut raw = Vec::new();
    let (scrapes, every) = (1200i64, 2_000i64);
    for host in 0..20 {
        let host = format!("host_{host}");
        for handler in ["/api/v1/query", "/api/v1/write", "/metrics", "/-/ready"] {
            for (b, le) in les.iter().enumerate() {
                let id = engine
                    .resolve(
                        "http_request_duration_seconds_bucket",
                        &mut [("handler", handler), ("host", host.as_str()), ("le", le)],
                    )
                    .expect("resolve");
                for t in 0..scrapes {
                    // Cumulative counts: each bucket holds more than the last.
                    let v = (t * (b as i64 + 1) + t / 7) as f64;
                    raw.extend_from_slice(&id.to_le_bytes());
                    raw.extend_from_slice(&(t * every + 7).to_le_bytes());
                    raw.extend_from_slice(&v.to_bits().to_le_bytes());
                }
            }
        }
    }
    engine.write_raw(&raw).expect("write");
    engine.flush(FlushScope::All).expect("flush");
    let end = scrapes * every;
    let steps = (end - 3_600_000, end, 15_000);
    let options = promql::Options::default();
    let mut group = c.benchmark_group("promql");
    for (name, query) in [
        (
            "histogram_quantile of a sum by le of rates, 800 series",
            "histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[1m])))",
        ),
        (
            "sum by handler of rates, 800 series",
            "sum by (handler) (rate(http_request_duration_seconds_bucket[1m]))",
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                promql::range(
                    &engine,
                    black_box(query),
                    steps.0,
                    steps.1,
                    steps.2,
                    &options,
                )
                .expect("query")
            })
        });
    }
    group.finish();
}

/// Prometheus' JSON of the largest answer `bench/promql.exs` asks for: a
/// `{__name__=~...}` selector of 1,000 series over an hour at a 15 s step
/// (about 4.3 MB), whole byte gauges and fractional values half and half.
fn json_paths(c: &mut Criterion) {
    let start = 1_795_422_716_084i64;
    let matrix: Vec<promql::RangeSeries> = (0..1000)
        .map(|i| promql::RangeSeries {
            labels: vec![
                ("__name__".into(), format!("node_memory_{}_bytes", i % 50)),
                ("host".into(), format!("host_{}", i / 50)),
                ("instance".into(), "127.0.0.1:9100".into()),
                ("job".into(), "node".into()),
            ],
            points: (0..240)
                .map(|k| {
                    let v = if i % 2 == 0 {
                        (8_123_456_512 + 4096 * k) as f64
                    } else {
                        0.137 * (k + i) as f64
                    };
                    (start + 15_000 * k, v)
                })
                .collect(),
        })
        .collect();
    let value = promql::QueryValue::Matrix(matrix);
    c.bench_function("promql/json of 1,000 series x 240 points", |b| {
        b.iter(|| promql::json::success(black_box(&value)))
    });
}

criterion_group!(
    benches,
    engine_paths,
    import_paths,
    chunk_paths,
    rollup_paths,
    promql_paths,
    json_paths
);
criterion_main!(benches);
