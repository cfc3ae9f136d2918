//! Imports predict a body's series from the order an earlier body spelled
//! them (src/ingest/sequence.rs). Random runs of bodies that repeat,
//! reorder, drop and add series, from two sources whose extra labels make
//! the same spelling two different series, in two formats, must land every
//! sample in its own series, as a model of the runs says.

// Test code: a failed step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use proptest::prelude::*;
use tms_engine::ingest::{Format, ImportOptions};

const SERIES: usize = 6;

/// A body: its source (0 or 1), whether it is JSON lines, and the series
/// of its lines in order.
type Body = (u8, bool, Vec<usize>);

fn body_text(json: bool, lines: &[usize], ts0: i64) -> Vec<u8> {
    let mut out = String::new();
    for (n, &s) in lines.iter().enumerate() {
        let (ts, value) = (ts0 + n as i64, value_of(ts0, n));
        if json {
            out += &format!(
                "{{\"metric\":{{\"__name__\":\"m\",\"s\":\"{s}\"}},\"values\":[{value}],\"timestamps\":[{ts}]}}\n"
            );
        } else {
            out += &format!("m{{s=\"{s}\"}} {value} {ts}\n");
        }
    }
    out.into_bytes()
}

fn value_of(ts0: i64, line: usize) -> f64 {
    (ts0 / 100) as f64 + line as f64 / 8.0
}

fn run(bodies: &[Body]) {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    let mut model: BTreeMap<(u8, usize), BTreeMap<i64, u64>> = BTreeMap::new();
    for (i, (source, json, lines)) in bodies.iter().enumerate() {
        let ts0 = i as i64 * 100;
        let opts = ImportOptions {
            labels: vec![("instance".into(), format!("src{source}"))],
            default_ts: 0,
            max_decompressed: 1 << 20,
            rename_clashing: false,
        };
        let format = if *json {
            Format::JsonLines
        } else {
            Format::PrometheusText
        };
        let report = engine
            .import(format, &body_text(*json, lines, ts0), &opts)
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_sample_lands_in_its_series(
        bodies in proptest::collection::vec(
            (0..2u8, any::<bool>(), proptest::collection::vec(0..SERIES, 0..9)),
            1..24,
        )
    ) {
        run(&bodies);
    }
}

/// The shapes a scraper sees, spelled out: the same body again, a series
/// dropped, one added, two swapped, another source with the same lines.
#[test]
fn repeated_scrapes_with_changes() {
    let same = vec![0, 1, 2, 3, 4];
    run(&[
        (0, false, same.clone()),
        (0, false, same.clone()),
        (0, false, same.clone()),
        (0, false, vec![0, 1, 3, 4]),
        (0, false, vec![0, 1, 5, 2, 3, 4]),
        (0, false, vec![0, 2, 1, 3, 4]),
        (1, false, same.clone()),
        (1, false, same.clone()),
        (0, true, same.clone()),
        (0, true, same.clone()),
        (0, false, vec![0, 0, 0]),
        (0, false, same),
    ]);
}
