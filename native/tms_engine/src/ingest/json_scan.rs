//! The fast path of JSON lines: a scanner for the one shape VictoriaMetrics'
//! export writes, `{"metric":{...},"values":[...],"timestamps":[...]}`
//! (members in any order, any JSON whitespace).
//!
//! It never decides that a line is wrong: anything it does not recognize,
//! valid or not, answers `None` and the line goes to serde_json, which parses
//! every valid line and words every error. So the scanner only has to be
//! exact where it succeeds: it takes strict JSON numbers and plain strings,
//! and leaves escapes in keys, leading zeros and the like to serde.

use super::decimal;
use super::sequence::Predicted;

/// What the scanner found: the `metric` object as written (the series'
/// spelling, parsed by serde only for a new series), the series `predict`
/// saw the object start with, and, in `values` and `timestamps`, the
/// samples. An object is never scanned when `predict` knows its spelling:
/// the extent of an object depends on its bytes alone.
pub fn line<'a>(
    line: &'a [u8],
    values: &mut Vec<f64>,
    timestamps: &mut Vec<i64>,
    predict: impl Fn(&[u8]) -> Option<Predicted>,
) -> Option<(&'a [u8], Option<Predicted>)> {
    values.clear();
    timestamps.clear();
    let mut scan = Scan { s: line, at: 0 };
    scan.byte(b'{')?;
    let (mut metric, mut seen_values, mut seen_timestamps) = (None, false, false);
    let mut predicted = None;
    loop {
        let key = scan.plain_string()?;
        scan.byte(b':')?;
        match key {
            b"metric" if metric.is_none() => {
                scan.blanks();
                predicted = predict(&line[scan.at..]);
                metric = Some(match predicted {
                    Some(p) => scan.take(p.len),
                    None => scan.object()?,
                });
            }
            b"values" if !seen_values => {
                scan.array(values, value)?;
                seen_values = true;
            }
            b"timestamps" if !seen_timestamps => {
                scan.array(timestamps, integer)?;
                seen_timestamps = true;
            }
            _ => return None,
        }
        match scan.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    scan.blanks();
    let complete = scan.at == line.len() && seen_values && seen_timestamps;
    (complete && values.len() == timestamps.len())
        .then_some(metric)
        .flatten()
        .map(|metric| (metric, predicted))
}

struct Scan<'a> {
    s: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    fn blanks(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte after blanks.
    fn next(&mut self) -> Option<u8> {
        self.blanks();
        let b = *self.s.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    /// The next `len` bytes, which the caller knows are there.
    fn take(&mut self, len: usize) -> &'a [u8] {
        let taken = &self.s[self.at..self.at + len];
        self.at += len;
        taken
    }

    fn byte(&mut self, expected: u8) -> Option<()> {
        (self.next()? == expected).then_some(())
    }

    /// A string without escapes or control bytes, without its quotes.
    fn plain_string(&mut self) -> Option<&'a [u8]> {
        self.byte(b'"')?;
        let start = self.at;
        let len = self.s[start..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        self.at = start + len;
        self.byte(b'"')?;
        Some(&self.s[start..start + len])
    }

    /// An object of strings as written, braces included: its extent only
    /// (strings and their escapes skipped, no nesting), its content being
    /// serde's to check when the series is new.
    fn object(&mut self) -> Option<&'a [u8]> {
        self.byte(b'{')?;
        let start = self.at - 1;
        let mut in_string = false;
        while let Some(&b) = self.s.get(self.at) {
            self.at += 1;
            match (in_string, b) {
                (true, b'\\') => self.at += 1,
                (true, b'"') | (false, b'"') => in_string = !in_string,
                (false, b'}') => return self.s.get(start..self.at),
                (false, b'{' | b'[') => return None,
                _ => {}
            }
        }
        None
    }

    /// A non-empty array of scalars, each token read by `item` into `out`.
    fn array<T>(&mut self, out: &mut Vec<T>, item: fn(&[u8]) -> Option<T>) -> Option<()> {
        self.byte(b'[')?;
        loop {
            self.blanks();
            let start = self.at;
            let len = self.s[start..]
                .iter()
                .position(|&b| matches!(b, b',' | b']' | b' ' | b'\t' | b'\n' | b'\r'))?;
            self.at = start + len;
            out.push(item(&self.s[start..self.at])?);
            match self.next()? {
                b',' => continue,
                b']' => return Some(()),
                _ => return None,
            }
        }
    }
}

/// A value: a JSON number, or one of the strings JSON needs for the rest.
fn value(token: &[u8]) -> Option<f64> {
    match token {
        b"\"NaN\"" => Some(f64::NAN),
        b"\"Inf\"" | b"\"+Inf\"" => Some(f64::INFINITY),
        b"\"-Inf\"" => Some(f64::NEG_INFINITY),
        _ if is_json_number(token) => {
            // serde_json refuses a number past f64's range; str::parse
            // would make it infinite.
            decimal::plain(token)
                .or_else(|| std::str::from_utf8(token).ok()?.parse().ok())
                .filter(|v: &f64| v.is_finite())
        }
        _ => None,
    }
}

/// A JSON integer: `-?(0|[1-9][0-9]*)` within `i64`, not `-0`.
fn integer(token: &[u8]) -> Option<i64> {
    let digits = token.strip_prefix(b"-").unwrap_or(token);
    let leading_zero = digits.first() == Some(&b'0') && digits.len() > 1;
    // serde_json reads `-0` as a float, which is no i64 to it.
    if leading_zero || token == b"-0" || !digits.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    decimal::integer(token)
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, JSON's number grammar.
fn is_json_number(token: &[u8]) -> bool {
    fn digits(s: &[u8]) -> usize {
        s.iter().take_while(|b| b.is_ascii_digit()).count()
    }
    let mut at = usize::from(token.first() == Some(&b'-'));
    match digits(&token[at..]) {
        0 => return false,
        n if n > 1 && token[at] == b'0' => return false,
        n => at += n,
    }
    if token.get(at) == Some(&b'.') {
        match digits(&token[at + 1..]) {
            0 => return false,
            n => at += 1 + n,
        }
    }
    if let Some(b'e' | b'E') = token.get(at) {
        at += 1;
        if let Some(b'+' | b'-') = token.get(at) {
            at += 1;
        }
        match digits(&token[at..]) {
            0 => return false,
            n => at += n,
        }
    }
    at == token.len()
}
