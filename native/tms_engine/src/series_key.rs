//! A series' identity, the limits it must respect, and its byte encoding
//! (shared by the registry snapshot and the WAL's series records).
//!
//! ## Key encoding
//!
//! ```text
//! metric str16 | label count u16 | (name str16, value str32) × count
//! ```
//! (`strN`: a length of N bits, then that many UTF-8 bytes; see codec.rs.)

use crate::codec::{put_str16, put_str32, DecodeError, Reader};
use crate::error::{EngineError, Result};

/// Longest metric or label name, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest label value, in bytes (VictoriaMetrics' default cap too).
pub const MAX_VALUE_BYTES: usize = 4096;
/// Most labels on one series.
pub const MAX_LABELS: usize = 64;

/// A series' identity: a metric name and its labels sorted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesKey {
    pub metric: Box<str>,
    pub labels: Box<[(Box<str>, Box<str>)]>,
}

impl SeriesKey {
    /// Builds a key from canonical (sorted, validated) labels.
    pub fn new<K: AsRef<str>, V: AsRef<str>>(metric: &str, labels: &[(K, V)]) -> Self {
        SeriesKey {
            metric: metric.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.as_ref().into(), v.as_ref().into()))
                .collect(),
        }
    }

    /// True when `labels` (canonical) are exactly this key's labels.
    pub fn same_labels<K: AsRef<str>, V: AsRef<str>>(&self, labels: &[(K, V)]) -> bool {
        self.labels.len() == labels.len()
            && self
                .labels
                .iter()
                .zip(labels)
                .all(|((a, b), (k, v))| **a == *k.as_ref() && **b == *v.as_ref())
    }

    /// The value of label `name`, if the series has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|(k, _)| (**k).cmp(name))
            .ok()
            .map(|i| &*self.labels[i].1)
    }
}

/// The label name reserved for the metric: import formats carry the metric
/// under it, and it never appears among a series' own labels.
pub const METRIC_LABEL: &str = "__name__";

/// Checks a metric name and labels against the limits and puts them in the
/// canonical form every lookup and stored key uses: labels with an empty
/// value dropped (Prometheus' rule: an empty value is no label), the rest
/// sorted by name. Returns how many labels are kept, at the front of
/// `labels`; the dropped ones follow them.
///
/// Names are any UTF-8 of 1 to [`MAX_NAME_BYTES`] bytes (as Prometheus 3
/// accepts), except [`METRIC_LABEL`]; values up to [`MAX_VALUE_BYTES`].
pub fn canonicalize<K: AsRef<str>, V: AsRef<str>>(
    metric: &str,
    labels: &mut [(K, V)],
) -> Result<usize> {
    canonical(metric, labels, true)
}

/// [`canonicalize`], with `__name__` refused only for new series: a store
/// written before the rule may hold series with such a label, and they
/// stay readable.
fn canonical<K: AsRef<str>, V: AsRef<str>>(
    metric: &str,
    labels: &mut [(K, V)],
    refuse_reserved: bool,
) -> Result<usize> {
    if metric.is_empty() {
        return Err(EngineError::invalid("metric name must not be empty"));
    }
    if metric.len() > MAX_NAME_BYTES {
        return Err(EngineError::invalid(format!(
            "metric name is {} bytes, the limit is {MAX_NAME_BYTES}",
            metric.len()
        )));
    }
    for (name, value) in labels.iter() {
        let (name, value) = (name.as_ref(), value.as_ref());
        if name.is_empty() || name.len() > MAX_NAME_BYTES {
            return Err(EngineError::invalid(format!(
                "label name must be 1 to {MAX_NAME_BYTES} bytes, got {}",
                name.len()
            )));
        }
        if refuse_reserved && name == METRIC_LABEL {
            return Err(EngineError::invalid(format!(
                "label {METRIC_LABEL} is the metric name: pass the metric as the entry's first element"
            )));
        }
        if value.len() > MAX_VALUE_BYTES {
            return Err(EngineError::invalid(format!(
                "label {name:?}: value must be at most {MAX_VALUE_BYTES} bytes, got {}",
                value.len()
            )));
        }
    }
    labels.sort_unstable_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
    if let Some(pair) = labels
        .windows(2)
        .find(|w| w[0].0.as_ref() == w[1].0.as_ref())
    {
        return Err(EngineError::invalid(format!(
            "label {:?} given twice",
            pair[0].0.as_ref()
        )));
    }
    // A stable sort: the kept labels stay in name order, in front.
    labels.sort_by_key(|(_, value)| value.as_ref().is_empty());
    let kept = labels
        .iter()
        .take_while(|(_, value)| !value.as_ref().is_empty())
        .count();
    if kept > MAX_LABELS {
        return Err(EngineError::invalid(format!(
            "{kept} labels, the limit is {MAX_LABELS}"
        )));
    }
    Ok(kept)
}

/// Appends the encoding of `key` (shared by the snapshot and the WAL).
pub fn encode_key(out: &mut Vec<u8>, key: &SeriesKey) {
    put_str16(out, &key.metric);
    out.extend_from_slice(&(key.labels.len() as u16).to_le_bytes());
    for (name, value) in key.labels.iter() {
        put_str16(out, name);
        put_str32(out, value);
    }
}

/// Decodes a key written by [`encode_key`], rejecting keys that are not
/// canonical (a bit flip that happens to keep the checksum must not create
/// an unreachable series).
pub fn decode_key(r: &mut Reader<'_>) -> Result<SeriesKey, DecodeError> {
    let metric = r.str16("metric name")?;
    let count = r.u16("label count")? as usize;
    let mut labels = Vec::with_capacity(count.min(MAX_LABELS));
    for _ in 0..count {
        labels.push((r.str16("label name")?, r.str32("label value")?));
    }
    checked_key(metric, labels)
}

/// The key of a decoded metric and labels, refused unless they are already
/// canonical (every decoder of stored keys goes through here).
pub fn checked_key(metric: &str, mut labels: Vec<(&str, &str)>) -> Result<SeriesKey, DecodeError> {
    let was_sorted = labels.windows(2).all(|w| w[0].0 < w[1].0);
    let kept = canonical(metric, &mut labels, false).map_err(|e| DecodeError(e.to_string()))?;
    if !was_sorted || kept != labels.len() {
        return Err(DecodeError("labels are not in canonical form".into()));
    }
    Ok(SeriesKey::new(metric, &labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonicalize_sorts_and_rejects_bad_labels() {
        let mut labels = vec![("b", "2"), ("a", "1")];
        canonicalize("m", &mut labels).unwrap();
        assert_eq!(labels, vec![("a", "1"), ("b", "2")]);
        assert!(canonicalize("", &mut Vec::<(&str, &str)>::new()).is_err());
        assert!(canonicalize("m", &mut [("a", "1"), ("a", "2")]).is_err());
        assert!(canonicalize("m", &mut [("", "1")]).is_err());
        assert!(canonicalize("m", &mut [("__name__", "x")]).is_err());
        // An empty value is no label: dropped, and it does not count.
        let mut with_empty = [("b", ""), ("c", "2"), ("a", "1")];
        assert_eq!(canonicalize("m", &mut with_empty).unwrap(), 2);
        assert_eq!(&with_empty[..2], &[("a", "1"), ("c", "2")]);
        let huge = "x".repeat(MAX_VALUE_BYTES + 1);
        assert!(canonicalize("m", &mut [("a", huge.as_str())]).is_err());
        let many: Vec<(String, &str)> = (0..=MAX_LABELS).map(|i| (format!("l{i}"), "v")).collect();
        assert!(canonicalize("m", &mut many.clone()).is_err());
    }
}
