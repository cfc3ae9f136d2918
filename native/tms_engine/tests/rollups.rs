//! Rollup tiers against raw data: a store with tiers and one without, fed
//! the same random points, late writes and restarts, must answer every
//! bucketed query alike, also after the tiered store deleted its raw data.

// Test code: a failed step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::tiers::{
    answer, fine_tier_kept, now_ms, plain, settle, tiered, twelve_seconds_ago, Answer,
};
use common::{raw, series, Rng};
use tms_engine::engine::{Engine, FlushScope, QuerySpec};
use tms_engine::promql::{self, Options, QueryValue};
use tms_engine::query::Agg;

const SERIES: u64 = 4;
const AGGS: [Agg; 9] = [
    Agg::Avg,
    Agg::Min,
    Agg::Max,
    Agg::Sum,
    Agg::Count,
    Agg::First,
    Agg::Last,
    Agg::Rate,
    Agg::Increase,
];

/// Counters with resets, gauges, the odd NaN. Integers, so that sums are
/// exact in every order and answers can be compared bit for bit, unless
/// `FLOATS` is set for the thread (see the float test).
fn write_random(engines: &[&Engine], rng: &mut Rng, n: usize, from: i64, to: i64) {
    let scale = if FLOATS.get() { 0.37 } else { 1.0 };
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let id = rng.below(SERIES);
        let ts = from + rng.below((to - from) as u64) as i64;
        let v = match rng.below(40) {
            0 => f64::NAN,
            _ if id.is_multiple_of(2) => {
                (ts / 3 + rng.below(5) as i64 - if rng.below(9) == 0 { 900 } else { 0 }) as f64
            }
            _ => rng.below(100) as f64 - 50.0,
        };
        entries.push((id, ts, v * scale));
    }
    for engine in engines {
        engine.write_raw(&raw(&entries)).unwrap();
    }
}

thread_local! {
    static FLOATS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Random bucketed queries: the tiered store answers as the raw one, or,
/// before its raw cutoff, refuses what it cannot answer exactly.
fn compare(tiered: &Engine, plain: &Engine, rng: &mut Rng, what: &str) {
    let cutoff = tiered.info().retention_cutoff;
    for q in 0..60 {
        let step = [10, 20, 60, 120, 180, 7, 600][rng.below(7) as usize];
        let from = rng.below(5600) as i64 - 300;
        let to = from + rng.below(3000) as i64;
        let agg = AGGS[rng.below(9) as usize];
        let grouped = rng.below(3) == 0;
        let got = answer(tiered, from, to, step, agg, grouped);
        let want = answer(plain, from, to, step, agg, grouped).unwrap();
        match got {
            Ok(got) => assert!(
                same(&got, &want, matches!(agg, Agg::Avg | Agg::Sum | Agg::Rate | Agg::Increase)),
                "{what}, query {q}: {from}..{to} step {step} {agg:?} grouped {grouped}:\n{got:?}\n{want:?}"
            ),
            Err(err) => {
                // Only where raw data is gone, for a step no tier serves or
                // an end inside an interval.
                assert!(from < cutoff, "{what}, query {q}: {err}");
                assert!(step % 10 != 0 || (to < cutoff && (to + 1) % 10 != 0), "{what}, query {q}: {err}");
            }
        }
    }
}

/// Equal answers: bit for bit (any NaN equal to any NaN, as arithmetic may
/// give either sign), or for sums of floats to rounding (relative to the
/// size of the values summed, which here is below 10^4), the order in which
/// tier intervals add up being not the order of the points.
fn same(got: &Answer, want: &Answer, summed: bool) -> bool {
    let tolerance = if FLOATS.get() && summed { 1e-12 } else { 0.0 };
    got.len() == want.len()
        && got.iter().zip(want).all(|((la, pa), (lb, pb))| {
            la == lb
                && pa.len() == pb.len()
                && pa.iter().zip(pb).all(|(a, b)| {
                    a.0 == b.0
                        && ((a.1.is_nan() && b.1.is_nan())
                            || a.1.to_bits() == b.1.to_bits()
                            || (a.1 - b.1).abs() <= tolerance * a.1.abs().max(b.1.abs()).max(1e4))
                })
        })
}

/// Random PromQL range functions over both stores: equal where the tiered
/// store can use a tier or still has every raw point; where raw points are
/// gone and no tier serves the windows, an error.
fn compare_promql(tiered: &Engine, plain: &Engine, rng: &mut Rng, what: &str) {
    const FUNCS: [&str; 14] = [
        "rate",
        "increase",
        "delta",
        "avg_over_time",
        "count_over_time",
        "sum_over_time",
        "min_over_time",
        "max_over_time",
        "last_over_time",
        "present_over_time",
        "stddev_over_time",
        "stdvar_over_time",
        "irate",
        "changes",
    ];
    let cutoff = tiered.info().retention_cutoff;
    for q in 0..40 {
        let func = FUNCS[rng.below(FUNCS.len() as u64) as usize];
        let range = [10, 60, 120, 30, 600][rng.below(5) as usize];
        let step = [60, 120, 10, 7][rng.below(4) as usize];
        let mut start = rng.below(5200) as i64;
        if rng.below(4) != 0 {
            start -= start % 60;
        }
        let end = start + step * rng.below(40) as i64;
        let selector = format!("{func}(m[{range}ms])");
        let query = if rng.below(4) == 0 {
            format!("sum({selector})")
        } else {
            selector
        };
        let served = |r: i64| range % r == 0 && step % r == 0 && start % r == 0;
        let tiered_fn = !matches!(func, "irate" | "changes") && served(10);
        if !tiered_fn && start - range < cutoff {
            // Raw points gone under these windows: refused or partial.
            continue;
        }
        let got = promql::range(tiered, &query, start, end, step, &Options::default());
        let want = promql::range(plain, &query, start, end, step, &Options::default()).unwrap();
        let context = format!("{what}, query {q}: {query} {start}..{end} step {step}");
        let (QueryValue::Matrix(got), QueryValue::Matrix(want)) = (got.unwrap(), want) else {
            panic!("{context}: not a matrix");
        };
        let loose = FLOATS.get() || func.starts_with("std");
        let tolerance = if loose { 1e-9 } else { 0.0 };
        let same = got.len() == want.len()
            && got.iter().zip(&want).all(|(a, b)| {
                a.labels == b.labels
                    && a.points.len() == b.points.len()
                    && a.points.iter().zip(&b.points).all(|(x, y)| {
                        x.0 == y.0
                            && ((x.1.is_nan() && y.1.is_nan())
                                || x.1 == y.1
                                || (x.1 - y.1).abs()
                                    <= tolerance * x.1.abs().max(y.1.abs()).max(1e4))
                    })
            });
        if !same {
            let diffs: Vec<_> = got
                .iter()
                .zip(&want)
                .flat_map(|(a, b)| {
                    a.points
                        .iter()
                        .zip(&b.points)
                        .filter(|(x, y)| x != y && !(x.1.is_nan() && y.1.is_nan()))
                })
                .take(5)
                .collect();
            panic!(
                "{context}: {} vs {} series, first differences {diffs:?}",
                got.len(),
                want.len()
            );
        }
    }
    // Where only tiers hold data, what they cannot answer is refused.
    if cutoff > 100 {
        let err = promql::range(
            tiered,
            "irate(m[60ms])",
            0,
            cutoff - 1,
            60,
            &Options::default(),
        );
        assert!(err.is_err(), "{what}: {err:?}");
    }
}

fn run(seed: u64) {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = Engine::open(dir_a.path(), tiered()).unwrap();
    let b = Engine::open(dir_b.path(), plain()).unwrap();
    series(&a, SERIES as usize);
    series(&b, SERIES as usize);
    let mut rng = Rng(seed);
    write_random(&[&a, &b], &mut rng, 3000, 0, 5000);
    settle(&a);
    settle(&b);
    let info = a.info();
    assert_eq!(info.rollups.len(), 2);
    assert_eq!(info.rollups[0].files, 5, "seed {seed}");
    assert!(info.rollups[0].intervals > info.rollups[1].intervals);
    compare(&a, &b, &mut rng, &format!("seed {seed}, built"));
    compare_promql(&a, &b, &mut rng, &format!("seed {seed}, built"));

    // Late writes into closed partitions: their tiers are stale until the
    // next compaction rebuilds them.
    write_random(&[&a, &b], &mut rng, 50, 1000, 3000);
    a.flush(FlushScope::All).unwrap();
    b.flush(FlushScope::All).unwrap();
    compare(&a, &b, &mut rng, &format!("seed {seed}, stale"));
    compare_promql(&a, &b, &mut rng, &format!("seed {seed}, stale"));
    write_random(&[&a, &b], &mut rng, 20, 2000, 2500);
    compare(&a, &b, &mut rng, &format!("seed {seed}, buffered"));
    compare_promql(&a, &b, &mut rng, &format!("seed {seed}, buffered"));
    settle(&a);
    compare(&a, &b, &mut rng, &format!("seed {seed}, rebuilt"));
    compare_promql(&a, &b, &mut rng, &format!("seed {seed}, rebuilt"));

    a.close().unwrap();
    drop(a);
    a = Engine::open(dir_a.path(), tiered()).unwrap();
    compare(&a, &b, &mut rng, &format!("seed {seed}, reopened"));
    compare_promql(&a, &b, &mut rng, &format!("seed {seed}, reopened"));

    // Raw data before the cutoff goes; the tiers answer for it alone.
    let cutoff = 60 * (17 + rng.below(50) as i64);
    a.delete_before(cutoff, true).unwrap();
    compare(
        &a,
        &b,
        &mut rng,
        &format!("seed {seed}, raw deleted before {cutoff}"),
    );
    write_random(&[&a, &b], &mut rng, 30, cutoff, 5000);
    a.flush(FlushScope::All).unwrap();
    compare(
        &a,
        &b,
        &mut rng,
        &format!("seed {seed}, late after deletion"),
    );
    settle(&a);
    compare(
        &a,
        &b,
        &mut rng,
        &format!("seed {seed}, rebuilt after deletion"),
    );
}

#[test]
fn tiers_answer_as_raw_data_does() {
    for seed in 1..=12 {
        run(seed * 7919);
    }
}

#[test]
fn tiers_answer_as_raw_data_does_to_rounding_with_float_values() {
    FLOATS.set(true);
    for seed in 1..=4 {
        run(seed * 104_729);
    }
}

#[test]
fn a_tier_keeps_what_its_retention_says() {
    let base = twelve_seconds_ago();
    let dir = tempfile::tempdir().unwrap();
    let retention = 8_000;
    let engine = Engine::open(dir.path(), fine_tier_kept(retention)).unwrap();
    let id = series(&engine, 1)[0];
    let entries: Vec<_> = (0..10_000)
        .step_by(5)
        .map(|t| (id, base + t, 1.0))
        .collect();
    engine.write_raw(&raw(&entries)).unwrap();
    // The fine tier keeps the partitions (of 1 s) ending within its
    // retention of the compaction's clock, which lies between these two.
    let kept = |now: i64| {
        (1..=10)
            .filter(|p| base + p * 1_000 > now - retention)
            .count() as u64
    };
    let before = kept(now_ms());
    settle(&engine);
    let after = kept(now_ms());
    let info = engine.info();
    assert_eq!(info.rollups[1].files, 10, "ten closed partitions");
    assert!(
        (after..=before).contains(&info.rollups[0].files) && after > 0 && before < 10,
        "{after}..={before}: {:?}",
        info.rollups
    );
    engine.delete_before(base + 10_000, true).unwrap();
    let count = |step| {
        let spec = QuerySpec {
            step: Some(step),
            agg: Some(Agg::Count),
            ..QuerySpec::default()
        };
        let result = engine.query("m", &[], base, base + 9_999, &spec).unwrap();
        result
            .first()
            .map_or(0.0, |r| r.points.iter().map(|p| p.1).sum::<f64>())
    };
    // The coarse tier has every point; the fine one what its retention kept.
    assert_eq!(count(100), 2_000.0);
    let fine = count(10);
    assert!(fine > 0.0 && fine < 2_000.0, "{fine}");
}
