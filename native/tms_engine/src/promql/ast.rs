//! The expression tree the evaluator runs: `promql-parser`'s AST turned into
//! our own, with times in milliseconds, `@ start()`/`@ end()` resolved,
//! matchers compiled by the index's rules, and everything Prometheus 2.42
//! does not know refused.
//!
//! The crate parses the language as Prometheus 3.x has it; a 2.42 engine
//! must not accept what 2.42 rejects (new functions and aggregations, `fill`
//! modifiers, `or` inside braces), so [`parse`] checks for each of them.

use std::sync::Once;
use std::time::{Duration, SystemTime};

use promql_parser::label::MatchOp as ParsedOp;
use promql_parser::parser::token::{self, TokenType};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{self as pp, Function, LabelModifier, VectorMatchCardinality};

use super::syntax::{self, SyntaxError};
use crate::index::Matcher;

/// What an expression evaluates to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Scalar,
    Vector,
    Matrix,
    String,
}

/// A series selector: its matchers (the metric name as a `__name__`
/// matcher), offset and `@` time, both in milliseconds.
#[derive(Debug, Clone)]
pub struct Selector {
    pub matchers: Vec<Matcher>,
    pub offset: i64,
    pub at: Option<i64>,
}

/// How a binary operation between two vectors pairs their samples.
#[derive(Debug, Clone)]
pub struct Matching {
    pub card: Card,
    /// `on(labels)` when true, `ignoring(labels)` (or nothing) when false.
    pub on: bool,
    pub labels: Vec<String>,
    /// The `group_left`/`group_right` labels copied from the "one" side.
    pub include: Vec<String>,
}

/// Cardinality of a vector matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Card {
    OneToOne,
    ManyToOne,
    OneToMany,
    /// Set operators (`and`, `or`, `unless`).
    ManyToMany,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl BinOp {
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Lt | BinOp::Ge | BinOp::Le
        )
    }

    /// Arithmetic drops the metric name from its results (comparisons and
    /// `atan2` keep it, as in Prometheus).
    pub fn drops_name(self) -> bool {
        matches!(
            self,
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod | BinOp::Pow
        )
    }
}

/// Aggregation operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggOp {
    Sum,
    Avg,
    Count,
    Min,
    Max,
    Group,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    CountValues,
    Quantile,
}

/// A PromQL expression, parentheses removed.
#[derive(Debug, Clone)]
pub enum Expr {
    Number(f64),
    String(String),
    Selector(Selector),
    /// A range selector `sel[range]`.
    Range {
        selector: Selector,
        range: i64,
    },
    Subquery {
        expr: Box<Expr>,
        range: i64,
        /// None: the engine's default subquery step.
        step: Option<i64>,
        offset: i64,
        at: Option<i64>,
    },
    Call {
        func: &'static str,
        args: Vec<Expr>,
        kind: Kind,
    },
    Aggregate {
        op: AggOp,
        expr: Box<Expr>,
        param: Option<Box<Expr>>,
        /// Sorted, deduplicated.
        grouping: Vec<String>,
        without: bool,
    },
    Negate(Box<Expr>),
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
        return_bool: bool,
        matching: Matching,
    },
}

impl Expr {
    /// What the expression evaluates to.
    pub fn kind(&self) -> Kind {
        match self {
            Expr::Number(_) => Kind::Scalar,
            Expr::String(_) => Kind::String,
            Expr::Selector(_) | Expr::Aggregate { .. } => Kind::Vector,
            Expr::Range { .. } | Expr::Subquery { .. } => Kind::Matrix,
            Expr::Call { kind, .. } => *kind,
            Expr::Negate(inner) => inner.kind(),
            Expr::Binary { lhs, rhs, .. } => {
                if lhs.kind() == Kind::Scalar && rhs.kind() == Kind::Scalar {
                    Kind::Scalar
                } else {
                    Kind::Vector
                }
            }
        }
    }
}

/// The functions of Prometheus 2.42 that take and return floats (its
/// native-histogram functions answer nothing on float samples).
pub const FUNCTIONS: &[&str] = &[
    "abs",
    "absent",
    "absent_over_time",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "avg_over_time",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "cos",
    "cosh",
    "count_over_time",
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "deg",
    "delta",
    "deriv",
    "exp",
    "floor",
    "histogram_count",
    "histogram_fraction",
    "histogram_quantile",
    "histogram_sum",
    "holt_winters",
    "hour",
    "idelta",
    "increase",
    "irate",
    "label_replace",
    "label_join",
    "ln",
    "log10",
    "log2",
    "last_over_time",
    "max_over_time",
    "min_over_time",
    "minute",
    "month",
    "pi",
    "predict_linear",
    "present_over_time",
    "quantile_over_time",
    "rad",
    "rate",
    "resets",
    "round",
    "scalar",
    "sgn",
    "sin",
    "sinh",
    "sort",
    "sort_desc",
    "sqrt",
    "stddev_over_time",
    "stdvar_over_time",
    "sum_over_time",
    "tan",
    "tanh",
    "time",
    "timestamp",
    "vector",
    "year",
];

/// Parses `query` for evaluation over `[start, end]` (milliseconds; equal
/// for an instant query), which `@ start()` and `@ end()` refer to.
///
/// Errors are for the user: the parser's, placed in the query where it can
/// be (`syntax`), or what 2.42 refuses.
pub fn parse(query: &str, start: i64, end: i64) -> Result<Expr, SyntaxError> {
    static HOLT_WINTERS: Once = Once::new();
    // Prometheus 3 renamed holt_winters; the crate follows it. 2.42 has it.
    HOLT_WINTERS.call_once(|| {
        let _ = pp::register_extra_functions(vec![Function::new(
            "holt_winters",
            vec![ValueType::Matrix, ValueType::Scalar, ValueType::Scalar],
            0,
            ValueType::Vector,
            false,
        )]);
    });
    syntax::check_nesting(query)?;
    // promql-parser panics on some input (`x offset Inf`): a refusal too.
    let parsed = std::panic::catch_unwind(|| pp::parse(query))
        .unwrap_or_else(|_| Err("the parser failed on this query".to_string()))
        .map_err(|e| syntax::explain(query, &e))?;
    Convert { start, end }
        .expr(&parsed)
        .map_err(|message| SyntaxError {
            position: None,
            message,
        })
}

struct Convert {
    start: i64,
    end: i64,
}

impl Convert {
    fn expr(&self, e: &pp::Expr) -> Result<Expr, String> {
        Ok(match e {
            pp::Expr::NumberLiteral(n) => Expr::Number(n.val),
            pp::Expr::StringLiteral(s) => Expr::String(s.val.clone()),
            pp::Expr::Paren(p) => self.expr(&p.expr)?,
            pp::Expr::VectorSelector(vs) => Expr::Selector(self.selector(vs)?),
            pp::Expr::MatrixSelector(ms) => Expr::Range {
                selector: self.selector(&ms.vs)?,
                range: millis(&ms.range),
            },
            pp::Expr::Subquery(sq) => Expr::Subquery {
                expr: Box::new(self.expr(&sq.expr)?),
                range: millis(&sq.range),
                step: sq.step.as_ref().map(millis).filter(|s| *s > 0),
                offset: offset(&sq.offset),
                at: self.at(&sq.at),
            },
            pp::Expr::Unary(u) => Expr::Negate(Box::new(self.expr(&u.expr)?)),
            pp::Expr::Call(call) => {
                let name = call.func.name;
                let func = FUNCTIONS
                    .iter()
                    .find(|f| **f == name)
                    .ok_or_else(|| format!("unknown function with name {name:?}"))?;
                let kind = if matches!(name, "time" | "pi" | "scalar") {
                    Kind::Scalar
                } else {
                    Kind::Vector
                };
                let args = call
                    .args
                    .args
                    .iter()
                    .map(|a| self.expr(a))
                    .collect::<Result<_, _>>()?;
                Expr::Call { func, args, kind }
            }
            pp::Expr::Aggregate(agg) => {
                let op = agg_op(agg.op)?;
                let (mut grouping, without) = match &agg.modifier {
                    None => (Vec::new(), false),
                    Some(LabelModifier::Include(l)) => (l.labels.clone(), false),
                    Some(LabelModifier::Exclude(l)) => (l.labels.clone(), true),
                };
                grouping.sort();
                grouping.dedup();
                Expr::Aggregate {
                    op,
                    expr: Box::new(self.expr(&agg.expr)?),
                    param: match &agg.param {
                        Some(p) => Some(Box::new(self.expr(p)?)),
                        None => None,
                    },
                    grouping,
                    without,
                }
            }
            pp::Expr::Binary(b) => {
                let op = bin_op(b.op)?;
                let modifier = b.modifier.clone().unwrap_or_default();
                if modifier.fill_values.lhs.is_some() || modifier.fill_values.rhs.is_some() {
                    return Err("fill modifiers are not in Prometheus 2.42".into());
                }
                let (on, labels) = match &modifier.matching {
                    Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
                    Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
                    None => (false, Vec::new()),
                };
                let (card, include) = match &modifier.card {
                    _ if matches!(op, BinOp::And | BinOp::Or | BinOp::Unless) => {
                        (Card::ManyToMany, Vec::new())
                    }
                    VectorMatchCardinality::OneToOne | VectorMatchCardinality::ManyToMany => {
                        (Card::OneToOne, Vec::new())
                    }
                    VectorMatchCardinality::ManyToOne(l) => (Card::ManyToOne, l.labels.clone()),
                    VectorMatchCardinality::OneToMany(l) => (Card::OneToMany, l.labels.clone()),
                };
                Expr::Binary {
                    op,
                    lhs: Box::new(self.expr(&b.lhs)?),
                    rhs: Box::new(self.expr(&b.rhs)?),
                    return_bool: modifier.return_bool,
                    matching: Matching {
                        card,
                        on,
                        labels,
                        include,
                    },
                }
            }
            pp::Expr::Extension(_) => return Err("unsupported expression".into()),
        })
    }

    fn selector(&self, vs: &pp::VectorSelector) -> Result<Selector, String> {
        if !vs.matchers.or_matchers.is_empty() {
            return Err("`or` inside a selector is not in Prometheus 2.42".into());
        }
        let mut matchers = Vec::with_capacity(vs.matchers.matchers.len() + 1);
        if let Some(name) = &vs.name {
            matchers.push(Matcher::new("__name__", "eq", name)?);
        }
        for m in &vs.matchers.matchers {
            let op = match m.op {
                ParsedOp::Equal => "eq",
                ParsedOp::NotEqual => "neq",
                ParsedOp::Re(_) => "regex",
                ParsedOp::NotRe(_) => "not_regex",
            };
            matchers.push(Matcher::new(&m.name, op, &m.value)?);
        }
        Ok(Selector {
            matchers,
            offset: offset(&vs.offset),
            at: self.at(&vs.at),
        })
    }

    fn at(&self, at: &Option<pp::AtModifier>) -> Option<i64> {
        match at.as_ref()? {
            pp::AtModifier::Start => Some(self.start),
            pp::AtModifier::End => Some(self.end),
            pp::AtModifier::At(time) => Some(match time.duration_since(SystemTime::UNIX_EPOCH) {
                Ok(after) => millis(&after),
                Err(before) => -millis(&before.duration()),
            }),
        }
    }
}

fn millis(d: &Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn offset(o: &Option<pp::Offset>) -> i64 {
    match o {
        None => 0,
        Some(pp::Offset::Pos(d)) => millis(d),
        Some(pp::Offset::Neg(d)) => -millis(d),
    }
}

fn agg_op(op: TokenType) -> Result<AggOp, String> {
    Ok(match op.id() {
        token::T_SUM => AggOp::Sum,
        token::T_AVG => AggOp::Avg,
        token::T_COUNT => AggOp::Count,
        token::T_MIN => AggOp::Min,
        token::T_MAX => AggOp::Max,
        token::T_GROUP => AggOp::Group,
        token::T_STDDEV => AggOp::Stddev,
        token::T_STDVAR => AggOp::Stdvar,
        token::T_TOPK => AggOp::Topk,
        token::T_BOTTOMK => AggOp::Bottomk,
        token::T_COUNT_VALUES => AggOp::CountValues,
        token::T_QUANTILE => AggOp::Quantile,
        _ => return Err(format!("aggregation {op} is not in Prometheus 2.42")),
    })
}

fn bin_op(op: TokenType) -> Result<BinOp, String> {
    Ok(match op.id() {
        token::T_ADD => BinOp::Add,
        token::T_SUB => BinOp::Sub,
        token::T_MUL => BinOp::Mul,
        token::T_DIV => BinOp::Div,
        token::T_MOD => BinOp::Mod,
        token::T_POW => BinOp::Pow,
        token::T_ATAN2 => BinOp::Atan2,
        token::T_EQLC => BinOp::Eq,
        token::T_NEQ => BinOp::Ne,
        token::T_GTR => BinOp::Gt,
        token::T_LSS => BinOp::Lt,
        token::T_GTE => BinOp::Ge,
        token::T_LTE => BinOp::Le,
        token::T_LAND => BinOp::And,
        token::T_LOR => BinOp::Or,
        token::T_LUNLESS => BinOp::Unless,
        _ => return Err(format!("operator {op} is not in Prometheus 2.42")),
    })
}
