//! The Prometheus text exposition format 0.0.4, as exporters serve it.
//!
//! ```text
//! # HELP, # TYPE and other comment lines        skipped
//! metric_name [{name="value",...}] value [timestamp_ms]
//! ```
//!
//! Tokens are separated by spaces or tabs; a trailing `\r` is dropped; a
//! trailing comma inside the braces is allowed. Label values unescape `\\`,
//! `\"` and `\n` (any other escape is an error); they are borrowed from the
//! body unless they hold an escape. Values are decimal floats or `NaN`,
//! `+Inf`, `-Inf`; timestamps integer milliseconds. Histogram and summary
//! lines are the plain series they are. A series spelled the same way twice
//! in one body is parsed once (the sink), and the later sample of a
//! timestamp wins. Any malformed line rejects the whole body, naming it.

use std::borrow::Cow;

use super::decimal;
use super::sequence::Predicted;
use super::sink::{bad_line, Labels, Sink};
use crate::error::{EngineError, Result};

/// Parses a whole body into `sink`.
pub fn parse<'a>(body: &'a [u8], sink: &mut Sink<'a>) -> Result<()> {
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len()));
    for (number, end) in ends.enumerate() {
        let line = &body[start..end];
        start = (end + 1).min(body.len());
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        parse_line(line, sink).map_err(|reason| bad_line(number + 1, line, reason))?;
    }
    Ok(())
}

/// One line; `Err` is the reason, which the caller dresses with the line.
fn parse_line<'a>(line: &'a [u8], sink: &mut Sink<'a>) -> Result<(), String> {
    let mut at = skip_blanks(line, 0);
    if at == line.len() || line[at] == b'#' {
        return Ok(());
    }
    let name_start = at;
    let (mut metric, mut labels_at) = (&[][..], None);
    // The spelling an earlier body had here was parsed then: the sink takes
    // the series from the sequence without reading it.
    let predicted = predicted(line, name_start, sink);
    match predicted {
        Some(p) => at = name_start + p.len,
        None => {
            at = metric_name_end(line, at).ok_or("expected a metric name")?;
            metric = &line[name_start..at];
            // Blanks before the braces are tolerated: a value never starts
            // with `{`.
            let brace = skip_blanks(line, at);
            if line.get(brace) == Some(&b'{') {
                labels_at = Some(brace + 1);
                at = labels_end(line, brace + 1)?;
            }
        }
    }
    let spelling = &line[name_start..at];
    let value_start = skip_blanks(line, at);
    if value_start == at && labels_at.is_none() {
        return Err("expected a space after the metric name".into());
    }
    let value_end = token_end(line, value_start);
    let value = parse_value(&line[value_start..value_end])?;
    let ts_start = skip_blanks(line, value_end);
    let ts_end = token_end(line, ts_start);
    let ts = if ts_start < ts_end {
        Some(
            decimal::integer(&line[ts_start..ts_end])
                .ok_or("timestamp must be an integer of milliseconds")?,
        )
    } else {
        None
    };
    if skip_blanks(line, ts_end) != line.len() {
        return Err("unexpected text after the timestamp".into());
    }
    let series = match predicted {
        Some(p) => sink.series_predicted(p, spelling),
        None => sink
            .series(Some(spelling), |labels| {
                if let Some(start) = labels_at {
                    parse_labels(line, start, labels).map_err(EngineError::invalid)?;
                }
                Ok(Cow::Borrowed(ascii(metric)))
            })
            .map_err(|e| e.to_string())?,
    };
    match ts {
        Some(ms) => sink.point(series, ms, value).map_err(|e| e.to_string()),
        None => sink.point_now(series, value).map_err(|e| e.to_string()),
    }
}

/// The series the sink's sequence predicts for the spelling starting at
/// `start`: the same bytes, then blanks and no `{` (which would make the
/// braces part of the spelling).
fn predicted(line: &[u8], start: usize, sink: &Sink<'_>) -> Option<Predicted> {
    let p = sink.predicted(&line[start..])?;
    let end = start + p.len;
    let value = skip_blanks(line, end);
    (value > end && line.get(value) != Some(&b'{')).then_some(p)
}

fn skip_blanks(line: &[u8], mut at: usize) -> usize {
    while at < line.len() && (line[at] == b' ' || line[at] == b'\t') {
        at += 1;
    }
    at
}

fn token_end(line: &[u8], mut at: usize) -> usize {
    while at < line.len() && line[at] != b' ' && line[at] != b'\t' {
        at += 1;
    }
    at
}

/// The end of a metric name `[a-zA-Z_:][a-zA-Z0-9_:]*` starting at `at`.
fn metric_name_end(line: &[u8], at: usize) -> Option<usize> {
    name_end(line, at, METRIC_NAME)
}

/// Byte classes of names: bit 0 may start a label name, bit 1 may continue
/// one, bits 2 and 3 the same for metric names (which also take `:`).
const NAME_CLASS: [u8; 256] = {
    let mut class = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let alpha = c.is_ascii_alphabetic() || c == b'_';
        let digit = c.is_ascii_digit();
        class[b] = (alpha as u8)
            | (((alpha || digit) as u8) << 1)
            | (((alpha || c == b':') as u8) << 2)
            | (((alpha || digit || c == b':') as u8) << 3);
        b += 1;
    }
    class
};
const LABEL_NAME: u8 = 0;
const METRIC_NAME: u8 = 2;

/// The end of a name of the `kind` (its shift in [`NAME_CLASS`]) at `at`.
fn name_end(line: &[u8], at: usize, kind: u8) -> Option<usize> {
    let (first, rest) = (1 << kind, 2 << kind);
    if NAME_CLASS[*line.get(at)? as usize] & first == 0 {
        return None;
    }
    let len = line[at + 1..]
        .iter()
        .position(|&b| NAME_CLASS[b as usize] & rest == 0)
        .unwrap_or(line.len() - at - 1);
    Some(at + 1 + len)
}

/// The end of a label name `[a-zA-Z_][a-zA-Z0-9_]*` starting at `at`.
fn label_name_end(line: &[u8], at: usize) -> Option<usize> {
    name_end(line, at, LABEL_NAME)
}

/// Bytes the grammar above proved ASCII, as a `str`.
fn ascii(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

/// The position just past the `}` closing labels that start at `at`,
/// checking the syntax without building anything (the sink parses a
/// series' labels only the first time it is seen).
fn labels_end(line: &[u8], at: usize) -> Result<usize, String> {
    walk_labels(line, at, false, &mut |_, _| {})
}

/// Pushes the labels that start at `at` onto `out`.
fn parse_labels<'a>(line: &'a [u8], at: usize, out: &mut Labels<'a>) -> Result<(), String> {
    walk_labels(line, at, true, &mut |name, value| {
        out.push((Cow::Borrowed(name), value))
    })?;
    Ok(())
}

/// Reads `name="value"` pairs up to the closing `}`, handing each to
/// `pair` (values decoded only with `decode`: the syntax pass just finds
/// where they end); answers the position past the `}`.
fn walk_labels<'a>(
    line: &'a [u8],
    mut at: usize,
    decode: bool,
    pair: &mut impl FnMut(&'a str, Cow<'a, str>),
) -> Result<usize, String> {
    loop {
        at = skip_blanks(line, at);
        match line.get(at) {
            Some(b'}') => return Ok(at + 1),
            None => return Err("labels are not closed with }".into()),
            _ => {}
        }
        let name_start = at;
        at = label_name_end(line, at).ok_or("expected a label name")?;
        let name = ascii(&line[name_start..at]);
        at = skip_blanks(line, at);
        if line.get(at) != Some(&b'=') {
            return Err(format!("expected = after label {name}"));
        }
        at = skip_blanks(line, at + 1);
        if line.get(at) != Some(&b'"') {
            return Err(format!("expected a quoted value for label {name}"));
        }
        let (value, end) = if decode {
            quoted(line, at + 1)
        } else {
            quoted_end(line, at + 1).map(|end| (Cow::Borrowed(""), end))
        }
        .map_err(|e| format!("label {name}: {e}"))?;
        pair(name, value);
        at = skip_blanks(line, end);
        match line.get(at) {
            Some(b',') => at += 1,
            Some(b'}') => {}
            _ => return Err(format!("expected , or }} after label {name}")),
        }
    }
}

/// The position past the closing quote of a value starting at `at`; only
/// the escapes are checked (validity as UTF-8 is [`quoted`]'s, when the
/// series is new).
fn quoted_end(line: &[u8], at: usize) -> Result<usize, String> {
    let mut i = at;
    loop {
        let next = memchr::memchr2(b'"', b'\\', &line[i..]).map(|n| i + n);
        match next.map(|n| (n, line[n])) {
            None => return Err("value is not closed with \"".into()),
            Some((n, b'"')) => return Ok(n + 1),
            Some((n, _)) => match line.get(n + 1) {
                Some(b'\\' | b'"' | b'n') => i = n + 2,
                _ => return Err("invalid escape (only \\\\, \\\" and \\n)".into()),
            },
        }
    }
}

/// A label value starting at `at` (just past its opening quote), and the
/// position past its closing quote. Borrowed unless it holds an escape.
fn quoted(line: &[u8], at: usize) -> Result<(Cow<'_, str>, usize), String> {
    let rest = &line[at..];
    let close = rest
        .iter()
        .position(|&b| b == b'"' || b == b'\\')
        .ok_or("value is not closed with \"")?;
    if rest[close] == b'"' {
        let value = std::str::from_utf8(&rest[..close]).map_err(|_| "value is not valid UTF-8")?;
        return Ok((Cow::Borrowed(value), at + close + 1));
    }
    let mut value = Vec::with_capacity(rest.len());
    let mut i = 0;
    loop {
        match rest.get(i) {
            None => return Err("value is not closed with \"".into()),
            Some(b'"') => break,
            Some(b'\\') => {
                value.push(match rest.get(i + 1) {
                    Some(b'\\') => b'\\',
                    Some(b'"') => b'"',
                    Some(b'n') => b'\n',
                    _ => return Err("invalid escape (only \\\\, \\\" and \\n)".into()),
                });
                i += 2;
            }
            Some(&b) => {
                value.push(b);
                i += 1;
            }
        }
    }
    let value = String::from_utf8(value).map_err(|_| "value is not valid UTF-8")?;
    Ok((Cow::Owned(value), at + i + 1))
}

/// A sample value: a decimal float, `NaN`, `+Inf`, `-Inf` (any case, as
/// Go's ParseFloat reads them). No hex floats, no digit separators.
fn parse_value(token: &[u8]) -> Result<f64, String> {
    if let Some(value) = decimal::plain(token) {
        return Ok(value);
    }
    let text = std::str::from_utf8(token).map_err(|_| "value is not valid UTF-8")?;
    if text.is_empty() {
        return Err("expected a value".into());
    }
    if text.bytes().any(|b| b == b'_') || text.contains(['x', 'X']) {
        return Err(format!("invalid value {text:?}"));
    }
    text.parse::<f64>()
        .map_err(|_| format!("invalid value {text:?}"))
}

#[cfg(test)]
#[path = "prom_text_test.rs"]
mod tests;
