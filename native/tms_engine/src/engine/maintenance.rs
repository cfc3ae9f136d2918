//! Maintenance: retention (deleting points before a cutoff) and compaction
//! (merging a closed partition's segments into one), both crash-safe: the
//! new state is durable before the old files go.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::chunks::is_damage;
use super::stats::Stats;
use super::{Engine, TierReport};
use crate::error::{EngineError, Result};
use crate::query::merge;
use crate::retention;
use crate::storage::{quarantine, remove_files, ChunkRef, Segment, SegmentInput};
use crate::types::{Point, SeriesId};

/// What `delete_before` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "nif", derive(rustler::NifMap))]
pub struct RetentionReport {
    /// The cutoff now in force (it never moves back).
    pub cutoff: i64,
    pub segments_removed: u64,
    pub bytes_removed: u64,
    /// Segment files that could not be removed, with the reason. They are
    /// out of the index (never read again) but still on disk.
    pub unremoved: Vec<(String, String)>,
}

/// What `compact` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "nif", derive(rustler::NifMap))]
pub struct CompactReport {
    pub partitions: u64,
    pub segments_merged: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Damaged chunks left behind, and their points (see `merge_segments`).
    pub chunks_lost: u64,
    pub points_lost: u64,
    /// Old segment files with damage, moved to quarantine.
    pub quarantined: u64,
    /// Old segment files that could not be removed, with the reason.
    pub unremoved: Vec<(String, String)>,
    /// Rollup tier files built and expired.
    pub tiers: TierReport,
}

/// What merging a partition's segments produced.
#[derive(Default)]
struct Merged {
    input: SegmentInput,
    chunks_lost: u64,
    points_lost: u64,
    /// Segments with a damaged chunk.
    damaged: HashSet<u64>,
}

impl Engine {
    /// Deletes every point before `cutoff`: whole segments that hold
    /// nothing newer are removed from disk, the rest is filtered at query
    /// time. The cutoff never moves back, and later writes before it are
    /// refused. Files that cannot be removed are reported, not ignored.
    ///
    /// The cutoff must be a valid timestamp. A cutoff after both the newest
    /// point and the current time would delete everything and refuse every
    /// ordinary write from then on, so it takes `force` (a nanosecond
    /// cutoff on a millisecond store is the mistake this catches).
    pub fn delete_before(&self, cutoff: i64, force: bool) -> Result<RetentionReport> {
        self.check_open()?;
        let max = self.config.max_abs_timestamp;
        if cutoff.unsigned_abs() > max as u64 {
            return Err(EngineError::invalid(format!(
                "cutoff {cutoff} is outside the timestamp range ±{max}"
            )));
        }
        let _flushing = self.maintenance_lock()?;
        let now = self.now_in_units();
        // The scan of buffered points only for a cutoff past the clock (the
        // retention timer's never is).
        if !force && cutoff > now {
            let newest = self.index.max_ts().max(self.buffers.max_ts());
            if cutoff > newest.saturating_add(1) {
                return Err(EngineError::invalid(format!(
                    "cutoff {cutoff} is after both the newest point ({newest}) and now ({now}): it \
                     would delete every point and refuse every write before it; pass force: true \
                     if that is what you mean"
                )));
            }
        }
        let cutoff = cutoff.max(self.cutoff());
        retention::store(&self.layout.cutoff(), cutoff)?;
        self.cutoff.store(cutoff, Ordering::Release);
        let expired: Vec<u64> = self
            .index
            .by_partition()
            .into_values()
            .flatten()
            .filter(|s| s.max_ts() < cutoff)
            .map(|s| s.seq)
            .collect();
        if !expired.is_empty() {
            self.record_segments(None, &expired)?;
        }
        let removed = self.index.replace(&expired, None);
        Ok(RetentionReport {
            cutoff,
            segments_removed: removed.len() as u64,
            bytes_removed: removed.iter().map(|s| s.file_bytes).sum(),
            unremoved: remove_files(&removed),
        })
    }

    /// Merges the segments of every closed partition (no buffered points,
    /// no segment written for `idle`) into one segment with one chunk per
    /// series, applying last-write-wins and the retention cutoff. The new
    /// segment is durable and indexed before the old files are removed.
    /// Then builds the rollup tiers of closed partitions and expires old
    /// tier files (see rollups.rs).
    pub fn compact(&self, idle: Duration) -> Result<CompactReport> {
        self.check_open()?;
        let _flushing = self.maintenance_lock()?;
        let mut report = CompactReport::default();
        // The clock read at each use: a segment this compaction merged is
        // settled for the tiers built after it when `idle` is zero.
        let settled = |segments: &[Arc<Segment>]| {
            let now = SystemTime::now();
            segments
                .iter()
                .all(|s| now.duration_since(s.written).is_ok_and(|age| age >= idle))
        };
        let damaged_seqs = self.damaged_segments();
        for (partition, segments) in self.index.by_partition() {
            let is_settled = settled(&segments);
            // One segment needs no merge, unless it holds a damaged chunk
            // to salvage the rest from.
            let salvage = segments.iter().any(|s| damaged_seqs.contains(&s.seq));
            if (segments.len() < 2 && !salvage)
                || !is_settled
                || self.buffers.holds_partition(partition)
            {
                continue;
            }
            let Merged {
                input,
                chunks_lost,
                points_lost,
                damaged,
            } = self.merge_segments(&segments)?;
            let merged = if input.is_empty() {
                None
            } else {
                let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
                Some(Arc::new(self.write_inputs(partition, seq, input)?))
            };
            let seqs: Vec<u64> = segments.iter().map(|s| s.seq).collect();
            // The manifest lists the merged segment instead of its inputs
            // before either change is visible. On failure nothing is removed:
            // the manifest may have reached the disk before its directory
            // sync failed, and open sorts out either state.
            self.record_segments(merged.as_deref(), &seqs)?;
            report.partitions += 1;
            report.segments_merged += segments.len() as u64;
            report.bytes_before += segments.iter().map(|s| s.file_bytes).sum::<u64>();
            report.bytes_after += merged.as_ref().map_or(0, |s| s.file_bytes);
            let removed = self.index.replace(&seqs, merged);
            // Healthy files go; a damaged one is kept for inspection.
            let (damaged, healthy): (Vec<_>, Vec<_>) =
                removed.into_iter().partition(|s| damaged.contains(&s.seq));
            report.unremoved.extend(remove_files(&healthy));
            for segment in damaged {
                match quarantine(&self.layout, &segment.path) {
                    Ok(()) => {
                        report.quarantined += 1;
                        Stats::bump(&self.stats.quarantined);
                    }
                    Err(err) => report
                        .unremoved
                        .push((segment.path.display().to_string(), err.to_string())),
                }
            }
            if chunks_lost > 0 {
                self.stats.note_problem(format!(
                    "compaction of partition {partition} carried over every readable chunk; \
                     {chunks_lost} damaged chunks ({points_lost} points) are lost, their files \
                     moved to quarantine"
                ));
            }
            report.chunks_lost += chunks_lost;
            report.points_lost += points_lost;
            self.stats
                .chunks_lost
                .fetch_add(chunks_lost, Ordering::Relaxed);
            self.stats
                .points_lost
                .fetch_add(points_lost, Ordering::Relaxed);
        }
        report.tiers = self.maintain_tiers(settled)?;
        Ok(report)
    }

    /// One chunk per series of `segments` (oldest first), merged
    /// last-write-wins, without points before the cutoff. Decodes a bounded
    /// number of points at a time so memory follows the compressed size. A
    /// damaged chunk is left out and counted, and its segment named, so that
    /// compaction salvages the healthy chunks instead of failing for good.
    fn merge_segments(&self, segments: &[Arc<Segment>]) -> Result<Merged> {
        const POINTS_PER_ROUND: u64 = 4 << 20;
        let cutoff = self.cutoff();
        let mut chunks_of: BTreeMap<SeriesId, Vec<ChunkRef>> = BTreeMap::new();
        for segment in segments {
            for (index, meta) in segment.chunks.iter().enumerate() {
                chunks_of.entry(meta.series).or_default().push(ChunkRef {
                    segment: Arc::clone(segment),
                    index,
                });
            }
        }
        let mut all: Vec<_> = chunks_of.into_iter().collect();
        // Series whose chunks use the same columns merge to the same
        // timestamps: side by side, they land in one round and share a
        // column in the merged segment too. (Sharing is found per round: a
        // group cut by a round's end stores its column twice.)
        all.sort_by_cached_key(|(series, chunks)| {
            let columns: Vec<_> = chunks
                .iter()
                .map(|c| (c.segment.seq, c.segment.column_of(c.index)))
                .collect();
            (columns, *series)
        });
        let mut out = Merged::default();
        let mut rest = &all[..];
        while !rest.is_empty() {
            let mut points = 0;
            let size = rest
                .iter()
                .take_while(|(_, chunks)| {
                    points += chunks
                        .iter()
                        .map(|c| u64::from(c.segment.chunks[c.index].count))
                        .sum::<u64>();
                    points <= POINTS_PER_ROUND
                })
                .count()
                .max(1);
            let (round, after) = rest.split_at(size);
            rest = after;
            let mut columns: HashMap<(u64, usize), Arc<[i64]>> = HashMap::new();
            let mut merged = Vec::with_capacity(round.len());
            for (series, chunks) in round {
                let mut decoded = Vec::with_capacity(chunks.len());
                for chunk in chunks {
                    let segment = &chunk.segment;
                    let read = segment.read_chunk(chunk.index, &mut columns);
                    match read {
                        Ok(points) => decoded.push(points),
                        Err(err) if is_damage(&err) => {
                            self.note_damage(chunk, &err);
                            out.chunks_lost += 1;
                            out.points_lost += segment.chunks[chunk.index].count as u64;
                            out.damaged.insert(segment.seq);
                        }
                        Err(err) => return Err(err),
                    }
                }
                let runs: Vec<&[Point]> = decoded.iter().map(Vec::as_slice).collect();
                let mut points = merge(&runs);
                points.retain(|p| p.0 >= cutoff);
                if !points.is_empty() {
                    merged.push((*series, points));
                }
            }
            let runs: Vec<(SeriesId, &[Point])> =
                merged.iter().map(|(s, p)| (*s, p.as_slice())).collect();
            out.input.append(self.encode_chunks(&runs)?);
        }
        Ok(out)
    }
}
