//! The WAL's tests: appends, rotation and replay through the public
//! surface, torn tails and corrupt frames at every position.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::thread;

use super::frame::FRAME_HEADER_LEN;
use super::*;
use crate::error::EngineError;
use crate::series_key::SeriesKey;

fn point(sid: u64, ts: i64, v: f64) -> Vec<u8> {
    let mut out = Vec::new();
    crate::types::encode_entry(&mut out, sid, ts, v);
    out
}

fn collect(dir: &Path) -> (Vec<(u64, Vec<u8>)>, ReplayReport) {
    let mut seen = Vec::new();
    let report = replay(dir, |seq, rec| {
        if let Record::Points(p) = rec {
            seen.push((seq, p.to_vec()));
        }
        Ok(())
    })
    .unwrap();
    (seen, report)
}

#[test]
fn records_replay_in_order_across_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), SyncMode::Always, 1 << 20).unwrap();
    let key = SeriesKey {
        metric: "m".into(),
        labels: vec![("a".into(), "b".into())].into(),
    };
    assert_eq!(wal.append_series(0, &key).unwrap().seq(), 1);
    drop(wal.append_points(&point(0, 1, 1.0)).unwrap());
    assert_eq!(wal.rotate().unwrap(), 2);
    let ticket = wal.append_points(&point(0, 2, f64::NAN)).unwrap();
    assert_eq!(wal.oldest_pending(), Some(2));
    drop(ticket);
    assert_eq!(wal.oldest_pending(), None);
    drop(wal);

    let mut series = Vec::new();
    let mut points = Vec::new();
    let report = replay(dir.path(), |seq, rec| {
        match rec {
            Record::Series(id, k) => series.push((seq, id, k)),
            Record::Points(p) => points.push((seq, p.to_vec())),
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(series, vec![(1, 0, key)]);
    assert_eq!(
        points,
        vec![(1, point(0, 1, 1.0)), (2, point(0, 2, f64::NAN))]
    );
    assert_eq!(report.records, 3);
    assert_eq!(report.points, 2);
    assert_eq!(report.corrupt_records + report.torn_bytes, 0);

    // A reopened log appends to a new segment after the old ones.
    let wal = Wal::open(dir.path(), SyncMode::Never, 1 << 20).unwrap();
    assert_eq!(wal.active_seq(), 3);
    assert!(wal.remove_below(3).unwrap().is_empty());
    assert_eq!(segments(dir.path()).unwrap().len(), 1);
}

#[test]
fn raw_points_records_of_earlier_versions_replay_beside_packed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), SyncMode::Never, 1 << 20).unwrap();
    let mut old = point(3, -7, 1.5);
    old.extend(point(1, i64::MAX, f64::NAN));
    drop(wal.append(super::record::KIND_POINTS, &[&old]).unwrap());
    let new = point(u64::MAX, i64::MIN, -0.0);
    drop(wal.append_points(&new).unwrap());
    drop(wal);
    let (seen, report) = collect(dir.path());
    let seen: Vec<Vec<u8>> = seen.into_iter().map(|(_, p)| p).collect();
    assert_eq!(seen, vec![old, new]);
    assert_eq!(report.points, 3);
    assert_eq!(report.corrupt_records, 0);
}

#[test]
fn a_torn_tail_is_dropped_quietly_at_every_cut() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), SyncMode::Never, 1 << 20).unwrap();
    drop(wal.append_points(&point(0, 1, 1.0)).unwrap());
    let (_, path) = segments(dir.path()).unwrap().pop().unwrap();
    let first_end = fs::metadata(&path).unwrap().len() as usize;
    drop(wal.append_points(&point(0, 2, 2.0)).unwrap());
    drop(wal);
    let full = fs::read(&path).unwrap();
    for cut in first_end..full.len() {
        fs::write(&path, &full[..cut]).unwrap();
        let (seen, report) = collect(dir.path());
        assert_eq!(seen.len(), 1, "cut at {cut}");
        assert_eq!(report.torn_bytes, (cut - first_end) as u64);
        assert_eq!(report.corrupt_records, 0);
    }
}

#[test]
fn a_corrupt_record_in_the_middle_is_skipped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), SyncMode::Never, 1 << 20).unwrap();
    let mut ends = Vec::new();
    for ts in 0..3 {
        drop(wal.append_points(&point(0, ts, 1.0)).unwrap());
        let (_, path) = segments(dir.path()).unwrap().pop().unwrap();
        ends.push(fs::metadata(&path).unwrap().len() as usize);
    }
    drop(wal);
    let (_, path) = segments(dir.path()).unwrap().pop().unwrap();
    let mut bytes = fs::read(&path).unwrap();
    // A byte of the second record's payload.
    bytes[ends[0] + FRAME_HEADER_LEN + 3] ^= 1;
    fs::write(&path, &bytes).unwrap();
    let (seen, report) = collect(dir.path());
    assert_eq!(seen.len(), 2);
    assert_eq!(report.corrupt_records, 1);
    assert_eq!(report.torn_bytes, 0);
}

#[test]
fn group_commit_serves_concurrent_writers() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Arc::new(Wal::open(dir.path(), SyncMode::Always, 1 << 16).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let wal = Arc::clone(&wal);
            thread::spawn(move || {
                for i in 0..200 {
                    drop(wal.append_points(&point(t, i, 0.0)).unwrap());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    drop(wal);
    let (seen, report) = collect(dir.path());
    assert_eq!(seen.len(), 800);
    assert_eq!(report.corrupt_records, 0);
}

#[test]
fn a_large_batch_is_logged_as_bounded_records_and_replays_whole() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), SyncMode::Never, 1 << 30).unwrap();
    let n = MAX_RECORD_POINTS * 2 + 5;
    let mut raw = Vec::new();
    for i in 0..n as i64 {
        crate::types::encode_entry(&mut raw, 0, i, 1.5);
    }
    drop(wal.append_points(&raw).unwrap());
    wal.stop_appends();
    assert!(matches!(
        wal.append_points(&raw[..24]),
        Err(EngineError::Closed)
    ));
    drop(wal);
    let mut replayed = Vec::new();
    let report = replay(dir.path(), |_, rec| {
        if let Record::Points(p) = rec {
            replayed.extend_from_slice(&p);
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(report.records, 3);
    assert_eq!(replayed, raw);
}
