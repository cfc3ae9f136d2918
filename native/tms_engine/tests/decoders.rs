//! Every decoder of on-disk bytes fails cleanly, never panics, on random
//! and on mutated input: segment files, chunks, WAL segments, the registry
//! and the retention file.

// Test code: a failed step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::path::Path;

use proptest::prelude::*;
use tms_engine::engine::FlushScope;
use tms_engine::registry::Registry;
use tms_engine::storage::{chunk, segment};
use tms_engine::{retention, wal};

/// Valid files of each kind, written by a real engine, to mutate.
fn valid_files() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    let ids = common::series(&engine, 3);
    let entries: Vec<_> = ids
        .iter()
        .flat_map(|&id| (0..50).map(move |t| (id, t * 7, t as f64 / 3.0)))
        .collect();
    engine.write_raw(&common::raw(&entries)).unwrap();
    engine.flush(FlushScope::All).unwrap();
    engine.write_raw(&common::raw(&entries[..10])).unwrap();
    let segment = fs::read(dir.path().join("chunks/0/00000000000000000001.seg")).unwrap();
    let registry = fs::read(dir.path().join("registry.tms")).unwrap();
    let (_, wal_path) = wal::segments(&dir.path().join("wal"))
        .unwrap()
        .pop()
        .unwrap();
    (segment, registry, fs::read(wal_path).unwrap())
}

fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(at, kind, value) in edits {
        if bytes.is_empty() {
            break;
        }
        let at = at % bytes.len();
        match kind % 3 {
            0 => bytes[at] ^= value | 1,
            1 => bytes.truncate(at),
            _ => bytes.insert(at, value),
        }
    }
    bytes
}

fn decode_all(dir: &Path, segment_bytes: &[u8], registry_bytes: &[u8], wal_bytes: &[u8]) {
    let seg_path = dir.join("x.seg");
    fs::write(&seg_path, segment_bytes).unwrap();
    if let Ok((seg, _)) = segment::open(&seg_path) {
        for i in 0..seg.chunks.len() {
            let _ = seg.read_chunk(i, &mut std::collections::HashMap::new());
        }
    }
    let reg_path = dir.join("registry.tms");
    fs::write(&reg_path, registry_bytes).unwrap();
    let _ = Registry::load(&reg_path);
    let _ = retention::load(&reg_path);
    let wal_dir = dir.join("wal");
    fs::create_dir_all(&wal_dir).unwrap();
    fs::write(wal_dir.join("00000000000000000001.wal"), wal_bytes).unwrap();
    let _ = wal::replay(&wal_dir, |_, _| Ok(()));
    let half = segment_bytes.len() / 2;
    let _ = chunk::decode_timestamps(&segment_bytes[..half], 10);
    let _ = chunk::decode_values(&segment_bytes[half..], 10);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_bytes_never_panic(a in proptest::collection::vec(any::<u8>(), 0..600),
                                b in proptest::collection::vec(any::<u8>(), 0..600),
                                c in proptest::collection::vec(any::<u8>(), 0..600)) {
        let dir = tempfile::tempdir().unwrap();
        decode_all(dir.path(), &a, &b, &c);
    }

    #[test]
    fn mutated_files_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..6)) {
        let (segment, registry, wal_bytes) = valid_files();
        let dir = tempfile::tempdir().unwrap();
        decode_all(
            dir.path(),
            &mutate(segment, &edits),
            &mutate(registry, &edits),
            &mutate(wal_bytes, &edits),
        );
    }
}
