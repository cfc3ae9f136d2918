//! A recognizer of promql-parser's grammar (`promql.y` of 0.11.1) over its
//! lexer's tokens: the first token the grammar cannot take, and why.

use promql_parser::parser::token::*;

use super::operands::{self, Span};

/// One lexeme: its token id and byte span in the query.
#[derive(Debug, Clone, Copy)]
pub(super) struct Token {
    pub id: u16,
    pub start: usize,
    pub end: usize,
}

/// Why the reading stopped.
pub(super) enum Stop {
    /// The first token the grammar cannot take: its offset (the query's
    /// length for the end of input) and a message naming it and what
    /// would fit.
    Unexpected { offset: usize, message: String },
    /// Expressions nest deeper than [`MAX_DEPTH`]: the reader, which
    /// recurses, stops there rather than risk the thread's stack.
    TooDeep,
}

/// How deep expressions may nest for the reader to look (a dirty
/// scheduler's stack is 320 KiB; a level costs well under 1 KiB).
pub(super) const MAX_DEPTH: usize = 100;

type Read = Result<(), Stop>;

/// Whether `tokens` of `query` (ending with the lexer's end-of-input token)
/// fit the grammar; if they do, the byte spans of the operands beside
/// binary operators (each with its ranges, offsets and `@`), in the order
/// Prometheus checks their types.
pub(super) fn check(query: &str, tokens: &[Token]) -> Result<Vec<Span>, Stop> {
    let mut reader = Reader {
        query,
        tokens,
        at: 0,
        depth: 0,
        operands: Vec::new(),
    };
    reader.query()?;
    Ok(reader.operands)
}

/// A recognizer of promql-parser's grammar over the lexer's tokens. Whether
/// the tokens fit the grammar does not depend on precedence, so it reads
/// a chain of binary operators flat (the order of its operands' type
/// checks, which does, comes from `operands`); where the grammar is
/// lenient (trailing commas, keywords as metric and label names) it is
/// too.
struct Reader<'q> {
    query: &'q str,
    tokens: &'q [Token],
    at: usize,
    /// Expressions open around the current token.
    depth: usize,
    /// Operands beside binary operators, as [`check`] answers them (those
    /// of the chain being read are reordered when it ends).
    operands: Vec<Span>,
}

impl Reader<'_> {
    fn query(&mut self) -> Read {
        self.expr()?;
        match self.peek() {
            T_EOF => Ok(()),
            _ => self.unexpected(None),
        }
    }

    /// An operand, then any postfix modifiers and binary operators.
    fn expr(&mut self) -> Read {
        if self.depth == MAX_DEPTH {
            return Err(Stop::TooDeep);
        }
        self.depth += 1;
        let read = self.expr_inside();
        self.depth -= 1;
        read
    }

    fn expr_inside(&mut self) -> Read {
        let first = self.operands.len();
        let (mut spans, mut operators, mut inside) = (Vec::new(), Vec::new(), Vec::new());
        let mut start = self.operand_start();
        self.operand()?;
        loop {
            match self.peek() {
                id if is_binary_operator(id) => {
                    spans.push(self.span_from(start));
                    inside.push(self.operands.split_off(first));
                    operators.push(id);
                    self.bump();
                    self.binary_modifiers()?;
                    start = self.operand_start();
                    self.operand()?;
                }
                T_LEFT_BRACKET => self.range_or_subquery()?,
                T_OFFSET => self.offset()?,
                T_AT => self.at_modifier()?,
                _ if operators.is_empty() => return Ok(()),
                _ => {
                    spans.push(self.span_from(start));
                    inside.push(self.operands.split_off(first));
                    let checked = operands::checked(&spans, &operators, &inside);
                    self.operands.extend(checked);
                    return Ok(());
                }
            }
        }
    }

    /// Where the operand at the current token starts, past unary signs
    /// (`+"s" ^ 2` is `+("s" ^ 2)`: the operand of `^` is the string).
    fn operand_start(&self) -> usize {
        self.tokens[self.at..]
            .iter()
            .find(|t| !matches!(t.id, T_ADD | T_SUB))
            .map_or(self.query.len(), |t| t.start)
    }

    /// The bytes from `start` through the last token read.
    fn span_from(&self, start: usize) -> Span {
        let end = self.at.checked_sub(1).and_then(|i| self.tokens.get(i));
        (start, end.map_or(start, |t| t.end.max(start)))
    }

    fn operand(&mut self) -> Read {
        // Unary signs, any number of them, without recursion.
        while self.eat(&[T_ADD, T_SUB]) {}
        match self.peek() {
            T_LEFT_PAREN => {
                self.bump();
                self.expr()?;
                self.require(&[T_RIGHT_PAREN], "\")\"")
            }
            T_LEFT_BRACE => self.label_matchers(),
            id if is_aggregation(id)
                && matches!(self.peek_next(), T_LEFT_PAREN | T_BY | T_WITHOUT) =>
            {
                self.aggregation()
            }
            T_IDENTIFIER | T_START | T_END if self.peek_next() == T_LEFT_PAREN => {
                self.bump();
                self.call_arguments()
            }
            id if is_metric_name(id) => {
                self.bump();
                if self.peek() == T_LEFT_BRACE {
                    self.label_matchers()?;
                }
                Ok(())
            }
            _ => self.require(&[T_NUMBER, T_DURATION, T_STRING], "an expression"),
        }
    }

    fn aggregation(&mut self) -> Read {
        self.bump();
        let grouped_before = self.grouping()?;
        self.call_arguments()?;
        if !grouped_before {
            self.grouping()?;
        }
        Ok(())
    }

    /// `by (...)` or `without (...)` if there; whether it was.
    fn grouping(&mut self) -> Result<bool, Stop> {
        if !self.eat(&[T_BY, T_WITHOUT]) {
            return Ok(false);
        }
        self.label_list()?;
        Ok(true)
    }

    /// `( expr, ... )` of a function call or an aggregation: no comma
    /// before the first argument, any number between and after them.
    fn call_arguments(&mut self) -> Read {
        self.require(&[T_LEFT_PAREN], "\"(\"")?;
        if self.eat(&[T_RIGHT_PAREN]) {
            return Ok(());
        }
        loop {
            self.expr()?;
            if self.eat(&[T_RIGHT_PAREN]) {
                return Ok(());
            }
            self.require(&[T_COMMA], "\",\" or \")\"")?;
            while self.eat(&[T_COMMA]) {}
            if self.eat(&[T_RIGHT_PAREN]) {
                return Ok(());
            }
        }
    }

    /// `( label, ... )` of a grouping or vector matching.
    fn label_list(&mut self) -> Read {
        self.require(&[T_LEFT_PAREN], "\"(\"")?;
        loop {
            if self.eat(&[T_RIGHT_PAREN]) {
                return Ok(());
            }
            match self.peek() {
                id if is_label_name(id) || id == T_STRING => self.bump(),
                _ => return self.unexpected(Some("a label name")),
            }
            if self.peek() != T_RIGHT_PAREN {
                self.require(&[T_COMMA], "\",\" or \")\"")?;
            }
        }
    }

    /// `{ name op "value", ... }`: matchers apart by `,` (or `or`), a
    /// trailing `,` allowed, and `{,}`.
    fn label_matchers(&mut self) -> Read {
        self.require(&[T_LEFT_BRACE], "\"{\"")?;
        if self.peek() == T_COMMA && self.peek_next() == T_RIGHT_BRACE {
            self.bump();
        }
        if self.eat(&[T_RIGHT_BRACE]) {
            return Ok(());
        }
        loop {
            self.label_matcher()?;
            if self.eat(&[T_RIGHT_BRACE]) {
                return Ok(());
            }
            let comma = self.peek() == T_COMMA;
            self.require(&[T_COMMA, T_LOR], "\",\" or \"}\"")?;
            if comma && self.eat(&[T_RIGHT_BRACE]) {
                return Ok(());
            }
        }
    }

    fn label_matcher(&mut self) -> Read {
        if self.eat(&[T_IDENTIFIER]) {
            return self.match_value();
        }
        self.require(&[T_STRING], "a label matcher")?;
        if is_match_operator(self.peek()) {
            self.match_value()?;
        }
        Ok(())
    }

    /// `op "value"` after a matcher's name, or nothing (the grammar also
    /// takes an identifier for the value, and a doubled operator with or
    /// without one, which its actions then refuse).
    fn match_value(&mut self) -> Read {
        if !self.eat(MATCH_OPERATORS) {
            return match self.peek() {
                T_COMMA | T_LOR | T_RIGHT_BRACE => Ok(()),
                _ => self.unexpected(Some("a label matching operator")),
            };
        }
        if self.eat(MATCH_OPERATORS) {
            self.eat(&[T_STRING, T_IDENTIFIER]);
            return Ok(());
        }
        self.require(&[T_STRING, T_IDENTIFIER], "a string")
    }

    /// `bool`, `on (...)`/`ignoring (...)`, `group_left`/`group_right` with
    /// optional labels, and the fill modifiers the grammar knows.
    fn binary_modifiers(&mut self) -> Read {
        let boolean = self.eat(&[T_BOOL]);
        if self.eat(&[T_ON, T_IGNORING]) {
            self.label_list()?;
            if self.eat(&[T_GROUP_LEFT, T_GROUP_RIGHT]) && self.peek() == T_LEFT_PAREN {
                self.label_list()?;
            }
        } else if !boolean && self.eat(&[T_GROUP_LEFT, T_GROUP_RIGHT]) {
            // Without `on`/`ignoring` the labels are not optional.
            self.label_list()?;
        }
        while self.eat(&[T_FILL, T_FILL_LEFT, T_FILL_RIGHT]) {
            self.require(&[T_LEFT_PAREN], "\"(\"")?;
            self.eat(&[T_ADD, T_SUB]);
            self.require(&[T_NUMBER], "a number")?;
            self.require(&[T_RIGHT_PAREN], "\")\"")?;
        }
        Ok(())
    }

    /// `[range]` or `[range:step]`, the step optional.
    fn range_or_subquery(&mut self) -> Read {
        self.bump();
        if self.eat(&[T_RIGHT_BRACKET]) {
            return Ok(());
        }
        self.require(DURATION, "a duration")?;
        if self.eat(&[T_COLON]) && self.peek() != T_RIGHT_BRACKET {
            self.require(DURATION, "a duration")?;
        }
        self.require(&[T_RIGHT_BRACKET], "\"]\"")
    }

    fn offset(&mut self) -> Read {
        self.bump();
        self.eat(&[T_ADD, T_SUB]);
        self.require(DURATION, "a duration")
    }

    /// `@ time`, `@ start()` or `@ end()`.
    fn at_modifier(&mut self) -> Read {
        self.bump();
        if self.eat(&[T_START, T_END]) {
            self.require(&[T_LEFT_PAREN], "\"(\"")?;
            return self.require(&[T_RIGHT_PAREN], "\")\"");
        }
        self.eat(&[T_ADD, T_SUB]);
        self.require(DURATION, "a number")
    }

    /// Takes the current token if it is one of `ids`; whether it did.
    fn eat(&mut self, ids: &[u16]) -> bool {
        let taken = ids.contains(&self.peek());
        if taken {
            self.bump();
        }
        taken
    }

    /// Takes the current token, which must be one of `ids` (`what` they
    /// are, for the error).
    fn require(&mut self, ids: &[u16], what: &str) -> Read {
        if self.eat(ids) {
            Ok(())
        } else {
            self.unexpected(Some(what))
        }
    }

    fn peek(&self) -> u16 {
        self.tokens.get(self.at).map_or(T_EOF, |t| t.id)
    }

    fn peek_next(&self) -> u16 {
        self.tokens.get(self.at + 1).map_or(T_EOF, |t| t.id)
    }

    fn bump(&mut self) {
        self.at += 1;
    }

    /// Fails at the current token, saying what it is and what would fit.
    fn unexpected(&self, expected: Option<&str>) -> Read {
        let (offset, found) = match self.tokens.get(self.at) {
            Some(t) if t.id != T_EOF => (t.start, self.describe(*t)),
            _ => (self.query.len(), "end of input".to_string()),
        };
        let message = match expected {
            Some(what) => format!("unexpected {found}, expected {what}"),
            None => format!("unexpected {found}"),
        };
        Err(Stop::Unexpected { offset, message })
    }

    fn describe(&self, t: Token) -> String {
        let text = &self.query[t.start..t.end];
        match t.id {
            T_IDENTIFIER | T_METRIC_IDENTIFIER => format!("identifier {text:?}"),
            T_NUMBER => format!("number {text:?}"),
            T_DURATION => format!("duration {text:?}"),
            T_STRING => format!("string {text}"),
            _ => format!("{text:?}"),
        }
    }
}

const BINARY_OPERATORS: &[u16] = &[
    T_ADD, T_SUB, T_MUL, T_DIV, T_MOD, T_POW, T_ATAN2, T_EQLC, T_NEQ, T_GTR, T_GTE, T_LSS, T_LTE,
    T_LAND, T_LOR, T_LUNLESS,
];

const AGGREGATIONS: &[u16] = &[
    T_AVG,
    T_BOTTOMK,
    T_COUNT,
    T_COUNT_VALUES,
    T_GROUP,
    T_MAX,
    T_MIN,
    T_QUANTILE,
    T_STDDEV,
    T_STDVAR,
    T_SUM,
    T_TOPK,
    T_LIMITK,
    T_LIMIT_RATIO,
];

/// With the aggregations, the grammar's `metric_identifier`: the keywords it
/// lets name a metric.
const METRIC_NAMES: &[u16] = &[
    T_IDENTIFIER,
    T_METRIC_IDENTIFIER,
    T_BY,
    T_WITHOUT,
    T_FILL,
    T_FILL_LEFT,
    T_FILL_RIGHT,
    T_LAND,
    T_LOR,
    T_LUNLESS,
    T_OFFSET,
    T_START,
    T_END,
];

/// With the aggregations, the grammar's `maybe_label`: the keywords it lets
/// name a label (`without` is not one).
const LABEL_NAMES: &[u16] = &[
    T_IDENTIFIER,
    T_METRIC_IDENTIFIER,
    T_BOOL,
    T_BY,
    T_FILL,
    T_FILL_LEFT,
    T_FILL_RIGHT,
    T_GROUP_LEFT,
    T_GROUP_RIGHT,
    T_IGNORING,
    T_LAND,
    T_LOR,
    T_LUNLESS,
    T_OFFSET,
    T_ON,
    T_START,
    T_END,
    T_ATAN2,
];

pub(super) fn is_binary_operator(id: u16) -> bool {
    BINARY_OPERATORS.contains(&id)
}

/// A label matcher's operators.
const MATCH_OPERATORS: &[u16] = &[T_EQL, T_NEQ, T_EQL_REGEX, T_NEQ_REGEX];

/// What a range, an offset or an `@` time is written as (the grammar's
/// `duration` and `number_literal`).
const DURATION: &[u16] = &[T_DURATION, T_NUMBER];

fn is_match_operator(id: u16) -> bool {
    MATCH_OPERATORS.contains(&id)
}

pub(super) fn is_aggregation(id: u16) -> bool {
    AGGREGATIONS.contains(&id)
}

fn is_metric_name(id: u16) -> bool {
    is_aggregation(id) || METRIC_NAMES.contains(&id)
}

fn is_label_name(id: u16) -> bool {
    is_aggregation(id) || LABEL_NAMES.contains(&id)
}
