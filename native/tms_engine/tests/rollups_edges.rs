//! Rollup tiers at their edges, each case one an adversarial review found:
//! series whose raw points are all deleted, damaged and truncated tier
//! files, a raw cutoff inside an interval, a restart under tier retention,
//! and timestamps at the bottom of the i64 range.

// Test code: a failed step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::tiers::{answer, fine_tier_kept, plain, settle, tiered, twelve_seconds_ago};
use common::{raw, series};
use tms_engine::engine::{Config, Engine, FlushScope, OnDamage, QuerySpec};
use tms_engine::query::Agg;

/// Two stores, tiered and plain, fed the same entries and settled.
fn pair(dir: &Path, entries: &[(u64, i64, f64)]) -> (Engine, Engine) {
    let a = Engine::open(&dir.join("tiered"), tiered()).unwrap();
    let b = Engine::open(&dir.join("plain"), plain()).unwrap();
    for e in [&a, &b] {
        assert_eq!(series(e, 2), vec![0, 1]);
        e.write_raw(&raw(entries)).unwrap();
        settle(e);
    }
    (a, b)
}

/// Series 0 rising (its value its time), series 1 constant, every 5 ms
/// over two partitions.
fn a_ramp_and_a_constant() -> Vec<(u64, i64, f64)> {
    (0..2400)
        .step_by(5)
        .flat_map(|t| [(0, t, t as f64), (1, t, 2.0)])
        .collect()
}

fn tier_files(dir: &Path, resolution: i64) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(format!("rollups/{resolution}")))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "tier"))
        .collect();
    files.sort();
    files
}

/// Flips a byte near the end of the file: inside the last series' block.
fn damage(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x55;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_series_whose_raw_points_are_all_deleted_keeps_its_rows_through_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let mut entries: Vec<_> = (0..1000).step_by(5).map(|t| (0, t, 1.0)).collect();
    entries.extend((0..2400).step_by(5).map(|t| (1, t, 2.0)));
    let (a, b) = pair(dir.path(), &entries);
    a.delete_before(1020, true).unwrap();
    // A late write into partition 0 makes its tiers stale and rebuilt.
    for e in [&a, &b] {
        e.write_raw(&raw(&[(1, 1101, 2.0)])).unwrap();
        settle(e);
    }
    for agg in [Agg::Count, Agg::Sum, Agg::Max] {
        let got = answer(&a, 0, 1019, 60, agg, false).unwrap();
        assert_eq!(got, answer(&b, 0, 1019, 60, agg, false).unwrap(), "{agg:?}");
        assert_eq!(got.len(), 2, "both series answer: {got:?}");
    }
}

#[test]
fn a_damaged_tier_block_is_answered_from_raw_points_reported_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let entries = a_ramp_and_a_constant();
    let (a, b) = pair(dir.path(), &entries);
    drop(a);
    damage(&tier_files(&dir.path().join("tiered"), 60)[0]);
    let a = Engine::open(&dir.path().join("tiered"), tiered()).unwrap();
    let want = answer(&b, 0, 2399, 60, Agg::Sum, false).unwrap();
    assert_eq!(answer(&a, 0, 2399, 60, Agg::Sum, false).unwrap(), want);
    let info = a.info();
    assert_eq!(info.corrupt_chunk_reads, 1);
    assert!(
        info.problems.iter().any(|p| p.contains("tier file")),
        "{:?}",
        info.problems
    );
    // Failing on damage fails, with the damage's error.
    let strict = QuerySpec {
        step: Some(60),
        agg: Some(Agg::Sum),
        on_damage: OnDamage::Fail,
        ..QuerySpec::default()
    };
    let err = a.query("m", &[], 0, 2399, &strict).unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
    // Compaction rebuilds the damaged file from raw data.
    let report = a.compact(Duration::ZERO).unwrap();
    assert_eq!(report.tiers.built, 1);
    assert!(a.query("m", &[], 0, 2399, &strict).is_ok());
    assert_eq!(answer(&a, 0, 2399, 60, Agg::Sum, false).unwrap(), want);
}

#[test]
fn a_truncated_tier_file_is_quarantined_at_open_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let entries: Vec<_> = (0..2400).step_by(5).map(|t| (0, t, 1.0)).collect();
    let (a, b) = pair(dir.path(), &entries);
    drop(a);
    let file = tier_files(&dir.path().join("tiered"), 10)[0].clone();
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len - 40)
        .unwrap();
    let a = Engine::open(&dir.path().join("tiered"), tiered()).unwrap();
    assert_eq!(a.info().quarantined_files, 1);
    assert_eq!(a.compact(Duration::ZERO).unwrap().tiers.built, 1);
    for step in [10, 60] {
        assert_eq!(
            answer(&a, 0, 2399, step, Agg::Count, false).unwrap(),
            answer(&b, 0, 2399, step, Agg::Count, false).unwrap()
        );
    }
}

#[test]
fn compaction_goes_on_past_a_damaged_tier_block_where_raw_data_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let entries = a_ramp_and_a_constant();
    let (a, _) = pair(dir.path(), &entries);
    a.delete_before(600, true).unwrap();
    drop(a);
    damage(&tier_files(&dir.path().join("tiered"), 60)[0]);
    let a = Engine::open(&dir.path().join("tiered"), tiered()).unwrap();
    a.write_raw(&raw(&[(1, 1101, 2.0)])).unwrap();
    a.flush(FlushScope::All).unwrap();
    a.compact(Duration::ZERO).unwrap();
    a.compact(Duration::ZERO).unwrap();
    // The undamaged series keeps its rows from before the cutoff.
    let got = answer(&a, 0, 599, 60, Agg::Count, false).unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1.len(), 10);
}

#[test]
fn a_raw_cutoff_inside_an_interval_is_answered_from_the_tier_after_a_late_write() {
    let dir = tempfile::tempdir().unwrap();
    let entries: Vec<_> = (0..2400)
        .flat_map(|t| [(0, t, 1.0), (1, t, t as f64)])
        .collect();
    let (a, b) = pair(dir.path(), &entries);
    a.delete_before(1005, true).unwrap();
    for e in [&a, &b] {
        e.write_raw(&raw(&[(1, 1100, 5.0)])).unwrap();
    }
    for (from, step, agg) in [
        (960, 10, Agg::Count),
        (960, 10, Agg::Sum),
        (0, 60, Agg::Max),
    ] {
        assert_eq!(
            answer(&a, from, 1199, step, agg, false).unwrap(),
            answer(&b, from, 1199, step, agg, false).unwrap(),
            "{from} {step} {agg:?}"
        );
    }
}

#[test]
fn rows_hidden_by_a_tier_retention_stay_hidden_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = fine_tier_kept(8_000);
    let base = twelve_seconds_ago();
    let count = |e: &Engine| -> usize {
        answer(e, base, base + 9_999, 10, Agg::Count, false)
            .unwrap()
            .iter()
            .map(|(_, points)| points.len())
            .sum()
    };
    let e = Engine::open(dir.path(), config.clone()).unwrap();
    series(&e, 1);
    let entries: Vec<_> = (0..10_000).step_by(5).map(|t| (0, base + t, 1.0)).collect();
    e.write_raw(&raw(&entries)).unwrap();
    settle(&e);
    e.delete_before(base + 10_000, true).unwrap();
    let before = count(&e);
    assert!(
        before > 0 && before < 1000,
        "the retention hides part of the fine tier: {before}"
    );
    drop(e);
    let e = Engine::open(dir.path(), config).unwrap();
    assert!(
        count(&e) <= before,
        "{} rows after a restart, {before} before",
        count(&e)
    );
}

#[test]
fn timestamps_at_the_bottom_of_the_range_neither_panic_nor_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let open = |name: &str, config: Config| {
        Engine::open(
            &dir.path().join(name),
            Config {
                max_abs_timestamp: i64::MAX,
                ..config
            },
        )
        .unwrap()
    };
    let (a, b) = (open("tiered", tiered()), open("plain", plain()));
    let entries: Vec<_> = (0..600).map(|k| (0, i64::MIN + 1 + 7 * k, 1.0)).collect();
    for e in [&a, &b] {
        series(e, 1);
        e.write_raw(&raw(&entries)).unwrap();
        settle(e);
    }
    for (from, step) in [
        (i64::MIN + 1, 10),
        (i64::MIN + 1, 60),
        (i64::MIN, 7),
        (i64::MIN, 120),
    ] {
        let to = i64::MIN + 4201;
        assert_eq!(
            answer(&a, from, to, step, Agg::Count, false),
            answer(&b, from, to, step, Agg::Count, false),
            "from {from} step {step}"
        );
    }
}

#[test]
fn a_damaged_newest_tier_file_leaves_the_older_one_in_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let entries: Vec<_> = (0..2400).step_by(5).map(|t| (0, t, 1.0)).collect();
    let (a, b) = pair(dir.path(), &entries);
    a.delete_before(1200, true).unwrap();
    drop(a);
    // A newer file of the same partition, as a crash between a rebuild's
    // rename and its clean-up leaves, but damaged in its table.
    let tiered_dir = dir.path().join("tiered");
    let old = tier_files(&tiered_dir, 60)[0].clone();
    let name = old.file_name().unwrap().to_str().unwrap();
    let (partition, seq) = name.trim_end_matches(".tier").rsplit_once('-').unwrap();
    let newer = old.with_file_name(format!(
        "{partition}-{:020}.tier",
        seq.parse::<u64>().unwrap() + 1000
    ));
    let mut bytes = std::fs::read(&old).unwrap();
    bytes[45] ^= 0xff;
    std::fs::write(&newer, bytes).unwrap();
    let a = Engine::open(&tiered_dir, tiered()).unwrap();
    assert_eq!(a.info().quarantined_files, 1);
    assert_eq!(
        answer(&a, 0, 1199, 60, Agg::Count, false).unwrap(),
        answer(&b, 0, 1199, 60, Agg::Count, false).unwrap()
    );
}
