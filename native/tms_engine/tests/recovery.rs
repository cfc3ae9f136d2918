//! Write, close or drop, reopen: what comes back.

// Test code: a failed step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;

use common::{open, points, raw, series};
use tms_engine::engine::{Engine, FlushScope};
use tms_engine::error::EngineError;

#[test]
fn flushed_and_unflushed_points_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let before;
    {
        let engine = open(dir.path());
        let ids = series(&engine, 3);
        engine
            .write_raw(&raw(&[
                (ids[0], 1, 1.0),
                (ids[1], 2, 2.0),
                (ids[2], 1500, 3.0),
            ]))
            .unwrap();
        engine.flush(FlushScope::All).unwrap();
        engine
            .write_raw(&raw(&[(ids[0], 3, 4.0), (ids[2], 2500, 5.0)]))
            .unwrap();
        before = (0..3).map(|id| points(&engine, id)).collect::<Vec<_>>();
        // Dropped without close: the last two points live only in the WAL.
    }
    let engine = open(dir.path());
    let info = engine.info();
    assert_eq!(info.series, 3);
    assert_eq!(info.wal_replayed_points, 2);
    assert_eq!(info.buffered_points, 2);
    let after = (0..3).map(|id| points(&engine, id)).collect::<Vec<_>>();
    assert_eq!(before, after);
    assert_eq!(after[0].len(), 2);
}

#[test]
fn close_flushes_everything_and_leaves_nothing_to_replay() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path());
        let ids = series(&engine, 2);
        engine
            .write_raw(&raw(&[(ids[0], 10, 1.0), (ids[1], 20, 2.0)]))
            .unwrap();
        engine.close().unwrap();
        assert_eq!(
            engine.write_raw(&raw(&[(0, 1, 1.0)])),
            Err(EngineError::Closed)
        );
        assert!(matches!(
            engine.flush(FlushScope::All),
            Err(EngineError::Closed)
        ));
        engine.close().unwrap();
    }
    let engine = open(dir.path());
    let info = engine.info();
    assert_eq!(info.wal_replayed_points, 0);
    assert_eq!(info.segments, 1);
    assert_eq!(points(&engine, 1), vec![(20, 2.0f64.to_bits())]);
}

#[test]
fn last_write_wins_in_buffers_segments_and_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path());
        let id = series(&engine, 1)[0];
        engine
            .write_raw(&raw(&[(id, 5, 1.0), (id, 5, 2.0)]))
            .unwrap();
        assert_eq!(points(&engine, id), vec![(5, 2.0f64.to_bits())]);
        engine.flush(FlushScope::All).unwrap();
        engine.write_raw(&raw(&[(id, 5, 3.0)])).unwrap();
        assert_eq!(points(&engine, id), vec![(5, 3.0f64.to_bits())]);
        engine.flush(FlushScope::All).unwrap();
        engine
            .write_raw(&raw(&[(id, 5, 4.0), (id, 4, 0.5)]))
            .unwrap();
        assert_eq!(
            points(&engine, id),
            vec![(4, 0.5f64.to_bits()), (5, 4.0f64.to_bits())]
        );
    }
    let engine = open(dir.path());
    assert_eq!(
        points(&engine, 0),
        vec![(4, 0.5f64.to_bits()), (5, 4.0f64.to_bits())]
    );
    engine.flush(FlushScope::All).unwrap();
    drop(engine);
    let engine = open(dir.path());
    assert_eq!(
        points(&engine, 0),
        vec![(4, 0.5f64.to_bits()), (5, 4.0f64.to_bits())]
    );
}

#[test]
fn special_floats_survive_buffers_segments_and_restarts_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let values = [
        f64::NAN,
        f64::from_bits(0x7ff4_0000_0000_0001),
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
    ];
    let expected: Vec<(i64, u64)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (i as i64, v.to_bits()))
        .collect();
    let entries: Vec<(u64, i64, f64)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (0, i as i64, *v))
        .collect();
    {
        let engine = open(dir.path());
        series(&engine, 1);
        engine.write_raw(&raw(&entries)).unwrap();
        assert_eq!(points(&engine, 0), expected);
    }
    let engine = open(dir.path());
    assert_eq!(points(&engine, 0), expected);
    engine.close().unwrap();
    drop(engine);
    let engine = open(dir.path());
    assert_eq!(points(&engine, 0), expected);
}

#[test]
fn a_second_engine_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    assert!(matches!(
        Engine::open(dir.path(), common::config()),
        Err(EngineError::Locked { .. })
    ));
    first.close().unwrap();
    open(dir.path());
}

#[test]
fn open_reads_only_segment_tables_even_with_10_000_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let segment_bytes;
    {
        let engine = open(dir.path());
        let ids = series(&engine, 1000);
        for round in 0..10 {
            let entries: Vec<_> = ids
                .iter()
                .flat_map(|&id| (0..50).map(move |i| (id, round * 1000 + i, i as f64)))
                .collect();
            engine.write_raw(&raw(&entries)).unwrap();
            engine.flush(FlushScope::All).unwrap();
        }
        let info = engine.info();
        assert_eq!(info.chunks, 10_000);
        segment_bytes = info.segment_bytes;
    }
    // Damage every payload byte past the tables: open must not notice.
    for partition in fs::read_dir(dir.path().join("chunks")).unwrap() {
        for file in fs::read_dir(partition.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            let mut bytes = fs::read(&path).unwrap();
            let payload_start = 40 + 48 * 1000;
            for b in &mut bytes[payload_start..] {
                *b ^= 0xff;
            }
            fs::write(&path, bytes).unwrap();
        }
    }
    let engine = open(dir.path());
    let info = engine.info();
    assert_eq!(info.chunks, 10_000);
    assert_eq!(info.quarantined_files, 0);
    assert_eq!(info.open_read_bytes, 10 * (40 + 48 * 1000));
    assert!(info.open_read_bytes < segment_bytes);
    // The damage shows only when a chunk is read, and is counted.
    assert!(matches!(
        engine.read_series(0, 0, 100),
        Err(EngineError::CorruptData { .. })
    ));
    assert_eq!(engine.info().corrupt_chunk_reads, 1);
    assert!(!engine.info().problems.is_empty());
}

#[test]
fn a_corrupt_segment_is_quarantined_and_the_rest_still_answers() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path());
        let ids = series(&engine, 2);
        engine
            .write_raw(&raw(&[(ids[0], 10, 1.0), (ids[1], 10, 2.0)]))
            .unwrap();
        engine.flush(FlushScope::All).unwrap();
        engine.write_raw(&raw(&[(ids[0], 1010, 3.0)])).unwrap();
        engine.flush(FlushScope::All).unwrap();
    }
    let first = dir.path().join("chunks/0/00000000000000000001.seg");
    let mut bytes = fs::read(&first).unwrap();
    bytes[20] ^= 1;
    fs::write(&first, bytes).unwrap();
    fs::write(
        dir.path().join("chunks/0/00000000000000000009.seg.tmp"),
        b"junk",
    )
    .unwrap();

    let engine = open(dir.path());
    let info = engine.info();
    assert_eq!(info.quarantined_files, 1);
    assert_eq!(info.segments, 1);
    assert!(
        info.problems[0].contains("quarantined"),
        "{:?}",
        info.problems
    );
    assert!(dir
        .path()
        .join("quarantine/0-00000000000000000001.seg")
        .exists());
    assert!(!dir
        .path()
        .join("chunks/0/00000000000000000009.seg.tmp")
        .exists());
    assert_eq!(points(&engine, 0), vec![(1010, 3.0f64.to_bits())]);
    assert!(points(&engine, 1).is_empty());
}

#[test]
fn a_corrupt_registry_is_an_error_at_open_not_a_partial_load() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path());
        series(&engine, 5);
        engine.close().unwrap();
    }
    let path = dir.path().join("registry.tms");
    let mut bytes = fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    fs::write(&path, bytes).unwrap();
    assert!(matches!(
        Engine::open(dir.path(), common::config()),
        Err(EngineError::CorruptData { .. })
    ));
}

#[test]
fn series_created_after_the_last_snapshot_come_back_from_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path());
        series(&engine, 2);
        engine.close().unwrap();
    }
    {
        let engine = open(dir.path());
        let ids = series(&engine, 4);
        assert_eq!(ids, vec![0, 1, 2, 3]);
        engine.write_raw(&raw(&[(3, 7, 7.0)])).unwrap();
    }
    let engine = open(dir.path());
    assert_eq!(engine.info().series, 4);
    assert_eq!(points(&engine, 3), vec![(7, 7.0f64.to_bits())]);
    assert_eq!(engine.resolve("m", &mut [("host", "h3")]).unwrap(), 3);
}

#[test]
fn a_torn_wal_tail_loses_only_the_torn_record() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path());
        series(&engine, 1);
        engine.write_raw(&raw(&[(0, 1, 1.0)])).unwrap();
        engine.write_raw(&raw(&[(0, 2, 2.0)])).unwrap();
    }
    let wal = tms_engine::wal::segments(&dir.path().join("wal")).unwrap();
    let (_, newest) = wal.last().unwrap();
    let len = fs::metadata(newest).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(newest)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let engine = open(dir.path());
    assert_eq!(points(&engine, 0), vec![(1, 1.0f64.to_bits())]);
    assert_eq!(engine.info().wal_torn_bytes, 28);
    assert_eq!(engine.info().wal_corrupt_records, 0);
}

#[test]
fn bad_batches_are_rejected_whole() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    series(&engine, 1);
    assert!(matches!(
        engine.write_raw(&[0u8; 25]),
        Err(EngineError::InvalidArgument(_))
    ));
    assert_eq!(
        engine.write_raw(&raw(&[(0, 1, 1.0), (7, 1, 1.0)])),
        Err(EngineError::SeriesNotFound { id: 7, entry: 1 })
    );
    assert!(matches!(
        engine.write_raw(&raw(&[(0, 1, 1.0), (0, i64::MAX, 1.0)])),
        Err(EngineError::InvalidArgument(_))
    ));
    assert!(points(&engine, 0).is_empty());
    assert_eq!(engine.info().buffered_points, 0);
}

#[test]
fn writes_past_the_memory_ceiling_are_refused_until_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let config = tms_engine::engine::Config {
        max_buffered_points: 3,
        ..common::config()
    };
    let engine = Engine::open(dir.path(), config).unwrap();
    series(&engine, 1);
    engine.write_raw(&raw(&[(0, 1, 1.0), (0, 2, 1.0)])).unwrap();
    assert!(matches!(
        engine.write_raw(&raw(&[(0, 3, 1.0), (0, 4, 1.0)])),
        Err(EngineError::Overloaded {
            buffered: 2,
            incoming: 2,
            limit: 3
        })
    ));
    engine.flush(FlushScope::All).unwrap();
    engine.write_raw(&raw(&[(0, 3, 1.0), (0, 4, 1.0)])).unwrap();
    assert_eq!(points(&engine, 0).len(), 4);
}

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
fn delete_before_drops_old_segments_filters_the_rest_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path());
        let id = series(&engine, 1)[0];
        for partition in 0..4i64 {
            engine
                .write_raw(&raw(&[
                    (id, partition * 1000, 1.0),
                    (id, partition * 1000 + 900, 2.0),
                ]))
                .unwrap();
            engine.flush(FlushScope::All).unwrap();
        }
        let report = engine.delete_before(2500).unwrap();
        assert_eq!(report.segments_removed, 2);
        assert!(report.unremoved.is_empty());
        assert_eq!(
            points(&engine, id),
            vec![
                (2900, 2.0f64.to_bits()),
                (3000, 1.0f64.to_bits()),
                (3900, 2.0f64.to_bits())
            ]
        );
        // The cutoff never moves back.
        engine.delete_before(0).unwrap();
        assert_eq!(points(&engine, id).len(), 3);
        assert!(!dir.path().join("chunks/0").exists());
    }
    let engine = open(dir.path());
    assert_eq!(points(&engine, 0).len(), 3);
    assert_eq!(engine.info().segments, 2);
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
fn torn_newest_wal_and_segment_files_lose_only_what_was_torn() {
    let mut rng = common::Rng(7);
    for round in 0..8 {
        let dir = tempfile::tempdir().unwrap();
        {
            let engine = open(dir.path());
            let ids = series(&engine, 4);
            // Older, intact data: flushed in its own partition.
            engine
                .write_raw(&raw(&ids
                    .iter()
                    .map(|&id| (id, 100, 1.0))
                    .collect::<Vec<_>>()))
                .unwrap();
            engine.flush(FlushScope::All).unwrap();
            // The newest segment, in another partition.
            engine
                .write_raw(&raw(&ids
                    .iter()
                    .map(|&id| (id, 1100, 2.0))
                    .collect::<Vec<_>>()))
                .unwrap();
            engine.flush(FlushScope::All).unwrap();
            // Unflushed points, only in the WAL.
            for t in 0..5 {
                engine.write_raw(&raw(&[(ids[0], 2000 + t, 3.0)])).unwrap();
            }
        }
        let newest_segment = dir.path().join("chunks/1/00000000000000000002.seg");
        let (_, newest_wal) = tms_engine::wal::segments(&dir.path().join("wal"))
            .unwrap()
            .pop()
            .unwrap();
        for path in [&newest_segment, &newest_wal] {
            let len = fs::metadata(path).unwrap().len();
            fs::OpenOptions::new()
                .write(true)
                .open(path)
                .unwrap()
                .set_len(rng.below(len))
                .unwrap();
        }
        let engine = open(dir.path());
        let info = engine.info();
        assert_eq!(info.quarantined_files, 1, "round {round}");
        assert_eq!(info.series, 4, "round {round}");
        for id in 0..4 {
            // The older segment is intact whatever was torn.
            assert_eq!(
                engine.read_series(id, 0, 999).unwrap(),
                vec![(100, 1.0)],
                "round {round}"
            );
        }
        // The WAL keeps a prefix of its records: nothing torn is invented.
        let wal_points = engine.read_series(0, 2000, 2999).unwrap();
        assert!(wal_points.len() <= 5);
        assert_eq!(
            wal_points,
            (0..wal_points.len() as i64)
                .map(|t| (2000 + t, 3.0))
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn a_flush_that_cannot_write_keeps_every_point_and_succeeds_once_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let id = series(&engine, 1)[0];
    engine
        .write_raw(&raw(&[(id, 5, 1.0), (id, 1005, 2.0)]))
        .unwrap();
    // Partition 1's directory cannot be created: a file stands in its place.
    fs::write(dir.path().join("chunks/1"), b"in the way").unwrap();
    let err = engine.flush(FlushScope::All).unwrap_err();
    assert!(matches!(err, EngineError::Io { .. }), "{err:?}");
    assert_eq!(engine.info().buffered_points, 1);
    assert_eq!(points(&engine, id).len(), 2);
    fs::remove_file(dir.path().join("chunks/1")).unwrap();
    engine.flush(FlushScope::All).unwrap();
    assert_eq!(engine.info().buffered_points, 0);
    drop(engine);
    let engine = open(dir.path());
    assert_eq!(
        points(&engine, id),
        vec![(5, 1.0f64.to_bits()), (1005, 2.0f64.to_bits())]
    );
    assert_eq!(engine.info().wal_replayed_points, 0);
}
