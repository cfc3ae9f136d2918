//! Rollup tiers in the engine: built for closed partitions when compaction
//! runs, expired by each tier's retention, and read by range queries whose
//! step a tier's resolution divides.
//!
//! A partition's tier file is *current* while the raw segments it was built
//! from are still exactly the partition's segments and nothing of the
//! partition is buffered: its rows then say what the raw points would. A
//! late write makes it stale (a new segment); the next compaction merges
//! the partition and builds the tier again. Where raw data is gone (before
//! the retention cutoff) a tier's rows are the only answer and are used
//! whether or not a late write came after them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::chunks::{is_damage, OnDamage};
use super::stats::Stats;
use super::{Engine, LabelSet};
use crate::error::{EngineError, Result};
use crate::index::Matcher;
use crate::parallel;
use crate::query::merge;
use crate::rollup::{self, TierFile, TierRows};
use crate::storage::{ChunkRef, Segment};
use crate::summary::Summary;
use crate::types::{interval_start, SeriesId};

/// What one compaction did to the tiers.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "nif", derive(rustler::NifMap))]
pub struct TierReport {
    /// Tier files written (one per tier and partition built).
    pub built: u64,
    /// Tier files removed by their tier's retention.
    pub expired: u64,
}

/// One tier's totals for `Tms.info`.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "nif", derive(rustler::NifMap))]
pub struct TierInfo {
    pub resolution: i64,
    pub files: u64,
    /// Series with rows in any file, counted once per file.
    pub series: u64,
    pub intervals: u64,
    pub bytes: u64,
}

/// What a query may read from one tier, worked out once per query.
pub(super) struct TierPlan {
    resolution: i64,
    /// Per partition the query touches: its file, and the time before
    /// which its rows answer (the partition's end when it is current).
    files: Vec<(Arc<TierFile>, i64, i64)>,
}

impl Engine {
    /// Builds the tiers of every closed partition whose tier files are
    /// missing or stale, then removes files past their tier's retention.
    /// Closed: the partition ended by the clock, nothing of it is buffered
    /// and its segments are `settled`. Runs under the flush lock.
    pub(super) fn maintain_tiers(
        &self,
        settled: impl Fn(&[Arc<Segment>]) -> bool,
    ) -> Result<TierReport> {
        let mut report = TierReport::default();
        let tiers = self.tiers.tiers();
        if tiers.is_empty() {
            return Ok(report);
        }
        let width = self.config.partition_duration;
        let now = self.now_in_units();
        let buffered = self.buffers.partitions();
        for (partition, segments) in self.index.by_partition() {
            let closed = partition
                .checked_add(1)
                .and_then(|p| p.checked_mul(width))
                .is_some_and(|end| end <= now);
            if !closed || buffered.contains(&partition) || !settled(&segments) {
                continue;
            }
            let seqs: Vec<u64> = segments.iter().map(|s| s.seq).collect();
            let stale: Vec<usize> = (0..tiers.len())
                .filter(|&t| {
                    self.tiers
                        .get(t, partition)
                        .is_none_or(|f| f.sources != seqs || f.is_damaged())
                })
                .collect();
            if !stale.is_empty() {
                self.build_partition(partition, &segments, &seqs, &stale)?;
                report.built += stale.len() as u64;
            }
        }
        report.expired = self.expire_tiers(now);
        Ok(report)
    }

    /// Writes the files of tiers `stale` for one partition from its raw
    /// points (the finest tier from the points, each coarser one from the
    /// finest), keeping an old file's rows where raw data is gone.
    fn build_partition(
        &self,
        partition: i64,
        segments: &[Arc<Segment>],
        seqs: &[u64],
        stale: &[usize],
    ) -> Result<()> {
        let tiers = self.tiers.tiers();
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
        let olds: Vec<Option<Arc<TierFile>>> = stale
            .iter()
            .map(|&t| self.tiers.get(t, partition))
            .collect();
        // Series whose raw points are all gone keep their old rows too.
        let mut series_ids: BTreeSet<SeriesId> = chunks_of.keys().copied().collect();
        for old in olds.iter().flatten() {
            series_ids.extend(old.series());
        }
        let mut rows: Vec<Vec<(SeriesId, TierRows)>> = vec![Vec::new(); stale.len()];
        let mut columns = HashMap::new();
        for series in series_ids {
            let chunks = chunks_of.remove(&series).unwrap_or_default();
            let mut decoded = Vec::with_capacity(chunks.len());
            for chunk in &chunks {
                match chunk.segment.read_chunk(chunk.index, &mut columns) {
                    Ok(points) => decoded.push(points),
                    // Counted and reported by the read; the tier is built
                    // from the rest, as compaction salvages the rest.
                    Err(err) if is_damage(&err) => self.note_damage(chunk, &err),
                    Err(err) => return Err(err),
                }
            }
            let runs: Vec<&[_]> = decoded.iter().map(Vec::as_slice).collect();
            let mut points = merge(&runs);
            points.retain(|p| p.0 >= cutoff);
            let finest = rollup::summarize(&points, tiers[0].resolution);
            for (i, &t) in stale.iter().enumerate() {
                let resolution = tiers[t].resolution;
                let mut series_rows = rollup::coarsen(finest.iter().copied(), resolution);
                if let Some(old) = &olds[i] {
                    // Intervals not wholly after the cutoff have lost raw
                    // points: the old file's rows know more about them.
                    let kept_until = align_up(cutoff, resolution);
                    if kept_until > partition.saturating_mul(self.config.partition_duration) {
                        // A damaged old block leaves what raw data knows.
                        if let Some(old_rows) = self.readable_rows(old, series, OnDamage::Skip)? {
                            let before = old_rows
                                .iter()
                                .take_while(|r| r.first.0 < kept_until)
                                .copied();
                            series_rows.retain(|r| r.first.0 >= kept_until);
                            series_rows = before.chain(series_rows).collect();
                        }
                    }
                }
                if !series_rows.is_empty() {
                    rows[i].push((series, series_rows));
                }
            }
        }
        for ((&t, rows), old) in stale.iter().zip(rows).zip(olds) {
            let resolution = tiers[t].resolution;
            let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
            crate::files::ensure_dir(&self.layout.tier(resolution))?;
            let path = self.layout.tier_file(resolution, partition, seq);
            let level = self.config.compression_level;
            let file = rollup::write(&path, seq, resolution, partition, seqs, &rows, level)?;
            self.tiers.install(t, Arc::new(file));
            if let Some(old) = old {
                self.remove_tier_file(&old);
            }
        }
        Ok(())
    }

    /// Removes every tier file wholly before its tier's retention, and sets
    /// the time before which queries ignore the tier's rows.
    fn expire_tiers(&self, now: i64) -> u64 {
        self.hide_expired_rows(now);
        let width = self.config.partition_duration;
        let mut expired = 0;
        for (t, tier) in self.tiers.tiers().iter().enumerate() {
            if tier.retention.is_none() {
                continue;
            }
            let cutoff = self.tier_cutoffs[t].load(Ordering::Acquire);
            for file in self.tiers.files(t) {
                let end = file.partition.saturating_add(1).saturating_mul(width);
                if end <= cutoff {
                    if let Some(old) = self.tiers.remove(t, file.partition) {
                        self.remove_tier_file(&old);
                        expired += 1;
                    }
                }
            }
        }
        expired
    }

    /// Sets, for each tier with a retention, the time before which queries
    /// ignore its rows: `now` minus the retention (never moving back). Run
    /// at open too, so that a restart does not show rows the retention had
    /// hidden before its files go.
    pub(super) fn hide_expired_rows(&self, now: i64) {
        for (t, tier) in self.tiers.tiers().iter().enumerate() {
            if let Some(retention) = tier.retention {
                self.tier_cutoffs[t].fetch_max(now.saturating_sub(retention), Ordering::AcqRel);
            }
        }
    }

    /// Deletes a tier file taken out of the index; a failure is reported
    /// (the file is no longer read, and a later open removes it).
    fn remove_tier_file(&self, file: &TierFile) {
        if let Err(err) = std::fs::remove_file(&file.path) {
            self.stats.note_problem(format!(
                "tier file {} could not be removed: {err}",
                file.path.display()
            ));
        }
    }

    /// The rows of `series` in `file`. A block that fails its checks marks
    /// the file damaged (reported once; the next compaction rebuilds it
    /// from raw data where that exists) and is `None`, or the error with
    /// [`OnDamage::Fail`]. A file replaced or expired since the caller
    /// found it is an error that asks for a retry.
    fn readable_rows(
        &self,
        file: &TierFile,
        series: SeriesId,
        on_damage: OnDamage,
    ) -> Result<Option<Arc<TierRows>>> {
        match self.tiers.rows(file, series) {
            Ok(rows) => Ok(Some(rows)),
            Err(_) if file.is_removed() => Err(EngineError::invalid(
                "a rollup tier changed under the query; try again",
            )),
            Err(err) if is_damage(&err) => {
                Stats::bump(&self.stats.corrupt_chunk_reads);
                if file.mark_damaged() {
                    self.stats.note_problem(format!(
                        "tier file {} is damaged ({err}): raw points answer for it until \
                         compaction rebuilds it",
                        file.path.display()
                    ));
                }
                match on_damage {
                    OnDamage::Skip => Ok(None),
                    OnDamage::Fail => Err(err),
                }
            }
            Err(err) => Err(err),
        }
    }

    /// The tier a bucketed query over `[from, to]` with `step` reads, if
    /// any: the coarsest one whose resolution divides the step (and, when
    /// the query ends where only tiers hold data, whose interval ends with
    /// it), with the files of the partitions the query touches.
    pub(super) fn step_plan(&self, from: i64, to: i64, step: i64) -> Option<TierPlan> {
        let tiers = self.tiers.tiers();
        let cutoff = self.cutoff();
        let serves = |t: &usize| step % tiers[*t].resolution == 0;
        let ends = |t: &usize| to >= cutoff || to.saturating_add(1) % tiers[*t].resolution == 0;
        let tier = (0..tiers.len())
            .rev()
            .find(|t| serves(t) && ends(t))
            .or_else(|| (0..tiers.len()).rev().find(serves))?;
        Some(self.tier_plan(from, to, tier))
    }

    /// What tier `tier` can answer of `[from, to]`: the files of the
    /// partitions the query touches, each with the span its rows cover.
    pub(super) fn tier_plan(&self, from: i64, to: i64, tier: usize) -> TierPlan {
        let tiers = self.tiers.tiers();
        let cutoff = self.cutoff();
        let resolution = tiers[tier].resolution;
        let width = self.config.partition_duration;
        let expired_before = align_up(self.tier_cutoffs[tier].load(Ordering::Acquire), resolution);
        let buffered = self.buffers.partitions();
        let mut files = Vec::new();
        for file in self
            .tiers
            .range(tier, from.div_euclid(width), to.div_euclid(width))
        {
            let partition = file.partition;
            let start = partition.saturating_mul(width);
            let end = start.saturating_add(width);
            let seqs = self.index.partition_seqs(partition);
            let current =
                seqs.is_empty() || (seqs == file.sources && !buffered.contains(&partition));
            // Rows answer for whole intervals before this time (an
            // interval that holds the query's end does not: it may hold
            // points after it). A stale file still answers every interval
            // starting before the raw cutoff: raw data lost part of the
            // one that straddles it.
            let mut until = if current {
                end
            } else {
                end.min(align_up(cutoff, resolution))
            };
            until = until.min(interval_start(to.saturating_add(1), resolution));
            let start = start.max(expired_before);
            if start < until {
                files.push((file, start, until));
            }
        }
        TierPlan { resolution, files }
    }

    /// One series' runs over `[from, to]` in time order, for
    /// [`crate::query::bucketize`]: tier rows where `plan` covers the time,
    /// raw points (one run each) elsewhere.
    pub(super) fn series_runs(
        &self,
        id: SeriesId,
        from: i64,
        to: i64,
        plan: &TierPlan,
        on_damage: super::OnDamage,
    ) -> Result<Vec<Summary>> {
        // A row per interval the plan covers, as a series scraped
        // throughout has (raw points, where they come in, grow it).
        let intervals: i64 = plan
            .files
            .iter()
            .map(|(_, start, until)| (until - start) / plan.resolution)
            .sum();
        let mut runs = Vec::with_capacity(intervals.clamp(0, 1 << 20) as usize);
        let mut cursor = from;
        let raw = |runs: &mut Vec<Summary>, from: i64, to: i64| -> Result<()> {
            if from <= to {
                let points = self.series_points(id, from, to, on_damage)?;
                runs.extend(crate::summary::samples(points.iter()));
            }
            Ok(())
        };
        for (file, start, until) in &plan.files {
            if *until <= cursor {
                continue;
            }
            raw(&mut runs, cursor, start.saturating_sub(1))?;
            let Some(rows) = self.readable_rows(file, id, on_damage)? else {
                // A damaged block: raw points answer where they still exist.
                raw(&mut runs, (*start).max(cursor), until - 1)?;
                cursor = (*start).max(cursor).max(*until);
                continue;
            };
            runs.extend(
                rows.iter()
                    .filter(|r| {
                        let at = interval_start(r.first.0, plan.resolution);
                        at >= *start && at + plan.resolution <= *until && r.last.0 >= from
                    })
                    .copied(),
            );
            cursor = (*start).max(cursor).max(*until);
        }
        raw(&mut runs, cursor, to)?;
        Ok(runs)
    }

    /// The raw retention cutoff, when `[from, to]` reaches before it and a
    /// tier holds data there: times where only tiers can answer.
    pub fn tiers_alone_before(&self, from: i64, to: i64) -> Option<i64> {
        let cutoff = self.cutoff();
        let width = self.config.partition_duration;
        // Nothing lies before a cutoff of i64::MIN (nothing deleted).
        let before = to.min(cutoff.checked_sub(1)?);
        let held = from <= before
            && (0..self.tiers.tiers().len()).any(|t| {
                !self
                    .tiers
                    .range(t, from.div_euclid(width), before.div_euclid(width))
                    .is_empty()
            });
        held.then_some(cutoff)
    }

    /// Why a bucketed query over `[from, to]` cannot be answered exactly,
    /// if it cannot: it reaches before the raw retention cutoff, where only
    /// tiers hold data, and no tier serves its step, or it ends inside an
    /// interval there.
    pub(super) fn unanswerable(
        &self,
        from: i64,
        to: i64,
        step: i64,
        plan: Option<&TierPlan>,
    ) -> Option<String> {
        let cutoff = self.tiers_alone_before(from, to)?;
        let resolutions: Vec<String> = self
            .tiers
            .tiers()
            .iter()
            .map(|t| t.resolution.to_string())
            .collect();
        match plan {
            None => Some(format!(
                "before the raw retention cutoff {cutoff} only rollup tiers hold data, and step \
                 {step} is not a multiple of any of their resolutions ({})",
                resolutions.join(", ")
            )),
            Some(plan) if to < cutoff && (to + 1) % plan.resolution != 0 => Some(format!(
                "before the raw retention cutoff {cutoff} only rollup tiers hold data, and the \
                 query ends at {to}, inside a {} interval: end it just before a multiple of the \
                 resolution",
                plan.resolution
            )),
            Some(_) => None,
        }
    }

    /// The resolutions of the store's rollup tiers, finest first, in
    /// timestamp units.
    pub fn tier_resolutions(&self) -> Vec<i64> {
        self.tiers.tiers().iter().map(|t| t.resolution).collect()
    }

    /// The series of `metric` matching `matchers`, sorted by labels, each
    /// with its runs over `[from, to]`: rows of tier `tier` (an index into
    /// [`Engine::tier_resolutions`]) where they answer, raw samples
    /// elsewhere. Series without any are left out.
    pub fn tier_runs(
        &self,
        metric: &str,
        matchers: &[Matcher],
        from: i64,
        to: i64,
        tier: usize,
    ) -> Result<Vec<(LabelSet, Vec<Summary>)>> {
        if tier >= self.tiers.tiers().len() || from > to {
            return Err(EngineError::invalid(format!(
                "no rollup tier {tier}, or from ({from}) after to ({to})"
            )));
        }
        let series = self.select(metric, matchers)?;
        let plan = self.tier_plan(from, to, tier);
        let runs = parallel::map(&series, parallel::cores(), 16, |(id, _)| {
            self.series_runs(*id, from, to, &plan, super::OnDamage::Skip)
        })?;
        Ok(series
            .into_iter()
            .zip(runs)
            .filter(|(_, runs)| !runs.is_empty())
            .map(|((_, key), runs)| (key.labels.to_vec(), runs))
            .collect())
    }

    /// Totals of each tier, for `Tms.info`.
    pub(super) fn tier_info(&self) -> Vec<TierInfo> {
        let tiers = self.tiers.tiers();
        (0..tiers.len())
            .map(|t| {
                let files = self.tiers.files(t);
                TierInfo {
                    resolution: tiers[t].resolution,
                    files: files.len() as u64,
                    series: files.iter().map(|f| f.series_count() as u64).sum(),
                    intervals: files.iter().map(|f| f.interval_count()).sum(),
                    bytes: files.iter().map(|f| f.file_bytes).sum(),
                }
            })
            .collect()
    }
}

/// The first multiple of `resolution` at or after `ts` (saturating).
fn align_up(ts: i64, resolution: i64) -> i64 {
    let start = interval_start(ts, resolution);
    if start == ts {
        ts
    } else {
        start.saturating_add(resolution)
    }
}
