//! Prometheus remote_write 1.0: a protobuf `WriteRequest`, compressed with
//! snappy's block format (not the framed one).
//!
//! ```text
//! WriteRequest  1: repeated TimeSeries   3: repeated MetricMetadata (ignored)
//! TimeSeries    1: repeated Label   2: repeated Sample
//!               3: repeated Exemplar (ignored)   4: repeated Histogram (ignored)
//! Label         1: string name      2: string value
//! Sample        1: double value     2: int64 timestamp (ms)
//! ```
//!
//! Decoded one field at a time, strings borrowed from the decompressed
//! buffer; unknown fields are skipped, the ignored kinds counted. The
//! length snappy declares is checked against a cap before anything is
//! allocated, so a hostile header cannot claim gigabytes. Values keep their
//! bits: a staleness marker (NaN `0x7ff0000000000002`) stays one.

use std::borrow::Cow;
use std::cell::RefCell;

use super::sink::{Labels, Sink};
use crate::error::{EngineError, Result};
use crate::series_key::METRIC_LABEL;

/// The decompressed body, refused when snappy declares more than `max`.
pub fn decompress(body: &[u8], max: usize) -> Result<Decompressed> {
    let bad = |reason: String| EngineError::BadInput { line: 0, reason };
    let len =
        snap::raw::decompress_len(body).map_err(|e| bad(format!("not a snappy block: {e}")))?;
    if len > max {
        return Err(bad(format!(
            "the body decompresses to {len} bytes, more than the limit of {max}"
        )));
    }
    let mut out = Decompressed {
        buf: SPARE.with(|spare| std::mem::take(&mut *spare.borrow_mut())),
        len,
    };
    if out.buf.len() < len {
        out.buf.resize(len, 0);
    }
    let written = snap::raw::Decoder::new()
        .decompress(body, &mut out.buf[..len])
        .map_err(|e| bad(format!("not a snappy block: {e}")))?;
    // The buffer may hold an earlier body past what this one wrote.
    if written != len {
        return Err(bad(format!(
            "the body decompresses to {written} bytes, its header says {len}"
        )));
    }
    Ok(out)
}

/// Largest decompression buffer a thread keeps for its next body.
const KEEP_BYTES: usize = 8 << 20;

thread_local! {
    /// The last body's buffer: each import would otherwise get fresh
    /// memory, zeroed and page-faulted in (perf: a tenth of remote_write
    /// over HTTP went to faulting in such pages).
    static SPARE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A decompressed body, in a buffer handed back to its thread when dropped.
pub struct Decompressed {
    buf: Vec<u8>,
    len: usize,
}

impl std::ops::Deref for Decompressed {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Decompressed {
    fn drop(&mut self) {
        if self.buf.len() <= KEEP_BYTES {
            let buf = std::mem::take(&mut self.buf);
            SPARE.with(|spare| *spare.borrow_mut() = buf);
        }
    }
}

/// Parses a decompressed `WriteRequest` into `sink`; answers how many
/// exemplars, histograms and metadata entries were ignored.
pub fn parse<'a>(buf: &'a [u8], sink: &mut Sink<'a>) -> Result<u64> {
    let mut ignored = 0;
    let mut series = 0u64;
    let mut fields = Fields::new(buf);
    loop {
        let bad = |reason: String| EngineError::BadInput {
            line: series + 1,
            reason: format!("timeseries {}: {reason}", series + 1),
        };
        // A TimeSeries (field 1) is nearly every field: read without the
        // general decoder.
        let field = match fields.next_bytes(0x0a) {
            Some(message) => (1, Wire::Bytes(message)),
            None => match fields.next() {
                Some(field) => field.map_err(|e| bad(e.into()))?,
                None => return Ok(ignored),
            },
        };
        match field {
            (1, Wire::Bytes(message)) => {
                ignored += time_series(message, sink).map_err(bad)?;
                series += 1;
            }
            (3, Wire::Bytes(_)) => ignored += 1,
            _ => {}
        }
    }
}

/// One `TimeSeries`; answers the exemplars and histograms it ignored.
///
/// Prometheus writes a series' labels first: those bytes spell the series,
/// so a series sent before is recognized without decoding its labels (the
/// sink). Labels anywhere else are decoded every time.
fn time_series<'a>(message: &'a [u8], sink: &mut Sink<'a>) -> Result<u64, String> {
    // The leading labels are skipped by their lengths alone; only what
    // follows them goes through the general decoder (a malformed label
    // leaves `rest` at 0, where the decoder finds and names the fault).
    let labels_end = leading_labels_end(message);
    if let Some(end) = labels_end {
        if let Some(points) = usual_samples(&message[end..]) {
            let index = sink
                .series(Some(&message[..end]), |out| labels(message, out))
                .map_err(|e| e.to_string())?;
            for (ts, value) in points {
                sink.point(index, ts, value).map_err(|e| e.to_string())?;
            }
            return Ok(0);
        }
    }
    let rest = labels_end.unwrap_or(0);
    let (mut spelled_by, mut samples, mut ignored) = (labels_end, 0, 0);
    for field in Fields::new(&message[rest..]) {
        match field? {
            (1, Wire::Bytes(_)) => spelled_by = None,
            (2, Wire::Bytes(_)) => samples += 1,
            (3 | 4, Wire::Bytes(_)) => ignored += 1,
            (1 | 2, _) => return Err("a label or sample that is not a message".into()),
            _ => {}
        }
    }
    if samples == 0 {
        return Ok(ignored);
    }
    let index = sink
        .series(spelled_by.map(|end| &message[..end]), |out| {
            labels(message, out)
        })
        .map_err(|e| e.to_string())?;
    // Samples are never among the leading labels.
    for field in Fields::new(&message[rest..]) {
        if let (2, Wire::Bytes(sample)) = field? {
            let (ts, value) = sample_point(sample)?;
            sink.point(index, ts, value).map_err(|e| e.to_string())?;
        }
    }
    Ok(ignored)
}

/// Pushes the labels of a series' message onto `out`; answers its metric
/// name.
fn labels<'a>(message: &'a [u8], out: &mut Labels<'a>) -> Result<Cow<'a, str>> {
    let mut metric = None;
    for field in Fields::new(message) {
        let (1, Wire::Bytes(label)) = field.map_err(EngineError::invalid)? else {
            continue;
        };
        let (name, value) = label_pair(label).map_err(EngineError::invalid)?;
        if name == METRIC_LABEL {
            metric = Some(Cow::Borrowed(value));
        } else {
            out.push((Cow::Borrowed(name), Cow::Borrowed(value)));
        }
    }
    metric.ok_or_else(|| EngineError::invalid("a series without __name__"))
}

/// The samples after a series' labels, when every field there is a Sample
/// as Prometheus writes one (tag 0x12, a one-byte length, then
/// [`usual_sample`]) and there is at least one; `None` sends the message to
/// the general decoder.
fn usual_samples(rest: &[u8]) -> Option<impl Iterator<Item = (i64, f64)> + '_> {
    let sample = |at: usize| -> Option<(usize, (i64, f64))> {
        let (&tag, &len) = (rest.get(at)?, rest.get(at + 1)?);
        let end = at + 2 + usize::from(len);
        if tag != 0x12 || len >= 0x80 || end > rest.len() {
            return None;
        }
        Some((end, usual_sample(&rest[at + 2..end])?))
    };
    let mut at = 0;
    while at < rest.len() {
        at = sample(at)?.0;
    }
    let mut at = 0;
    (!rest.is_empty()).then(|| {
        std::iter::from_fn(move || {
            let (end, point) = sample(at)?;
            at = end;
            Some(point)
        })
    })
}

/// Where the labels a series' message starts with end: fields 1 (tag
/// 0x0a), each skipped by its length. `None` when a length is malformed or
/// runs past the end.
fn leading_labels_end(message: &[u8]) -> Option<usize> {
    let mut fields = Fields::new(message);
    while fields.next_bytes(0x0a).is_some() {}
    // Stopped at a label: one whose length does not hold.
    (fields.buf.first() != Some(&0x0a)).then(|| message.len() - fields.buf.len())
}

fn label_pair(message: &[u8]) -> Result<(&str, &str), String> {
    let (mut name, mut value) = ("", "");
    for field in Fields::new(message) {
        match field? {
            (1, Wire::Bytes(b)) => name = utf8(b, "label name")?,
            (2, Wire::Bytes(b)) => value = utf8(b, "label value")?,
            _ => {}
        }
    }
    Ok((name, value))
}

/// `(timestamp ms, value)` of a `Sample`.
fn sample_point(message: &[u8]) -> Result<(i64, f64), String> {
    if let Some(point) = usual_sample(message) {
        return Ok(point);
    }
    let (mut ts, mut value) = (0i64, 0f64);
    for field in Fields::new(message) {
        match field? {
            (1, Wire::Fixed64(bits)) => value = f64::from_bits(bits),
            // int64 is two's complement in a varint.
            (2, Wire::Varint(v)) => ts = v as i64,
            (1 | 2, _) => return Err("a sample field of the wrong wire type".into()),
            _ => {}
        }
    }
    Ok((ts, value))
}

/// A `Sample` as Prometheus encodes one: the value (tag 0x09, 8 bytes),
/// then the timestamp (tag 0x10, a varint), nothing else. Anything else
/// (a zero value left out, fields reordered) takes the general decoder.
fn usual_sample(message: &[u8]) -> Option<(i64, f64)> {
    if message.len() < 11 || message[0] != 0x09 || message[9] != 0x10 {
        return None;
    }
    let mut bits = [0u8; 8];
    bits.copy_from_slice(&message[1..9]);
    let (ts, used) = varint_at(message, 10).ok()?;
    // int64 is two's complement in a varint.
    (10 + used == message.len()).then_some((ts as i64, f64::from_bits(u64::from_le_bytes(bits))))
}

/// The varint at `buf[at..]` and how many bytes it took.
fn varint_at(buf: &[u8], at: usize) -> Result<(u64, usize), &'static str> {
    // Tags, lengths of labels and most timestamps' first byte: one byte.
    match buf.get(at) {
        Some(&byte) if byte < 0x80 => return Ok((u64::from(byte), 1)),
        None => return Err("truncated varint"),
        Some(_) => {}
    }
    let mut value = 0u64;
    for (i, shift) in (0..64).step_by(7).enumerate() {
        let &byte = buf.get(at + i).ok_or("truncated varint")?;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err("varint longer than 10 bytes")
}

fn utf8<'a>(bytes: &'a [u8], what: &str) -> Result<&'a str, String> {
    std::str::from_utf8(bytes).map_err(|_| format!("{what} is not valid UTF-8"))
}

/// A field's payload by wire type.
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32,
}

/// The fields of one protobuf message, each `(number, payload)`; an error
/// ends the iteration.
struct Fields<'a> {
    buf: &'a [u8],
    failed: bool,
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Fields { buf, failed: false }
    }

    fn varint(&mut self) -> Result<u64, &'static str> {
        let (value, used) = varint_at(self.buf, 0)?;
        self.buf = &self.buf[used..];
        Ok(value)
    }

    /// The payload of the next field when it is a length-delimited one
    /// whose key is the single byte `key` and whose length fits; `None`
    /// (and nothing consumed) for any other field or a fault, which the
    /// general decoder then reads or names.
    fn next_bytes(&mut self, key: u8) -> Option<&'a [u8]> {
        if self.failed || self.buf.first() != Some(&key) {
            return None;
        }
        let (len, used) = varint_at(self.buf, 1).ok()?;
        let start = 1 + used;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        let payload = self.buf.get(start..end)?;
        self.buf = &self.buf[end..];
        Some(payload)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if n > self.buf.len() {
            return Err("a length runs past the end of its message");
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn field(&mut self) -> Result<(u64, Wire<'a>), &'static str> {
        let key = self.varint()?;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                let mut bits = [0u8; 8];
                bits.copy_from_slice(self.take(8)?);
                Wire::Fixed64(u64::from_le_bytes(bits))
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| "length too large")?;
                Wire::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Wire::Fixed32
            }
            _ => return Err("unsupported wire type (groups are not used by remote_write)"),
        };
        Ok((key >> 3, wire))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Wire<'a>), &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.buf.is_empty() {
            return None;
        }
        let field = self.field();
        self.failed = field.is_err();
        Some(field)
    }
}

#[cfg(test)]
#[path = "remote_write_test.rs"]
mod tests;
