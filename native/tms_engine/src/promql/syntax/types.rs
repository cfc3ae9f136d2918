//! Where a refusal about types or argument counts is. promql-parser says
//! what was wrong ("expected type matrix in call to function 'rate', got
//! vector") but not where, and in its own words; Prometheus 2.42 places it
//! at the offending argument or operand (a wrong count at the call) and
//! says "range vector", "instant vector", `"rate"`.
//!
//! A call's argument is found by trying: among the calls the message can be
//! about, the argument of the type the message says it got whose
//! replacement by a literal of the expected type ends that call's refusal.
//! Prometheus checks a node once its operands are read, so of several
//! candidates the one that ends first is the one it reports. A binary
//! operand is the first of the wrong type in the order `operands` gives.

use promql_parser::parser::parse;
use promql_parser::parser::token::{
    T_BOTTOMK, T_BY, T_COMMA, T_COUNT_VALUES, T_IDENTIFIER, T_LEFT_BRACE, T_LEFT_BRACKET,
    T_LEFT_PAREN, T_QUANTILE, T_RIGHT_BRACE, T_RIGHT_BRACKET, T_RIGHT_PAREN, T_TOPK, T_WITHOUT,
};
use promql_parser::parser::value::ValueType;

use super::grammar::{is_aggregation, Token};
use super::operands::Span;
use super::{Position, SyntaxError};

/// What a refusal names: a function call or an aggregation.
enum Subject<'m> {
    Function(&'m str),
    Aggregation,
}

/// One call in the query: the first token (the name), the bytes from it
/// through its closing parenthesis, and each argument's byte span.
struct Call {
    name: usize,
    end: usize,
    args: Vec<Span>,
}

/// The place and Prometheus' wording of a type or argument-count refusal,
/// or `None` when the message is of another kind or no call explains it.
pub(super) fn locate(
    query: &str,
    tokens: &[Token],
    operands: &[Span],
    message: &str,
) -> Option<SyntaxError> {
    if message == BINARY_OPERAND {
        return operand_at_fault(query, operands, message);
    }
    if let Some(rest) = message.strip_prefix("expected type ") {
        let (expected, rest) = rest.split_once(" in ")?;
        let (context, got) = rest.rsplit_once(", got ")?;
        let subject = match context.strip_prefix("call to function ") {
            Some(name) => Subject::Function(name.trim_matches('\'')),
            None if context == "aggregation expression" => Subject::Aggregation,
            None => return None,
        };
        let (call, arg) = culprit(query, tokens, &subject, message, (expected, got))?;
        let context = match subject {
            Subject::Function(name) => format!("call to function \"{name}\""),
            Subject::Aggregation if arg == 0 && takes_parameter(tokens[call.name].id) => {
                "aggregation parameter".to_string()
            }
            Subject::Aggregation => "aggregation expression".to_string(),
        };
        return Some(SyntaxError {
            position: Some(Position::of(query, call.args[arg].0)),
            message: format!(
                "expected type {} in {context}, got {}",
                type_name(expected),
                type_name(got)
            ),
        });
    }
    // "expected 1 argument(s) in call to 'rate', got 0", and the
    // aggregations' "wrong number of arguments ...": at the call.
    let (subject, message) = if let Some((head, tail)) = message.split_once(" in call to '") {
        let (name, tail) = tail.split_once('\'')?;
        (
            Subject::Function(name),
            format!("{head} in call to \"{name}\"{tail}"),
        )
    } else if message.starts_with("wrong number of arguments for aggregate expression") {
        (Subject::Aggregation, message.to_string())
    } else {
        return None;
    };
    let got: usize = message.rsplit_once("got ")?.1.parse().ok()?;
    // Of several, the one that ends first, as Prometheus checks them.
    let call = calls(query, tokens, &subject)
        .filter(|c| c.args.len() == got)
        .min_by_key(|c| c.end)?;
    Some(SyntaxError {
        position: Some(Position::of(query, tokens[call.name].start)),
        message,
    })
}

/// promql-parser's refusal of a range vector or a string beside a binary
/// operator (Prometheus' words too).
const BINARY_OPERAND: &str = "binary expression must contain only scalar and instant vector types";

/// The first operand beside a binary operator, in the order Prometheus
/// checks them, that is a range vector or a string.
fn operand_at_fault(query: &str, operands: &[Span], message: &str) -> Option<SyntaxError> {
    let &(from, _) = operands.iter().find(|&&(from, to)| {
        let typed = parse(&query[from..to]).map(|e| e.value_type());
        matches!(typed, Ok(ValueType::Matrix | ValueType::String))
    })?;
    Some(SyntaxError {
        position: Some(Position::of(query, from)),
        message: message.to_string(),
    })
}

/// The call the refusal is about and the index of its argument at fault.
fn culprit(
    query: &str,
    tokens: &[Token],
    subject: &Subject,
    message: &str,
    (expected, got): (&str, &str),
) -> Option<(Call, usize)> {
    let literal = match expected {
        "scalar" => "1",
        "string" => "\"s\"",
        "vector" => "x",
        "matrix" => "x[1m]",
        _ => return None,
    };
    // The argument at fault has the type the message says it got, and the
    // expected type in its place ends this refusal without starting one
    // about itself (whose "got" would be that type).
    let replaced_is_wrong = format!(", got {expected}");
    calls(query, tokens, subject)
        .filter_map(|call| {
            let start = tokens[call.name].start;
            let text = &query[start..call.end];
            if parse(text).err().as_deref() != Some(message) {
                return None;
            }
            let arg = call.args.iter().position(|&(from, to)| {
                let typed = parse(&query[from..to]).map(|e| e.value_type().to_string());
                if typed.as_deref() != Ok(got) {
                    return false;
                }
                let tried = format!("{}{literal}{}", &query[start..from], &query[to..call.end]);
                match parse(&tried) {
                    Ok(_) => true,
                    Err(m) => m != message && !m.ends_with(&replaced_is_wrong),
                }
            })?;
            Some((call, arg))
        })
        .min_by_key(|(call, _)| call.end)
}

/// Every call of `subject` in the query, in order.
fn calls<'a>(
    query: &'a str,
    tokens: &'a [Token],
    subject: &'a Subject,
) -> impl Iterator<Item = Call> + 'a {
    (0..tokens.len()).filter_map(move |i| {
        let t = tokens[i];
        let open = match subject {
            Subject::Function(name) => {
                let named = t.id == T_IDENTIFIER && &query[t.start..t.end] == *name;
                (named && tokens.get(i + 1)?.id == T_LEFT_PAREN).then_some(i + 1)?
            }
            Subject::Aggregation if is_aggregation(t.id) => {
                // `sum by (a) (x)`: the arguments follow the grouping.
                let mut open = i + 1;
                if matches!(tokens.get(open)?.id, T_BY | T_WITHOUT) {
                    open = close_of(tokens, open + 1)? + 1;
                }
                (tokens.get(open)?.id == T_LEFT_PAREN).then_some(open)?
            }
            Subject::Aggregation => return None,
        };
        let close = close_of(tokens, open)?;
        Some(Call {
            name: i,
            end: tokens[close].end,
            args: arguments(tokens, open, close),
        })
    })
}

/// The index of the token closing the bracket opened at `open`.
fn close_of(tokens: &[Token], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        match t.id {
            T_LEFT_PAREN | T_LEFT_BRACKET | T_LEFT_BRACE => depth += 1,
            T_RIGHT_PAREN | T_RIGHT_BRACKET | T_RIGHT_BRACE => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// The byte spans of the comma-separated arguments between `open` and
/// `close`.
fn arguments(tokens: &[Token], open: usize, close: usize) -> Vec<Span> {
    let mut args = Vec::new();
    let (mut depth, mut first) = (0usize, open + 1);
    for i in open + 1..close {
        match tokens[i].id {
            T_LEFT_PAREN | T_LEFT_BRACKET | T_LEFT_BRACE => depth += 1,
            T_RIGHT_PAREN | T_RIGHT_BRACKET | T_RIGHT_BRACE => depth = depth.saturating_sub(1),
            T_COMMA if depth == 0 => {
                if first < i {
                    args.push((tokens[first].start, tokens[i - 1].end));
                }
                first = i + 1;
            }
            _ => {}
        }
    }
    if first < close {
        args.push((tokens[first].start, tokens[close - 1].end));
    }
    args
}

/// Aggregations whose first argument is a parameter.
fn takes_parameter(id: u16) -> bool {
    matches!(id, T_TOPK | T_BOTTOMK | T_QUANTILE | T_COUNT_VALUES)
}

/// Prometheus' name of a value type.
fn type_name(parser_name: &str) -> &str {
    match parser_name {
        "vector" => "instant vector",
        "matrix" => "range vector",
        other => other,
    }
}
