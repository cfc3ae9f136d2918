//! The registry's snapshot file, `registry.tms`: every series key, by id.
//!
//! ## Format 2 (written)
//!
//! ```text
//! magic "TMSREG01" | version u32 = 2 | body | crc32 u32
//! body    string count varint | strings | series count varint | series × count
//! string  length varint | UTF-8 bytes
//! series  metric varint | label count varint | (name varint, value varint) × labels
//! ```
//!
//! Each distinct string (metric name, label name or value) is stored once
//! and series refer to it by its number: real exporter series repeat most
//! of their labels (`job`, `instance`, a device, a `le` bound), and the
//! registry of a real scrape shrank to a third this way.
//!
//! ## Format 1 (read)
//!
//! ```text
//! magic "TMSREG01" | version u32 = 1 | count u64 | count × series key (series_key.rs) | crc32 u32
//! ```
//!
//! The CRC covers every byte before it. A file that fails it, or that holds
//! a key that is not canonical, is an error at open: loading part of a
//! registry would orphan the other series' data.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::codec::{framed, put_str_varint, put_varint, unframe, DecodeError, Reader};
use crate::error::{EngineError, Result};
use crate::hash::FastBuildHasher;
use crate::series_key::{self, SeriesKey, MAX_VALUE_BYTES};

const MAGIC: &[u8; 8] = b"TMSREG01";
/// The format written.
const VERSION: u32 = 2;

/// The snapshot of `keys` (series `i` is `keys[i]`).
pub fn encode(keys: &[Arc<SeriesKey>]) -> Vec<u8> {
    let mut strings = Strings::default();
    let mut series = Vec::with_capacity(keys.len() * 16);
    for key in keys {
        put_varint(&mut series, strings.number(&key.metric));
        put_varint(&mut series, key.labels.len() as u64);
        for (name, value) in key.labels.iter() {
            put_varint(&mut series, strings.number(name));
            put_varint(&mut series, strings.number(value));
        }
    }
    let Strings { numbers, bytes } = strings;
    framed(MAGIC, VERSION, bytes.len() + series.len() + 20, |out| {
        put_varint(out, numbers.len() as u64);
        out.extend_from_slice(&bytes);
        put_varint(out, keys.len() as u64);
        out.extend_from_slice(&series);
    })
}

/// The string table being built: each distinct string's number, and the
/// strings encoded in order of their numbers.
#[derive(Default)]
struct Strings<'k> {
    numbers: HashMap<&'k str, u64, FastBuildHasher>,
    bytes: Vec<u8>,
}

impl<'k> Strings<'k> {
    fn number(&mut self, s: &'k str) -> u64 {
        let next = self.numbers.len() as u64;
        *self.numbers.entry(s).or_insert_with(|| {
            put_str_varint(&mut self.bytes, s);
            next
        })
    }
}

/// The keys of a snapshot of either format, by id.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<Vec<SeriesKey>> {
    let corrupt = |e: DecodeError| EngineError::corrupt(path, e.0);
    let file = unframe(bytes, MAGIC, "registry file").map_err(corrupt)?;
    if file.version != 1 {
        EngineError::check_version(path, file.version, VERSION)?;
    }
    if !file.checksum_ok {
        return Err(EngineError::corrupt(path, "checksum mismatch"));
    }
    let mut r = file.body;
    let keys = match file.version {
        1 => decode_v1(&mut r),
        _ => decode_v2(&mut r),
    }
    .map_err(corrupt)?;
    if r.remaining() != 0 {
        return Err(EngineError::corrupt(
            path,
            "trailing bytes after the last series",
        ));
    }
    Ok(keys)
}

fn decode_v1(r: &mut Reader<'_>) -> Result<Vec<SeriesKey>, DecodeError> {
    let count = r.u64("series count")?;
    (0..count).map(|_| series_key::decode_key(r)).collect()
}

/// Bytes of keys a format-2 snapshot may spell per byte of its own, past
/// [`SPELLED_ALLOWANCE`]. Keys copy the strings they refer to, so a small
/// crafted file could otherwise spell gigabytes; a real registry spells
/// about four times its size, and no key can spell more than about 2,000
/// times its share of the file.
const SPELLED_PER_BYTE: u64 = 1024;
const SPELLED_ALLOWANCE: u64 = 64 << 20;

fn decode_v2(r: &mut Reader<'_>) -> Result<Vec<SeriesKey>, DecodeError> {
    let budget = (r.remaining() as u64).saturating_mul(SPELLED_PER_BYTE) + SPELLED_ALLOWANCE;
    decode_v2_within(r, budget)
}

/// Format-2 keys spelling at most `budget` bytes in all. Counts are bounded
/// by the bytes left, so a flipped count cannot reserve gigabytes either.
fn decode_v2_within(r: &mut Reader<'_>, mut budget: u64) -> Result<Vec<SeriesKey>, DecodeError> {
    let string_count = r.varint("string count")?;
    let mut strings = Vec::with_capacity(bounded(string_count, r));
    for _ in 0..string_count {
        strings.push(r.str_varint(MAX_VALUE_BYTES, "string")?);
    }
    let string = |r: &mut Reader<'_>, what: &str| -> Result<&str, DecodeError> {
        let n = r.varint(what)?;
        usize::try_from(n)
            .ok()
            .and_then(|n| strings.get(n).copied())
            .ok_or_else(|| DecodeError(format!("{what}: string {n} of {string_count}")))
    };
    let count = r.varint("series count")?;
    let mut keys = Vec::with_capacity(bounded(count, r));
    for _ in 0..count {
        let metric = string(r, "metric name")?;
        let labels = r.varint("label count")?;
        let mut pairs = Vec::with_capacity(bounded(labels, r));
        for _ in 0..labels {
            pairs.push((string(r, "label name")?, string(r, "label value")?));
        }
        let spelled = metric.len() + pairs.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        budget = budget.checked_sub(spelled as u64).ok_or_else(|| {
            DecodeError("the keys spell far more bytes than a registry of this size can".into())
        })?;
        keys.push(series_key::checked_key(metric, pairs)?);
    }
    Ok(keys)
}

/// A capacity for `count` items of at least one byte each.
fn bounded(count: u64, r: &Reader<'_>) -> usize {
    usize::try_from(count).map_or(0, |c| c.min(r.remaining()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<Arc<SeriesKey>> {
        vec![
            Arc::new(SeriesKey::new(
                "up",
                &[("instance", "a:9100"), ("job", "node")],
            )),
            Arc::new(SeriesKey::new(
                "up",
                &[("instance", "b:9100"), ("job", "node")],
            )),
            Arc::new(SeriesKey::new("node", &Vec::<(&str, &str)>::new())),
            Arc::new(SeriesKey::new("é", &[("node", "up")])),
        ]
    }

    #[test]
    fn keys_round_trip_with_each_string_stored_once() {
        let keys = keys();
        let bytes = encode(&keys);
        let path = Path::new("registry.tms");
        let back = decode(path, &bytes).unwrap();
        assert_eq!(back, keys.iter().map(|k| (**k).clone()).collect::<Vec<_>>());
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(text.matches("node").count(), 1, "one copy of a string");
    }

    #[test]
    fn keys_spelling_past_the_budget_are_refused() {
        let value = "v".repeat(4096);
        let keys: Vec<Arc<SeriesKey>> = (0..10)
            .map(|i| {
                Arc::new(SeriesKey::new(
                    "m",
                    &[("a", value.as_str()), ("i", &i.to_string())],
                ))
            })
            .collect();
        let bytes = encode(&keys);
        let path = Path::new("registry.tms");
        let body = || unframe(&bytes, MAGIC, "registry").unwrap().body;
        assert_eq!(decode_v2_within(&mut body(), 10 * 4100).unwrap().len(), 10);
        assert!(decode_v2_within(&mut body(), 9 * 4100).is_err());
        assert_eq!(decode(path, &bytes).unwrap().len(), 10);
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_is_an_error() {
        let bytes = encode(&keys());
        let path = Path::new("registry.tms");
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x21;
            assert!(decode(path, &bad).is_err(), "flip at byte {i}");
            assert!(decode(path, &bytes[..i]).is_err(), "cut at byte {i}");
        }
    }
}
