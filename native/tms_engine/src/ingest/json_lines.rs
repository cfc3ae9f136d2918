//! JSON lines, as VictoriaMetrics' `/api/v1/import` takes them and its
//! `/api/v1/export` writes them: one series a line,
//!
//! ```text
//! {"metric":{"__name__":"up","job":"node"},"values":[1,0.5],"timestamps":[1700000000000,1700000001000]}
//! ```
//!
//! `__name__` is the metric; values are numbers or the strings `NaN`,
//! `Inf`, `+Inf`, `-Inf`; timestamps integer milliseconds, as many as
//! values. Blank lines are skipped. Strings are borrowed from the body
//! unless they hold an escape; a line's `metric` object, as written, is the
//! series' spelling (a series repeated over lines is parsed once).

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::sink::{bad_line, Labels, Sink};
use crate::error::Result;
use crate::series_key::METRIC_LABEL;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<'a> {
    #[serde(borrow)]
    metric: &'a RawValue,
    #[serde(borrow)]
    values: Vec<Value<'a>>,
    timestamps: Vec<i64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Value<'a> {
    Number(f64),
    Text(&'a str),
}

/// A JSON object's members in order, strings borrowed where they can be.
struct Pairs<'a>(Labels<'a>);

impl<'de> Deserialize<'de> for Pairs<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PairsVisitor;
        impl<'de> Visitor<'de> for PairsVisitor {
            type Value = Pairs<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of label names to string values")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Pairs<'de>, M::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((k, v)) = map.next_entry::<Cow<'de, str>, Cow<'de, str>>()? {
                    pairs.push((k, v));
                }
                Ok(Pairs(pairs))
            }
        }
        deserializer.deserialize_map(PairsVisitor)
    }
}

/// Parses a whole body into `sink`.
pub fn parse<'a>(body: &'a [u8], sink: &mut Sink<'a>) -> Result<()> {
    for (number, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        parse_line(line, sink).map_err(|reason| bad_line(number + 1, line, reason))?;
    }
    Ok(())
}

fn parse_line<'a>(line: &'a [u8], sink: &mut Sink<'a>) -> Result<(), String> {
    let parsed: Line<'a> = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    if parsed.values.len() != parsed.timestamps.len() {
        return Err(format!(
            "{} values but {} timestamps",
            parsed.values.len(),
            parsed.timestamps.len()
        ));
    }
    let metric_json = parsed.metric.get();
    let series = sink
        .series(Some(metric_json.as_bytes()), |labels| {
            let Pairs(pairs) = serde_json::from_str(metric_json)
                .map_err(|e| crate::error::EngineError::invalid(format!("metric: {e}")))?;
            let mut metric = None;
            for (name, value) in pairs {
                if name == METRIC_LABEL {
                    metric = Some(value);
                } else {
                    labels.push((name, value));
                }
            }
            metric.ok_or_else(|| crate::error::EngineError::invalid("metric has no __name__"))
        })
        .map_err(|e| e.to_string())?;
    for (value, &ts) in parsed.values.iter().zip(&parsed.timestamps) {
        let value = match value {
            Value::Number(v) => *v,
            Value::Text(text) => {
                parse_special(text).ok_or_else(|| format!("invalid value {text:?}"))?
            }
        };
        sink.point(series, ts, value).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The values JSON has no number for.
fn parse_special(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Inf" | "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::EngineError;
    use crate::ingest::ImportOptions;

    /// `(series, points as (series, ts, value bits), every label)`.
    type Parsed = (usize, Vec<(usize, i64, u64)>, Vec<(String, String)>);

    fn parse_all(body: &str) -> Result<Parsed> {
        let opts = ImportOptions {
            labels: Vec::new(),
            default_ts: 0,
            max_decompressed: 0,
        };
        let mut sink = Sink::new(&opts, 1000);
        parse(body.as_bytes(), &mut sink)?;
        let (series, points) = sink.plain();
        let labels = series.iter().flat_map(|s| s.1.clone()).collect();
        Ok((series.len(), points, labels))
    }

    #[test]
    fn lines_of_series_with_special_values_and_escapes() {
        let body = concat!(
            r#"{"metric":{"__name__":"up","job":"n\"ode","e":""},"values":[1,"NaN","+Inf",-2.5],"timestamps":[1,2,3,4]}"#,
            "\n\n",
            r#"{"metric":{"__name__":"up","job":"n\"ode","e":""},"values":[5],"timestamps":[5]}"#,
            "\r\n"
        );
        let (series, points, labels) = parse_all(body).unwrap();
        assert_eq!(series, 1, "the same spelling is one series");
        assert_eq!(
            labels,
            vec![("job".into(), "n\"ode".into()), ("e".into(), "".into())]
        );
        let bits: Vec<u64> = points.iter().map(|p| p.2).collect();
        assert_eq!(
            points.iter().map(|p| p.1).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert!(f64::from_bits(bits[1]).is_nan());
        assert_eq!(bits[2], f64::INFINITY.to_bits());
        assert_eq!(bits[3], (-2.5f64).to_bits());
    }

    #[test]
    fn malformed_lines_name_their_line() {
        let cases = [
            (
                r#"{"metric":{"job":"x"},"values":[1],"timestamps":[1]}"#,
                "no __name__",
            ),
            (
                r#"{"metric":{"__name__":"m"},"values":[1,2],"timestamps":[1]}"#,
                "2 values but 1 timestamps",
            ),
            (
                r#"{"metric":{"__name__":"m"},"values":["x"],"timestamps":[1]}"#,
                "invalid value",
            ),
            (
                r#"{"metric":{"__name__":"m"},"values":[1],"timestamps":[1.5]}"#,
                "invalid type",
            ),
            (
                r#"{"metric":{"__name__":"m","a":1},"values":[1],"timestamps":[1]}"#,
                "metric",
            ),
            (r#"{"metric":{"__name__":"m"},"values":[1]"#, "EOF"),
            (
                r#"{"metric":{"__name__":"m"},"values":[1],"timestamps":[1],"x":2}"#,
                "unknown field",
            ),
        ];
        for (line, reason) in cases {
            let body = format!(
                "{}\n{line}\n",
                r#"{"metric":{"__name__":"ok"},"values":[1],"timestamps":[1]}"#
            );
            match parse_all(&body) {
                Err(EngineError::BadInput { line: 2, reason: r }) => {
                    assert!(r.contains(reason), "{line}: {r}")
                }
                other => panic!("{line}: {other:?}"),
            }
        }
    }
}
