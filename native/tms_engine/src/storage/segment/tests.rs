use super::*;

/// Reads chunk `index`, decoding its column afresh.
fn read(seg: &Segment, index: usize) -> Result<Vec<Point>> {
    seg.read_chunk(index, &mut HashMap::new())
}

/// Series 0 and 1 share timestamps, 2 has its own, 3 misses one of 0's.
fn runs() -> Vec<Vec<Point>> {
    let shared: Vec<i64> = (0..100).map(|i| i * 1000 + i % 7).collect();
    vec![
        shared.iter().map(|&t| (t, 1.5)).collect(),
        shared.iter().map(|&t| (t, t as f64 / 4.0)).collect(),
        (0..100).map(|i| (i * 1000 + 2, f64::NAN)).collect(),
        shared[1..].iter().map(|&t| (t, -0.0)).collect(),
    ]
}

fn sample(dir: &Path) -> (PathBuf, Vec<Vec<Point>>) {
    let runs = runs();
    // Listed out of series order: the table sorts them.
    let input: Vec<(SeriesId, &[Point])> = runs
        .iter()
        .enumerate()
        .rev()
        .map(|(s, p)| (s as u64, p.as_slice()))
        .collect();
    let input = SegmentInput::encode(&input, 4, 2).unwrap();
    let path = crate::layout::Layout::new(dir).segment(3, 9);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    write(&path, 9, 3, input).unwrap();
    (path, runs)
}

fn bits(points: &[Point]) -> Vec<(i64, u64)> {
    points.iter().map(|&(t, v)| (t, v.to_bits())).collect()
}

#[test]
fn open_reads_the_tables_only_and_chunks_decode_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (path, runs) = sample(dir.path());
    let (seg, read_bytes) = open(&path).unwrap();
    assert_eq!((seg.seq, seg.partition, seg.format), (9, 3, Format::V2));
    assert_eq!((seg.columns.len(), seg.chunks.len()), (3, 4));
    assert_eq!(read_bytes, (format::HEADER_LEN + 3 * 28 + 4 * 20) as u64);
    assert!(read_bytes < seg.file_bytes);
    for (i, run) in runs.iter().enumerate() {
        let meta = seg.chunks[i];
        assert_eq!(meta.series, i as u64);
        assert_eq!((meta.min_ts, meta.max_ts), (run[0].0, run[run.len() - 1].0));
        assert_eq!(meta.count as usize, run.len());
        assert_eq!(bits(&read(&seg, i).unwrap()), bits(run));
    }
    assert_eq!(
        seg.column_of(0),
        seg.column_of(1),
        "identical timestamps share"
    );
    assert_ne!(seg.column_of(0), seg.column_of(2));
    assert_ne!(
        seg.column_of(0),
        seg.column_of(3),
        "one timestamp fewer does not"
    );
}

#[test]
fn a_column_shared_by_many_series_is_stored_once() {
    let ts: Vec<i64> = (0..720).map(|i| i * 2000 + (i * 37) % 50).collect();
    let runs: Vec<Vec<Point>> = (0..500)
        .map(|s| ts.iter().map(|&t| (t, (s % 3) as f64)).collect())
        .collect();
    let refs: Vec<(SeriesId, &[Point])> = runs
        .iter()
        .enumerate()
        .map(|(s, p)| (s as u64, p.as_slice()))
        .collect();
    let input = SegmentInput::encode(&refs, 8, 2).unwrap();
    assert_eq!(input.columns.len(), 1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.seg");
    let seg = write(&path, 1, 0, input).unwrap();
    let one_column = seg.columns[0].len as usize;
    assert!(
        (seg.file_bytes as usize) < one_column + 500 * 60,
        "{} bytes for 500 series of one column of {one_column} bytes",
        seg.file_bytes
    );
    let (seg, _) = open(&path).unwrap();
    assert_eq!(read(&seg, 499).unwrap(), runs[499]);
}

#[test]
fn a_damaged_column_fails_every_chunk_that_uses_it_and_only_those() {
    let dir = tempfile::tempdir().unwrap();
    let (path, runs) = sample(dir.path());
    let (seg, _) = open(&path).unwrap();
    let shared = seg.column_of(0).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[seg.columns[shared].offset as usize + 1] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let (seg, _) = open(&path).unwrap();
    for (i, run) in runs.iter().enumerate() {
        match read(&seg, i) {
            Err(EngineError::CorruptData { reason, .. }) if i < 2 => {
                assert!(reason.contains("column"), "{reason}");
            }
            Ok(points) if i >= 2 => assert_eq!(bits(&points), bits(run)),
            other => panic!("chunk {i}: {other:?}"),
        }
    }
}

#[test]
fn every_flipped_byte_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = sample(dir.path());
    assert_every_flip_caught(&path);
}

#[test]
fn every_flipped_byte_of_a_format_1_file_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.seg");
    std::fs::write(&path, V1_FILE).unwrap();
    let (seg, _) = open(&path).unwrap();
    assert_eq!((seg.format, seg.chunks.len()), (Format::V1, 8));
    assert!(read(&seg, 0).is_ok());
    assert_every_flip_caught(&path);
}

/// A file the format-1 code wrote (the fixture store's, tests/formats.rs).
const V1_FILE: &[u8] =
    include_bytes!("../../../tests/fixtures/store_v1/chunks/1/00000000000000000003.seg");

fn assert_every_flip_caught(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x04;
        std::fs::write(path, &bad).unwrap();
        let caught = match open(path) {
            Err(_) => true,
            Ok((seg, _)) => (0..seg.chunks.len()).any(|c| read(&seg, c).is_err()),
        };
        assert!(caught, "flip at byte {i} went unnoticed");
    }
    std::fs::write(path, &bytes).unwrap();
}

#[test]
fn truncation_or_growth_at_any_point_is_corruption_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = sample(dir.path());
    let bytes = std::fs::read(&path).unwrap();
    for cut in 0..bytes.len() {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        if let Ok((seg, _)) = open(&path) {
            assert!((0..seg.chunks.len()).any(|c| read(&seg, c).is_err()));
        }
    }
    let mut longer = bytes.clone();
    longer.push(0);
    std::fs::write(&path, &longer).unwrap();
    assert!(matches!(open(&path), Err(EngineError::CorruptData { .. })));
}

#[test]
fn a_newer_format_is_refused_by_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = sample(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&3u32.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    assert!(
        matches!(open(&path), Err(EngineError::CorruptData { .. })),
        "a changed version without its checksum is damage"
    );
    let crc = crc32fast::hash(&bytes[..40]);
    bytes[40..44].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        open(&path),
        Err(EngineError::UnsupportedVersion {
            found: 3,
            supported: 2,
            ..
        })
    ));
}

#[test]
fn an_empty_run_is_refused() {
    let points: Vec<Point> = Vec::new();
    assert!(SegmentInput::encode(&[(1, &points)], 4, 1).is_err());
}
