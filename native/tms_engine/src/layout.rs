//! The layout of a data directory: every name the engine gives a file or
//! folder under it, in one place.
//!
//! ```text
//! <root>                               flock held while an engine is open
//! <root>/registry.tms                  series snapshot (registry/snapshot.rs)
//! <root>/retention.tms                 the retention cutoff (retention.rs)
//! <root>/manifest.tms                  the live segments (storage/manifest.rs)
//! <root>/wal/                          WAL segments (wal/)
//! <root>/chunks/<partition>/<seq>.seg  segment files (storage/segment/format.rs)
//! <root>/rollups/<resolution>/<partition>-<seq>.tier  tier files (rollup/file.rs)
//! <root>/quarantine/                   files that failed their checksum
//! ```

use std::path::{Path, PathBuf};

/// The paths of one data directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout of the data directory `root`.
    pub fn new(root: &Path) -> Self {
        Layout {
            root: root.to_path_buf(),
        }
    }

    /// The data directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The registry snapshot.
    pub fn registry(&self) -> PathBuf {
        self.root.join("registry.tms")
    }

    /// The retention cutoff file.
    pub fn cutoff(&self) -> PathBuf {
        self.root.join("retention.tms")
    }

    /// The manifest of live segments.
    pub fn manifest(&self) -> PathBuf {
        self.root.join("manifest.tms")
    }

    /// The WAL's directory.
    pub fn wal(&self) -> PathBuf {
        self.root.join("wal")
    }

    /// The directory of every partition's segments.
    pub fn chunks(&self) -> PathBuf {
        self.root.join("chunks")
    }

    /// The directory of one partition's segments.
    pub fn partition(&self, partition: i64) -> PathBuf {
        self.chunks().join(partition.to_string())
    }

    /// The file of segment `seq` of `partition`.
    pub fn segment(&self, partition: i64, seq: u64) -> PathBuf {
        self.partition(partition).join(format!("{seq:020}.seg"))
    }

    /// The directory of one rollup tier's files.
    pub fn tier(&self, resolution: i64) -> PathBuf {
        self.root.join("rollups").join(resolution.to_string())
    }

    /// Tier file `seq` of `partition` in the tier of `resolution`.
    pub fn tier_file(&self, resolution: i64, partition: i64, seq: u64) -> PathBuf {
        self.tier(resolution)
            .join(format!("{partition}-{seq:020}.tier"))
    }

    /// Where corrupt files are moved, kept for inspection.
    pub fn quarantine(&self) -> PathBuf {
        self.root.join("quarantine")
    }
}
