//! Compaction: merged partitions keep every point, racing queries read the merge.

// Test code: a failed step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;

use common::{open, points, raw, series};
use tms_engine::engine::FlushScope;

#[test]
fn compaction_merges_a_closed_partition_and_keeps_every_point() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let ids = series(&engine, 3);
    for round in 0..5i64 {
        let entries: Vec<_> = ids
            .iter()
            .map(|&id| (id, round * 10, round as f64))
            .collect();
        engine.write_raw(&raw(&entries)).unwrap();
        // An overwrite of an older point: the newest segment must win.
        engine
            .write_raw(&raw(&[(ids[0], 0, 100.0 + round as f64)]))
            .unwrap();
        engine.flush(FlushScope::All).unwrap();
    }
    engine.write_raw(&raw(&[(ids[1], 1500, 7.0)])).unwrap();
    let before: Vec<_> = ids.iter().map(|&id| points(&engine, id)).collect();
    assert_eq!(engine.info().segments, 5);

    let report = engine.compact(std::time::Duration::ZERO).unwrap();
    assert_eq!((report.partitions, report.segments_merged), (1, 5));
    assert!(report.unremoved.is_empty());
    assert!(report.bytes_after < report.bytes_before);
    let info = engine.info();
    assert_eq!((info.segments, info.chunks), (1, 3));
    assert_eq!(
        fs::read_dir(dir.path().join("chunks/0")).unwrap().count(),
        1
    );
    let after: Vec<_> = ids.iter().map(|&id| points(&engine, id)).collect();
    assert_eq!(before, after);
    assert_eq!(after[0][0], (0, 104.0f64.to_bits()));

    // Partition 1 still has a buffer: it is not closed, so it is left alone.
    engine.flush(FlushScope::All).unwrap();
    engine.write_raw(&raw(&[(ids[1], 1600, 8.0)])).unwrap();
    engine.flush(FlushScope::All).unwrap();
    engine.write_raw(&raw(&[(ids[1], 1700, 9.0)])).unwrap();
    assert_eq!(
        engine
            .compact(std::time::Duration::ZERO)
            .unwrap()
            .partitions,
        0
    );
    drop(engine);
    let engine = open(dir.path());
    let reopened: Vec<_> = ids.iter().map(|&id| points(&engine, id)).collect();
    assert_eq!(reopened[0], after[0]);
    assert_eq!(reopened[1].len(), after[1].len() + 2);
}

#[test]
fn a_query_racing_compaction_reads_the_merged_segment() {
    let dir = tempfile::tempdir().unwrap();
    let engine = std::sync::Arc::new(open(dir.path()));
    let ids = series(&engine, 50);
    let mut expected = 0;
    for round in 0..20i64 {
        let entries: Vec<_> = ids.iter().map(|&id| (id, round, 1.0)).collect();
        engine.write_raw(&raw(&entries)).unwrap();
        engine.flush(FlushScope::All).unwrap();
        expected += 1;
    }
    let reader = {
        let engine = std::sync::Arc::clone(&engine);
        std::thread::spawn(move || {
            for _ in 0..200 {
                for id in 0..50 {
                    assert_eq!(
                        engine.read_series(id, i64::MIN, i64::MAX).unwrap().len(),
                        expected
                    );
                }
            }
        })
    };
    for _ in 0..10 {
        engine.compact(std::time::Duration::ZERO).unwrap();
        let entries: Vec<_> = ids.iter().map(|&id| (id, 0, 1.0)).collect();
        engine.write_raw(&raw(&entries)).unwrap();
        engine.flush(FlushScope::All).unwrap();
    }
    reader.join().unwrap();
}

#[test]
fn compaction_and_retention_keep_timestamp_columns_shared() {
    use std::collections::BTreeMap;
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    // Three scrape targets of five series each; a target's series share
    // timestamps, which jitter differently per target.
    let ids = series(&engine, 15);
    let mut model: BTreeMap<u64, Vec<(i64, u64)>> = BTreeMap::new();
    for round in 0..3i64 {
        let mut entries = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            let target = i as i64 / 5;
            for k in 0..30 {
                let ts = (round * 30 + k) * 10 + (k * 7 + target) % 5;
                // Series 5 misses one scrape: a column of its own.
                if i == 5 && round == 1 && k == 3 {
                    continue;
                }
                let value = if i % 2 == 0 {
                    1.0
                } else {
                    (ts * i as i64) as f64
                };
                entries.push((id, ts, value));
            }
        }
        engine.write_raw(&raw(&entries)).unwrap();
        engine.flush(FlushScope::All).unwrap();
        for &(id, ts, v) in &entries {
            model.entry(id).or_default().push((ts, v.to_bits()));
        }
    }
    let flushed = common::segment_files(dir.path(), 0);
    assert_eq!(flushed.len(), 3);
    let (first, _) = tms_engine::storage::segment::open(&flushed[0]).unwrap();
    assert_eq!((first.columns.len(), first.chunks.len()), (3, 15));

    // Retention cuts into the partition: compaction drops those points
    // from every series of a target alike, so they still share.
    engine.delete_before(150, false).unwrap();
    for points in model.values_mut() {
        points.retain(|p| p.0 >= 150);
    }
    engine.compact(std::time::Duration::ZERO).unwrap();
    let merged = common::segment_files(dir.path(), 0);
    assert_eq!(merged.len(), 1);
    let (segment, _) = tms_engine::storage::segment::open(&merged[0]).unwrap();
    assert_eq!((segment.columns.len(), segment.chunks.len()), (4, 15));
    for (&id, expected) in &model {
        assert_eq!(&points(&engine, id), expected, "series {id}");
    }
    drop(engine);
    let engine = open(dir.path());
    for (&id, expected) in &model {
        assert_eq!(
            &points(&engine, id),
            expected,
            "series {id} after reopening"
        );
    }
}
