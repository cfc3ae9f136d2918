//! Imports predict a body's series from the order earlier bodies spelled
//! them (src/ingest/sequence.rs), from a body's start or from anywhere in
//! it. Random runs of bodies that repeat, reorder, drop and add series and
//! start anywhere, from two sources whose extra labels make the same
//! spelling two different series, in three formats, must land every
//! sample in its own series, as a model of the runs says.

// Test code: a failed step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use proptest::prelude::*;
use tms_engine::ingest::{Format, ImportOptions};

const SERIES: usize = 40;

/// A body: its source (0 or 1), its format, and the series of its lines
/// in order.
type Body = (u8, Format, Vec<usize>);

fn body(format: Format, lines: &[usize], ts0: i64) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, &s) in lines.iter().enumerate() {
        let (ts, value) = (ts0 + n as i64, value_of(ts0, n));
        match format {
            Format::JsonLines => out.extend(format!(
                "{{\"metric\":{{\"__name__\":\"m\",\"s\":\"{s}\"}},\"values\":[{value}],\"timestamps\":[{ts}]}}\n"
            ).bytes()),
            Format::PrometheusText => out.extend(format!("m{{s=\"{s}\"}} {value} {ts}\n").bytes()),
            Format::RemoteWrite => {
                let label = |k: &str, v: &str| field(1, &[field(1, k.as_bytes()), field(2, v.as_bytes())].concat());
                let mut sample = vec![9];
                sample.extend(value.to_le_bytes());
                sample.push(16);
                sample.extend(varint(ts as u64));
                let series = [label("__name__", "m"), label("s", &s.to_string()), field(2, &sample)].concat();
                out.extend(field(1, &series));
            }
        }
    }
    match format {
        Format::RemoteWrite => snap::raw::Encoder::new().compress_vec(&out).unwrap(),
        _ => out,
    }
}

/// A protobuf field of wire type 2 (length-delimited).
fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![number << 3 | 2];
    out.extend(varint(bytes.len() as u64));
    out.extend(bytes);
    out
}

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

fn value_of(ts0: i64, line: usize) -> f64 {
    (ts0 / 100) as f64 + line as f64 / 8.0
}

fn run(bodies: &[Body]) {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    let mut model: BTreeMap<(u8, usize), BTreeMap<i64, u64>> = BTreeMap::new();
    for (i, (source, format, lines)) in bodies.iter().enumerate() {
        let ts0 = i as i64 * 100;
        let opts = ImportOptions {
            labels: vec![("instance".into(), format!("src{source}"))],
            default_ts: 0,
            max_decompressed: 1 << 20,
            rename_clashing: false,
        };
        let report = engine
            .import(*format, &body(*format, lines, ts0), &opts)
            .unwrap();
        assert_eq!(report.samples, lines.len() as u64);
        for (n, &s) in lines.iter().enumerate() {
            let value = value_of(ts0, n).to_bits();
            model
                .entry((*source, s))
                .or_default()
                .insert(ts0 + n as i64, value);
        }
    }
    for source in 0..2u8 {
        for s in 0..SERIES {
            let (instance, s_value) = (format!("src{source}"), s.to_string());
            let mut labels = [("instance", instance.as_str()), ("s", s_value.as_str())];
            let id = engine.resolve("m", &mut labels).unwrap();
            let want: Vec<(i64, u64)> = model
                .get(&(source, s))
                .map(|points| points.iter().map(|(&t, &v)| (t, v)).collect())
                .unwrap_or_default();
            assert_eq!(common::points(&engine, id), want, "source {source}, s={s}");
        }
    }
}

fn format() -> impl Strategy<Value = Format> {
    prop_oneof![
        Just(Format::PrometheusText),
        Just(Format::JsonLines),
        Just(Format::RemoteWrite),
    ]
}

/// Lines of a body: some random series, or a window of a cycle through
/// every series (as a remote_write queue cuts a stream of scrapes).
fn lines() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        proptest::collection::vec(0..SERIES, 0..9),
        (0..SERIES, 0..3 * SERIES)
            .prop_map(|(start, n)| (start..start + n).map(|i| i % SERIES).collect()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_sample_lands_in_its_series(
        bodies in proptest::collection::vec((0..2u8, format(), lines()), 1..24)
    ) {
        run(&bodies);
    }
}

/// The shapes a scraper sees, spelled out: the same body again, a series
/// dropped, one added, two swapped, another source with the same lines.
#[test]
fn repeated_scrapes_with_changes() {
    let (text, json) = (Format::PrometheusText, Format::JsonLines);
    let same = vec![0, 1, 2, 3, 4];
    run(&[
        (0, text, same.clone()),
        (0, text, same.clone()),
        (0, text, same.clone()),
        (0, text, vec![0, 1, 3, 4]),
        (0, text, vec![0, 1, 5, 2, 3, 4]),
        (0, text, vec![0, 2, 1, 3, 4]),
        (1, text, same.clone()),
        (1, text, same.clone()),
        (0, json, same.clone()),
        (0, json, same.clone()),
        (0, text, vec![0, 0, 0]),
        (0, text, same),
    ]);
}

/// Remote_write bodies cut from a stream of scrapes of every series, each
/// starting wherever the last ended, a series dropped and one added on the
/// way, from both sources.
#[test]
fn windows_of_a_stream() {
    let stream: Vec<usize> = (0..6 * SERIES).map(|i| i % SERIES).collect();
    let mut bodies = Vec::new();
    for (n, window) in stream.chunks(17).enumerate() {
        let mut lines: Vec<usize> = window
            .iter()
            .copied()
            .filter(|&s| n != 5 || s != 3)
            .collect();
        if n == 8 {
            lines.insert(4, 2);
        }
        bodies.push(((n % 2) as u8, Format::RemoteWrite, lines));
    }
    run(&bodies);
}
