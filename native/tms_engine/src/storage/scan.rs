//! What a store's segment files are at open, and removing them later.
//!
//! Open lists `chunks/<partition>/`, reads each segment's header and table
//! (never a payload), quarantines a file that fails its checksum, and indexes
//! the rest in sequence order. A corrupt file never aborts the open or hides
//! the others. The manifest (manifest.rs) says which files are live: a listed
//! file that is missing is reported as lost; an unlisted one (a leftover of a
//! flush or compaction interrupted before its manifest, whose points are in
//! the WAL or in listed segments, or a file copied in from outside) is moved
//! to quarantine and reported, never deleted.

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use super::chunk_index::ChunkIndex;
use super::manifest::{self, SegmentId};
use super::segment::{self, Segment};
use crate::error::{io_err, EngineError, Result};
use crate::files::{ensure_dir, parent, remove_stale_tmp, sync_dir};
use crate::layout::Layout;

/// What indexing a directory's segments found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Files moved to quarantine.
    pub quarantined: u64,
    /// Bytes of headers and tables read.
    pub bytes_read: u64,
    /// Files the manifest lists that are gone, and unlisted files moved to
    /// quarantine.
    pub missing: u64,
    pub leftovers: u64,
    /// The highest segment number any file or the manifest names, live or
    /// not: new segments are numbered past it, so none reuses a number.
    pub max_seq: u64,
    /// One line per quarantined or missing file, saying why.
    pub problems: Vec<String>,
}

/// Indexes every segment of `layout` into `index`, quarantining corrupt ones.
pub fn load_segments(layout: &Layout, index: &ChunkIndex) -> Result<Loaded> {
    let chunks_dir = layout.chunks();
    ensure_dir(&chunks_dir)?;
    let listed: Option<HashSet<SegmentId>> =
        manifest::load(&layout.manifest())?.map(|l| l.into_iter().collect());
    let mut quarantined = HashSet::new();
    let mut loaded = Loaded::default();
    let mut segments = Vec::new();
    for partition in fs::read_dir(&chunks_dir).map_err(io_err("list directory", &chunks_dir))? {
        let partition = partition
            .map_err(io_err("list directory", &chunks_dir))?
            .path();
        if !partition.is_dir() {
            continue;
        }
        remove_stale_tmp(&partition)?;
        for file in fs::read_dir(&partition).map_err(io_err("list directory", &partition))? {
            let path = file.map_err(io_err("list directory", &partition))?.path();
            if path.extension().is_none_or(|e| e != "seg") {
                continue;
            }
            if let Some((_, seq)) = id_from_path(&path) {
                loaded.max_seq = loaded.max_seq.max(seq);
            }
            // A file must be the segment its path names: two files claiming
            // one number would share cache entries.
            let opened = segment::open(&path).and_then(|(segment, read)| {
                if id_from_path(&path) == Some((segment.partition, segment.seq)) {
                    Ok((segment, read))
                } else {
                    Err(EngineError::corrupt(
                        &path,
                        format!(
                            "its header names segment {} of partition {}, not the one its path names",
                            segment.seq, segment.partition
                        ),
                    ))
                }
            });
            match opened {
                Ok((segment, _))
                    if listed
                        .as_ref()
                        .is_some_and(|l| !l.contains(&(segment.partition, segment.seq))) =>
                {
                    quarantine(layout, &path)?;
                    loaded.leftovers += 1;
                    loaded.problems.push(format!(
                        "{} is not listed in the manifest (left by an interrupted flush or \
                         compaction, or copied in): moved to quarantine",
                        path.display()
                    ));
                }
                Ok((segment, read)) => {
                    loaded.bytes_read += read;
                    segments.push(segment);
                }
                Err(EngineError::CorruptData { reason, .. }) => {
                    quarantined.extend(id_from_path(&path));
                    quarantine(layout, &path)?;
                    loaded.quarantined += 1;
                    loaded
                        .problems
                        .push(format!("quarantined {}: {reason}", path.display()));
                }
                Err(other) => return Err(other),
            }
        }
    }
    segments.sort_unstable_by_key(|s| s.seq);
    let live: HashSet<SegmentId> = segments.iter().map(|s| (s.partition, s.seq)).collect();
    for (_, seq) in listed.iter().flatten() {
        loaded.max_seq = loaded.max_seq.max(*seq);
    }
    loaded.max_seq = loaded.max_seq.max(quarantined_max_seq(layout));
    for (partition, seq) in listed.iter().flatten() {
        if !live.contains(&(*partition, *seq)) && !quarantined.contains(&(*partition, *seq)) {
            loaded.missing += 1;
            loaded.problems.push(format!(
                "segment {} of partition {partition} is listed in the manifest but gone (its points are lost, or in quarantine)",
                layout.segment(*partition, *seq).display()
            ));
        }
    }
    // Record what open found, so a loss is reported once and an old store
    // (no manifest yet) gets one.
    if listed.as_ref() != Some(&live) {
        let ids: Vec<SegmentId> = segments.iter().map(|s| (s.partition, s.seq)).collect();
        manifest::store(&layout.manifest(), &ids)?;
    }
    for segment in segments {
        index.add(Arc::new(segment));
    }
    Ok(loaded)
}

/// The partition and sequence number a segment's path names (layout.rs).
fn id_from_path(path: &Path) -> Option<SegmentId> {
    let seq = path.file_stem()?.to_str()?.parse().ok()?;
    let partition = path.parent()?.file_name()?.to_str()?.parse().ok()?;
    Some((partition, seq))
}

/// The highest segment number among quarantined files (`<partition>-<seq>.seg`).
fn quarantined_max_seq(layout: &Layout) -> u64 {
    let Ok(entries) = fs::read_dir(layout.quarantine()) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let (_, seq) = name.split_once(".seg")?.0.rsplit_once('-')?;
            seq.parse::<u64>().ok()
        })
        .max()
        .unwrap_or(0)
}

/// Moves a corrupt file into the quarantine directory, named after its
/// partition and file name (a numbered suffix if that name is taken), so it
/// is kept for inspection but never read again.
pub fn quarantine(layout: &Layout, path: &Path) -> Result<()> {
    let target_dir = layout.quarantine();
    ensure_dir(&target_dir)?;
    let name_of = |p: Option<&Path>| {
        p.and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let base = format!("{}-{}", name_of(path.parent()), name_of(Some(path)));
    let mut target = target_dir.join(&base);
    let mut n = 0;
    while target.exists() {
        n += 1;
        target = target_dir.join(format!("{base}.{n}"));
    }
    fs::rename(path, &target).map_err(io_err("quarantine", path))?;
    sync_dir(&target_dir)?;
    sync_dir(parent(path)?)
}

/// Deletes the files of segments taken out of the index; returns the
/// failures as `(path, reason)`.
pub fn remove_files(segments: &[Arc<Segment>]) -> Vec<(String, String)> {
    let mut failures = Vec::new();
    for segment in segments {
        if let Err(err) = fs::remove_file(&segment.path) {
            failures.push((segment.path.display().to_string(), err.to_string()));
        } else if let Ok(dir) = parent(&segment.path) {
            // An emptied partition directory goes too; failing that is harmless.
            let _ = fs::remove_dir(dir);
        }
    }
    failures
}
