//! Where a query that does not parse went wrong, said as Prometheus says it:
//! `line:column: parse error: message`.
//!
//! promql-parser answers every grammar error with one fixed message
//! ("invalid promql query") and its lexer errors without a position. On that
//! path only (a query that parses never comes here) this module finds the
//! place: a lexer error at the shortest prefix of the query that still fails
//! the same way, a grammar error at the first token that a recognizer of the
//! crate's grammar (`promql.y` in promql-parser 0.11.1, read here without
//! building anything) cannot take.

mod grammar;
mod operands;
mod types;

use lrpar::{Lexeme, Lexer};
use promql_parser::parser::lexer;
use promql_parser::parser::token::{
    T_AT, T_LEFT_BRACE, T_LEFT_BRACKET, T_LEFT_PAREN, T_OFFSET, T_RIGHT_BRACE, T_RIGHT_PAREN,
};

use grammar::{Stop, Token};

/// Where in a query an error is: 1-based line, and 1-based byte column
/// within that line (Prometheus counts bytes, as Go strings do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` of `query` (`query.len()` is the end).
    pub fn of(query: &str, offset: usize) -> Position {
        let before = &query.as_bytes()[..offset.min(query.len())];
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |nl| nl + 1);
        Position {
            line: 1 + before.iter().filter(|&&b| b == b'\n').count(),
            column: before.len() - line_start + 1,
        }
    }
}

/// A query's syntax error: where, and the message without the position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub position: Option<Position>,
    pub message: String,
}

impl std::fmt::Display for SyntaxError {
    /// `1:5: parse error: ...`, or `parse error: ...` without a position.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(p) = self.position {
            write!(f, "{}:{}: ", p.line, p.column)?;
        }
        write!(f, "parse error: {}", self.message)
    }
}

/// How deep a query may nest, counting each open parenthesis and, over the
/// whole query, each operator, range or subquery bracket, `offset` and `@`
/// (a bound on its syntax tree's depth). The parser, the conversion and
/// the evaluator all recurse, and a query's NIF runs on a dirty
/// scheduler's 320 KiB stack: in a release build on such a stack a chain
/// of 200 `+` overflowed it and 175 did not, nor did 200 nested
/// parentheses or unary minus signs, so 100 leaves room.
pub const MAX_NESTING: usize = 100;

/// Refuses a query deeper than [`MAX_NESTING`], placed at the token where
/// it gets too deep; a query the lexer refuses is left to the parser.
pub fn check_nesting(query: &str) -> Result<(), SyntaxError> {
    let Ok(lexed) = lexer(query) else {
        return Ok(());
    };
    let (mut open, mut levels, mut in_braces) = (0usize, 0usize, false);
    for lexeme in lexed.iter().filter_map(Result::ok) {
        let id = lexeme.tok_id();
        match id {
            // Matchers' operators (`!=`) are not the expression's.
            T_LEFT_BRACE => in_braces = true,
            T_RIGHT_BRACE => in_braces = false,
            _ if in_braces => {}
            T_LEFT_PAREN => open += 1,
            T_RIGHT_PAREN => open = open.saturating_sub(1),
            T_LEFT_BRACKET | T_OFFSET | T_AT => levels += 1,
            _ if grammar::is_binary_operator(id) => levels += 1,
            _ => {}
        }
        if open + levels > MAX_NESTING {
            return Err(SyntaxError {
                position: Some(Position::of(query, lexeme.span().start())),
                message: format!(
                    "the query nests deeper than {MAX_NESTING} levels (each open parenthesis, \
                     operator, range, offset and @ counts one)"
                ),
            });
        }
    }
    Ok(())
}

/// Longest query whose lexer error is placed by re-lexing its prefixes
/// (each try lexes the prefix again, so the cost is quadratic).
const MAX_RELEXED: usize = 4096;

/// Explains why promql-parser refused `query` with `parser_message`. The
/// position is the offending token's (or the end of input); there is none
/// when the refusal was about types or values rather than syntax (the
/// parser's own message says what), or for a lexer error in a query longer
/// than 4 KiB.
pub fn explain(query: &str, parser_message: &str) -> SyntaxError {
    let tokens: Vec<Token> = match lexer(query) {
        Err(message) => {
            return SyntaxError {
                position: lexer_error_offset(query, &message).map(|at| Position::of(query, at)),
                message,
            }
        }
        Ok(lexed) => lexed
            .iter()
            .filter_map(Result::ok)
            .map(|l| Token {
                id: l.tok_id(),
                start: l.span().start(),
                end: l.span().end(),
            })
            .collect(),
    };
    match grammar::check(query, &tokens) {
        Err(Stop::Unexpected { offset, message }) => SyntaxError {
            position: Some(Position::of(query, offset)),
            message,
        },
        // The grammar takes it: the refusal is about types or values.
        Ok(operands) if query.len() <= MAX_RELEXED => {
            types::locate(query, &tokens, &operands, parser_message)
                .unwrap_or_else(|| unplaced(parser_message))
        }
        Ok(_) | Err(Stop::TooDeep) => unplaced(parser_message),
    }
}

fn unplaced(parser_message: &str) -> SyntaxError {
    SyntaxError {
        position: None,
        message: parser_message.to_string(),
    }
}

/// Where the lexer's first error is. One met at the end of input ("unclosed
/// left parenthesis") is placed there, as Prometheus places it. Any other is
/// at the last character of the shortest prefix that fails with the same
/// message as the whole query, all longer prefixes failing alike: the
/// character the lexer stopped at, or the quote that opened an unterminated
/// string.
fn lexer_error_offset(query: &str, message: &str) -> Option<usize> {
    if message.starts_with("unclosed") || message.contains("end of input") {
        return Some(query.len());
    }
    if query.len() > MAX_RELEXED {
        return None;
    }
    if let Some(quote) = message.strip_prefix("unterminated quoted string ") {
        // The quote that opened it: the last one before which the lexer is
        // not inside a string (escapes inside make the prefixes before the
        // end fail differently, so the walk below would stop short).
        let in_string = |end: usize| matches!(lexer(&query[..end]), Err(m) if m.contains("quoted string") || m.contains("escape"));
        return query
            .rmatch_indices(quote)
            .map(|(at, _)| at)
            .find(|&at| !in_string(at));
    }
    let fails_alike = |end: usize| matches!(lexer(&query[..end]), Err(m) if m == message);
    let mut end = query.len();
    while let Some((start, _)) = query[..end].char_indices().next_back() {
        if start == 0 || !fails_alike(start) {
            return Some(start);
        }
        end = start;
    }
    Some(0)
}
