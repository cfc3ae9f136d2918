//! Stores written by earlier segment formats open and read correctly.
//!
//! `tests/fixtures/store_v<N>` is a store written by the code of format N
//! (`write_fixture` below, run with that code). When the format changes,
//! the fixture of the format being replaced is kept and a test reads it.

// Test code: a failed step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::{config, points, raw};
use tms_engine::engine::{Engine, FlushScope};
use tms_engine::types::Point;

/// The fixture's series: `m{s=<i>}` with shared and own timestamps,
/// special floats, and points in two partitions.
fn fixture_points(i: usize) -> Vec<Point> {
    let specials = [
        f64::NAN,
        f64::INFINITY,
        -0.0,
        f64::from_bits(0x7ff0_0000_0000_0002),
    ];
    (0..300i64)
        .map(|k| {
            // Series 0..4 share their timestamps (one scrape target), the
            // others have their own; every series crosses into partition 1.
            let ts = if i < 4 {
                k * 7 + (k % 3)
            } else {
                k * 7 + i as i64
            };
            let v = match k % 50 {
                0 => specials[i % specials.len()],
                _ if i.is_multiple_of(2) => 42.0,
                _ => k as f64 * 0.25 + i as f64,
            };
            (ts, v)
        })
        .collect()
}

const SERIES: usize = 8;

fn write_all(engine: &Engine) -> Vec<u64> {
    let ids: Vec<u64> = (0..SERIES)
        .map(|i| {
            let s = i.to_string();
            engine.resolve("m", &mut [("s", s.as_str())]).unwrap()
        })
        .collect();
    // Two flushes, so partition 1 holds two segments.
    for half in [0..150, 150..300] {
        let entries: Vec<_> = ids
            .iter()
            .enumerate()
            .flat_map(|(i, &id)| {
                fixture_points(i)[half.clone()]
                    .iter()
                    .map(move |&(t, v)| (id, t, v))
                    .collect::<Vec<_>>()
            })
            .collect();
        engine.write_raw(&raw(&entries)).unwrap();
        engine.flush(FlushScope::All).unwrap();
    }
    ids
}

/// Writes a fixture store in the current format to `$TMS_FIXTURE_DIR`.
#[test]
#[ignore = "writes a fixture; run by hand when the segment format changes"]
fn write_fixture() {
    let dir = std::env::var("TMS_FIXTURE_DIR").expect("TMS_FIXTURE_DIR");
    let engine = Engine::open(Path::new(&dir), config()).unwrap();
    write_all(&engine);
    engine.close().unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn expected(i: usize) -> Vec<(i64, u64)> {
    fixture_points(i)
        .into_iter()
        .map(|(t, v)| (t, v.to_bits()))
        .collect()
}

#[test]
fn a_store_of_format_1_opens_reads_and_compacts_into_the_current_format() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store_v1");
    copy_dir(&fixture, dir.path());
    let engine = Engine::open(dir.path(), config()).unwrap();
    let ids: Vec<u64> = (0..SERIES)
        .map(|i| {
            let s = i.to_string();
            engine.resolve("m", &mut [("s", s.as_str())]).unwrap()
        })
        .collect();
    assert_eq!(engine.info().series, SERIES as u64);
    for (i, &id) in ids.iter().enumerate() {
        assert_eq!(points(&engine, id), expected(i), "series {i}");
    }
    // Compaction rewrites the old segments in the current format.
    engine.compact(std::time::Duration::ZERO).unwrap();
    for (i, &id) in ids.iter().enumerate() {
        assert_eq!(
            points(&engine, id),
            expected(i),
            "series {i} after compaction"
        );
    }
    engine.close().unwrap();
    let engine = Engine::open(dir.path(), config()).unwrap();
    for (i, &id) in ids.iter().enumerate() {
        assert_eq!(
            points(&engine, id),
            expected(i),
            "series {i} after reopening"
        );
    }
}
