//! PromQL, as Prometheus 2.42 evaluates it, over the engine's series.
//!
//! [`instant`] and [`range`] parse a query (`ast`), evaluate it over all
//! steps at once (`eval`: selectors, then `functions`/`range`,
//! `aggregate`, `binary`), and return Prometheus' result types. Times are
//! milliseconds; the engine's own timestamp unit is converted in `source`.

mod aggregate;
pub mod ast;
mod binary;
mod eval;
mod functions;
pub mod json;
mod numeric;
mod range;
pub mod source;
pub mod syntax;
mod tiered;
pub mod value;

use std::time::Duration;

use crate::error::EngineError;
pub use source::Source;
pub use value::{Labels, RangeSeries, Series, Steps};

use ast::Kind;
use value::Value;

/// How a query is evaluated.
#[derive(Debug, Clone)]
pub struct Options {
    /// How far back an instant selector looks for a sample (ms).
    pub lookback_delta: i64,
    /// Samples a query may hold; past it the query fails.
    pub max_samples: usize,
    /// Wall-clock limit of one evaluation.
    pub timeout: Option<Duration>,
    /// The step of a subquery written without one (ms).
    pub subquery_step: i64,
}

impl Default for Options {
    /// Prometheus' defaults: 5 m lookback, 50 million samples, 2 min timeout,
    /// 1 m subquery step.
    fn default() -> Self {
        Options {
            lookback_delta: 300_000,
            max_samples: 50_000_000,
            timeout: Some(Duration::from_secs(120)),
            subquery_step: 60_000,
        }
    }
}

/// Prometheus' error classes, which decide the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// The query is malformed (400).
    BadData,
    /// The query failed while running (422).
    Execution,
    /// It ran out of time (503).
    Timeout,
    /// Storage or an engine bug (500).
    Internal,
}

impl ErrorType {
    /// The `errorType` of Prometheus' JSON.
    pub fn name(self) -> &'static str {
        match self {
            ErrorType::BadData => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Timeout => "timeout",
            ErrorType::Internal => "internal",
        }
    }
}

/// A query that could not be answered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub error_type: ErrorType,
    pub message: String,
    /// Where in the query a syntax error is.
    pub position: Option<syntax::Position>,
}

impl Error {
    pub fn bad_data(message: impl Into<String>) -> Error {
        Error {
            error_type: ErrorType::BadData,
            message: message.into(),
            position: None,
        }
    }

    pub fn execution(message: impl Into<String>) -> Error {
        Error {
            error_type: ErrorType::Execution,
            message: message.into(),
            position: None,
        }
    }

    pub fn timeout(message: impl Into<String>) -> Error {
        Error {
            error_type: ErrorType::Timeout,
            message: message.into(),
            position: None,
        }
    }

    pub fn internal(message: impl Into<String>) -> Error {
        Error {
            error_type: ErrorType::Internal,
            message: message.into(),
            position: None,
        }
    }

    /// A query that does not parse: Prometheus' `line:column: parse error:
    /// ...` message, the position also kept apart.
    pub fn syntax(err: syntax::SyntaxError) -> Error {
        Error {
            error_type: ErrorType::BadData,
            message: err.to_string(),
            position: err.position,
        }
    }

    /// What Prometheus answers when a query would pass `max_samples`.
    pub fn too_many_samples() -> Error {
        Error::execution(
            "query processing would load too many samples into memory in query execution",
        )
    }

    pub(crate) fn storage(err: EngineError) -> Error {
        Error::internal(format!("expanding series: {err}"))
    }
}

impl From<Error> for EngineError {
    fn from(err: Error) -> EngineError {
        EngineError::Query {
            error_type: err.error_type.name(),
            message: err.message,
            position: err.position.map(|p| (p.line, p.column)),
        }
    }
}

impl From<EngineError> for Error {
    /// Back from the engine's error (as work on the engine's threads
    /// reports it): a query error as it was, anything else as storage.
    fn from(err: EngineError) -> Error {
        match err {
            EngineError::Query {
                error_type,
                message,
                position,
            } => Error {
                error_type: match error_type {
                    "bad_data" => ErrorType::BadData,
                    "execution" => ErrorType::Execution,
                    "timeout" => ErrorType::Timeout,
                    _ => ErrorType::Internal,
                },
                message,
                position: position.map(|(line, column)| syntax::Position { line, column }),
            },
            other => Error::storage(other),
        }
    }
}

/// One sample of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub t: i64,
    pub v: f64,
}

/// What a query answers, in Prometheus' result types.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryValue {
    Scalar {
        t: i64,
        v: f64,
    },
    String {
        t: i64,
        v: String,
    },
    /// In evaluation order (`sort`, `topk` decide it).
    Vector(Vec<Sample>),
    /// Sorted by labels.
    Matrix(Vec<RangeSeries>),
}

/// Evaluates `query` at time `t` (ms).
pub fn instant(
    source: &dyn Source,
    query: &str,
    t: i64,
    options: &Options,
) -> Result<QueryValue, Error> {
    let expr = ast::parse(query, t, t).map_err(Error::syntax)?;
    instant_expr(source, &expr, t, options)
}

/// Evaluates a parsed query at time `t` (ms).
pub fn instant_expr(
    source: &dyn Source,
    expr: &ast::Expr,
    t: i64,
    options: &Options,
) -> Result<QueryValue, Error> {
    let mut ev = eval::Evaluator::new(source, options);
    Ok(match ev.eval(expr, Steps::instant(t))? {
        Value::Scalar(v) => QueryValue::Scalar { t, v: v[0] },
        Value::String(v) => QueryValue::String { t, v },
        Value::Vector(series) => QueryValue::Vector(
            series
                .into_iter()
                .filter_map(|s| {
                    s.values[0].map(|v| Sample {
                        labels: s.labels,
                        t,
                        v,
                    })
                })
                .collect(),
        ),
        Value::Matrix(mut m) => {
            m.sort_by(|a, b| a.labels.cmp(&b.labels));
            QueryValue::Matrix(m)
        }
    })
}

/// Evaluates `query` at `start`, `start + step`, ... up to `end` (ms).
/// The query must be a scalar or an instant vector.
pub fn range(
    source: &dyn Source,
    query: &str,
    start: i64,
    end: i64,
    step: i64,
    options: &Options,
) -> Result<QueryValue, Error> {
    if step <= 0 {
        return Err(Error::bad_data(
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if end < start {
        return Err(Error::bad_data(
            "end timestamp must not be before start time",
        ));
    }
    let expr = ast::parse(query, start, end).map_err(Error::syntax)?;
    range_expr(source, &expr, Steps { start, end, step }, options)
}

/// Evaluates a parsed query at every step of `steps`.
pub fn range_expr(
    source: &dyn Source,
    expr: &ast::Expr,
    steps: Steps,
    options: &Options,
) -> Result<QueryValue, Error> {
    let kind = expr.kind();
    if kind != Kind::Scalar && kind != Kind::Vector {
        let name = if kind == Kind::Matrix {
            "range vector"
        } else {
            "string"
        };
        return Err(Error::bad_data(format!(
            "invalid expression type {name:?} for range query, must be Scalar or instant Vector"
        )));
    }
    let mut ev = eval::Evaluator::new(source, options);
    let mut matrix: Vec<RangeSeries> = match ev.eval(expr, steps)? {
        Value::Scalar(v) => vec![RangeSeries {
            labels: Labels::new(),
            points: steps.times().zip(v).collect(),
        }],
        Value::Vector(series) => series
            .into_iter()
            .map(|s| RangeSeries {
                points: steps
                    .times()
                    .zip(s.values)
                    .filter_map(|(t, v)| v.map(|v| (t, v)))
                    .collect(),
                labels: s.labels,
            })
            .collect(),
        _ => Vec::new(),
    };
    matrix.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(QueryValue::Matrix(matrix))
}
