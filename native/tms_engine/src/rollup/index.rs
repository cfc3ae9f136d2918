//! The tier index: per tier, the live file of each partition, found at open
//! by listing the tier directories, and a size-bounded cache of decoded
//! rows shared by every query.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use moka::sync::Cache;
use parking_lot::RwLock;

use super::file::{self, TierFile, TierRows};
use super::Tier;
use crate::error::{io_err, EngineError, Result};
use crate::files::{ensure_dir, remove_stale_tmp};
use crate::layout::Layout;
use crate::storage::quarantine;
use crate::summary::Summary;
use crate::types::SeriesId;

/// The live tier files and their decoded rows.
pub struct TierIndex {
    tiers: Vec<Tier>,
    /// Per tier (in the order of `tiers`), its file of each partition.
    files: RwLock<Vec<BTreeMap<i64, Arc<TierFile>>>>,
    /// Decoded rows by (file seq, series).
    rows: Cache<(u64, SeriesId), Arc<TierRows>>,
}

/// What opening the tier directories found.
#[derive(Debug, Default)]
pub struct LoadedTiers {
    /// The highest file number seen (new files are numbered past it).
    pub max_seq: u64,
    pub quarantined: u64,
    /// One line per quarantined file, saying why.
    pub problems: Vec<String>,
}

impl TierIndex {
    /// An empty index of `tiers`, caching up to `cache_bytes` of rows.
    pub fn new(tiers: Vec<Tier>, cache_bytes: u64) -> TierIndex {
        let rows = Cache::builder()
            .max_capacity(cache_bytes.max(1))
            .weigher(|_, rows: &Arc<TierRows>| {
                u32::try_from(rows.len() * size_of::<Summary>()).unwrap_or(u32::MAX)
            })
            .build();
        TierIndex {
            files: RwLock::new(vec![BTreeMap::new(); tiers.len()]),
            tiers,
            rows,
        }
    }

    /// The configured tiers, finest first.
    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    /// The file of `partition` in tier `tier`.
    pub fn get(&self, tier: usize, partition: i64) -> Option<Arc<TierFile>> {
        self.files.read().get(tier)?.get(&partition).cloned()
    }

    /// The files of tier `tier` for partitions `first..=last`, in order.
    pub fn range(&self, tier: usize, first: i64, last: i64) -> Vec<Arc<TierFile>> {
        match self.files.read().get(tier) {
            Some(files) if first <= last => files
                .range(first..=last)
                .map(|(_, f)| Arc::clone(f))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Every file of tier `tier`, by partition.
    pub fn files(&self, tier: usize) -> Vec<Arc<TierFile>> {
        self.files
            .read()
            .get(tier)
            .map(|f| f.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Makes `file` the live file of its partition in tier `tier`; answers
    /// the file it replaces, marked removed.
    pub fn install(&self, tier: usize, file: Arc<TierFile>) -> Option<Arc<TierFile>> {
        let old = self.files.write()[tier].insert(file.partition, file);
        old.inspect(|f| f.mark_removed())
    }

    /// Takes the file of `partition` out of tier `tier`, marked removed.
    pub fn remove(&self, tier: usize, partition: i64) -> Option<Arc<TierFile>> {
        let old = self.files.write()[tier].remove(&partition);
        old.inspect(|f| f.mark_removed())
    }

    /// The rows of `series` in `file`, decoded once per cache lifetime.
    pub fn rows(&self, file: &TierFile, series: SeriesId) -> Result<Arc<TierRows>> {
        let key = (file.seq, series);
        if let Some(rows) = self.rows.get(&key) {
            return Ok(rows);
        }
        let rows = Arc::new(file.read(series)?);
        self.rows.insert(key, Arc::clone(&rows));
        Ok(rows)
    }

    /// Indexes the files of every tier under `layout`: the newest file of
    /// each partition that passes its checks (an older one is a leftover
    /// of a crash between a rebuild and its clean-up, and is removed); a
    /// file that fails them is moved to quarantine and reported.
    pub fn load(&self, layout: &Layout) -> Result<LoadedTiers> {
        let mut loaded = LoadedTiers::default();
        for (t, tier) in self.tiers.iter().enumerate() {
            let dir = layout.tier(tier.resolution);
            ensure_dir(&dir)?;
            remove_stale_tmp(&dir)?;
            let mut by_partition: BTreeMap<i64, Vec<(u64, std::path::PathBuf)>> = BTreeMap::new();
            for entry in fs::read_dir(&dir).map_err(io_err("list directory", &dir))? {
                let path = entry.map_err(io_err("list directory", &dir))?.path();
                let Some((partition, seq)) = parse_name(&path) else {
                    continue;
                };
                loaded.max_seq = loaded.max_seq.max(seq);
                by_partition.entry(partition).or_default().push((seq, path));
            }
            for (partition, mut files) in by_partition {
                // Newest first: the first that opens is used, older ones
                // are leftovers (removed), and one that fails its checks
                // goes to quarantine, leaving the next older in its place.
                files.sort_by_key(|f| std::cmp::Reverse(f.0));
                let mut installed = false;
                for (seq, path) in files {
                    if installed {
                        fs::remove_file(&path).map_err(io_err("remove", &path))?;
                        continue;
                    }
                    let opened = file::open(&path, seq).and_then(|f| {
                        if f.resolution == tier.resolution && f.partition == partition {
                            Ok(f)
                        } else {
                            Err(EngineError::corrupt(
                                &path,
                                "its header names another tier or partition",
                            ))
                        }
                    });
                    match opened {
                        Ok(f) => {
                            self.install(t, Arc::new(f));
                            installed = true;
                        }
                        Err(err) => {
                            quarantine(layout, &path)?;
                            loaded.quarantined += 1;
                            loaded.problems.push(format!(
                                "tier file {} moved to quarantine ({err}); it is rebuilt from raw data where that still exists",
                                path.display()
                            ));
                        }
                    }
                }
            }
        }
        Ok(loaded)
    }
}

/// `(partition, seq)` of a file named `<partition>-<seq>.tier`.
fn parse_name(path: &Path) -> Option<(i64, u64)> {
    let name = path.file_name()?.to_str()?.strip_suffix(".tier")?;
    let (partition, seq) = name.rsplit_once('-')?;
    Some((partition.parse().ok()?, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_with_negative_partitions() {
        assert_eq!(
            parse_name(Path::new("/x/-86400000-00000000000000000012.tier")),
            Some((-86_400_000, 12))
        );
        assert_eq!(parse_name(Path::new("/x/5-7.tier.tmp")), None);
        assert_eq!(parse_name(Path::new("/x/junk.tier")), None);
    }
}
