//! Torn and corrupt files: what open reads, what it quarantines, what is lost.

// Test code: a failed step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;

use common::{open, points, raw, series};
use tms_engine::engine::{Engine, FlushScope};
use tms_engine::error::EngineError;

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
    // (A segment's 1,000 series share one timestamp column.)
    let tables = 44 + 28 + 20 * 1000;
    for partition in fs::read_dir(dir.path().join("chunks")).unwrap() {
        for file in fs::read_dir(partition.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            let mut bytes = fs::read(&path).unwrap();
            for b in &mut bytes[tables..] {
                *b ^= 0xff;
            }
            fs::write(&path, bytes).unwrap();
        }
    }
    let engine = open(dir.path());
    let info = engine.info();
    assert_eq!(info.chunks, 10_000);
    assert_eq!(info.quarantined_files, 0);
    assert_eq!(info.open_read_bytes, 10 * tables as u64);
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
    // The second record, cut 5 bytes short: a 9-byte frame header and the
    // packed point (id and timestamp deltas of one byte each, 8 value bytes).
    assert_eq!(engine.info().wal_torn_bytes, 9 + 10 - 5);
    assert_eq!(engine.info().wal_corrupt_records, 0);
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
fn a_damaged_chunk_is_skipped_or_an_error_and_compaction_salvages_the_rest() {
    use tms_engine::engine::{OnDamage, QuerySpec};
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let ids = series(&engine, 2);
    let batch: Vec<(u64, i64, f64)> = (0..100)
        .flat_map(|t| ids.iter().map(move |&id| (id, t, 1.0)))
        .collect();
    engine.write_raw(&raw(&batch)).unwrap();
    engine.flush(FlushScope::All).unwrap();
    engine.write_raw(&raw(&[(ids[0], 200, 2.0)])).unwrap();
    engine.flush(FlushScope::All).unwrap();
    // Flip a byte of series 1's values in the first segment.
    let segs = common::segment_files(dir.path(), 0);
    let offset = tms_engine::storage::segment::open(&segs[0])
        .unwrap()
        .0
        .chunks[1]
        .offset;
    let mut bytes = fs::read(&segs[0]).unwrap();
    bytes[offset as usize + 2] ^= 0x5a;
    fs::write(&segs[0], bytes).unwrap();

    let query = |on_damage| {
        let spec = QuerySpec {
            on_damage,
            ..QuerySpec::default()
        };
        engine.query("m", &[], 0, 1_000, &spec)
    };
    let skipped = query(OnDamage::Skip).unwrap();
    assert_eq!(skipped.len(), 1, "series 1 has no readable point");
    assert_eq!(skipped[0].points.len(), 101);
    assert!(matches!(
        query(OnDamage::Fail),
        Err(EngineError::CorruptData { .. })
    ));
    assert_eq!(engine.info().damaged_chunks, 1);
    assert_eq!(engine.take_warnings().len(), 1, "reported once");
    assert!(engine.take_warnings().is_empty());

    let report = engine.compact(std::time::Duration::ZERO).unwrap();
    assert_eq!(
        (report.chunks_lost, report.points_lost, report.quarantined),
        (1, 100, 1)
    );
    assert_eq!(
        fs::read_dir(dir.path().join("quarantine")).unwrap().count(),
        1
    );
    assert_eq!(points(&engine, ids[0]).len(), 101);
    assert!(points(&engine, ids[1]).is_empty());
    let info = engine.info();
    assert_eq!(
        (info.chunks_lost, info.points_lost, info.segments),
        (1, 100, 1)
    );
}

#[test]
fn a_segment_file_deleted_from_under_the_store_is_reported_not_silently_gone() {
    use tms_engine::engine::QuerySpec;
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let ids = series(&engine, 2);
    for (i, &id) in ids.iter().enumerate() {
        engine.write_raw(&raw(&[(id, i as i64, 1.0)])).unwrap();
        engine.flush(FlushScope::All).unwrap();
    }
    let segs = common::segment_files(dir.path(), 0);
    fs::remove_file(&segs[0]).unwrap();
    // While running: the query answers the other series and reports the loss.
    let results = engine
        .query("m", &[], 0, 10, &QuerySpec::default())
        .unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(engine.info().damaged_chunks, 1);
    drop(engine);

    // After a restart the manifest still names the file: reported once.
    let engine = open(dir.path());
    let info = engine.info();
    assert_eq!(info.missing_segments, 1);
    assert!(
        info.problems
            .iter()
            .any(|p| p.contains("listed in the manifest but gone")),
        "{:?}",
        info.problems
    );
    assert_eq!(points(&engine, ids[1]).len(), 1);
    drop(engine);
    assert_eq!(open(dir.path()).info().missing_segments, 0);
}

#[test]
fn a_segment_the_manifest_never_listed_is_a_leftover_moved_to_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let id = series(&engine, 1)[0];
    engine.write_raw(&raw(&[(id, 1, 1.0)])).unwrap();
    engine.flush(FlushScope::All).unwrap();
    let listed = fs::read(dir.path().join("manifest.tms")).unwrap();
    engine.write_raw(&raw(&[(id, 2, 2.0)])).unwrap();
    engine.flush(FlushScope::All).unwrap();
    drop(engine);
    // As if the second flush had crashed after writing its segment and
    // before listing it. (A real crash there keeps the WAL, which a flush
    // releases only after the manifest, so its points replay; this test
    // checks only where the leftover file goes: to quarantine, reported.)
    fs::write(dir.path().join("manifest.tms"), listed).unwrap();
    let engine = open(dir.path());
    assert_eq!(engine.info().segments, 1);
    assert_eq!(
        fs::read_dir(dir.path().join("chunks/0")).unwrap().count(),
        1
    );
    assert_eq!(
        fs::read_dir(dir.path().join("quarantine")).unwrap().count(),
        1
    );
    let info = engine.info();
    assert_eq!((info.missing_segments, info.leftover_segments), (0, 1));
    assert!(info
        .problems
        .iter()
        .any(|p| p.contains("not listed in the manifest")));
    // New segments are numbered past the quarantined one: no name reused.
    engine.write_raw(&raw(&[(id, 3, 3.0)])).unwrap();
    engine.flush(FlushScope::All).unwrap();
    drop(engine);
    let engine = open(dir.path());
    assert_eq!(engine.info().leftover_segments, 0);
    assert_eq!(points(&engine, id).len(), 2);
}

#[test]
fn a_segment_copied_over_another_is_quarantined_not_read_as_that_one() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path());
        let ids = series(&engine, 2);
        for t in [10, 20] {
            engine
                .write_raw(&raw(&[(ids[0], t, 1.0), (ids[1], t, 2.0)]))
                .unwrap();
            engine.flush(FlushScope::All).unwrap();
        }
    }
    let segs = common::segment_files(dir.path(), 0);
    assert_eq!(segs.len(), 2);
    fs::copy(&segs[0], &segs[1]).unwrap();
    let engine = open(dir.path());
    let info = engine.info();
    assert_eq!((info.quarantined_files, info.segments), (1, 1));
    // Only the real first segment answers; nothing is read twice.
    assert_eq!(points(&engine, 0), vec![(10, 1.0f64.to_bits())]);
}
