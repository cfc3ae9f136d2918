//! Syntax errors placed in the query, as Prometheus places them
//! (`promql::syntax`): the recognizer's verdicts on malformed queries, and
//! that it takes every query the parser takes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use tms_engine::promql::ast;
use tms_engine::promql::syntax::{explain, Position};

fn explained(query: &str) -> String {
    let message = promql_parser::parser::parse(query).expect_err(query);
    explain(query, &message).to_string()
}

/// Each query refused, explained as expected.
fn assert_explained(cases: &[(&str, &str)]) {
    for (query, expected) in cases {
        assert_eq!(explained(query), *expected, "{query}");
    }
}

#[test]
fn grammar_errors_name_the_token_and_its_place() {
    let cases = [
        (
            "x +",
            "1:4: parse error: unexpected end of input, expected an expression",
        ),
        (
            "1 + -",
            "1:6: parse error: unexpected end of input, expected an expression",
        ),
        ("x y", "1:3: parse error: unexpected identifier \"y\""),
        (
            "x offset",
            "1:9: parse error: unexpected end of input, expected a duration",
        ),
        (
            "x @ foo",
            "1:5: parse error: unexpected identifier \"foo\", expected a number",
        ),
        (
            "x{a=}",
            "1:5: parse error: unexpected \"}\", expected a string",
        ),
        (
            "x{a \"b\"}",
            "1:5: parse error: unexpected string \"b\", expected a label matching operator",
        ),
        (
            "sum by (a) (x) by (b)",
            "1:16: parse error: unexpected \"by\"",
        ),
        (
            "count_values(\"a\" x)",
            "1:18: parse error: unexpected identifier \"x\", expected \",\" or \")\"",
        ),
        (
            "x * on(a) group_left(b c) y",
            "1:24: parse error: unexpected identifier \"c\", expected \",\" or \")\"",
        ),
    ];
    assert_explained(&cases);
}

#[test]
fn lines_and_columns_count_from_one_in_bytes() {
    assert_eq!(
        explained("sum(\n  rate(x[5m])\n  +\n)"),
        "4:1: parse error: unexpected \")\", expected an expression"
    );
    assert_eq!(Position::of("é+", 2), Position { line: 1, column: 3 });
}

#[test]
fn lexer_errors_are_placed_where_the_lexer_stopped() {
    let cases = [
        ("foo $ bar", "1:5: parse error: unexpected character: '$'"),
        (
            "rate(x[5m]))",
            "1:12: parse error: unexpected right parenthesis ')'",
        ),
        // Met at the end of input: placed there.
        (
            "rate(x) + (y",
            "1:13: parse error: unclosed left parenthesis",
        ),
        (
            "x[5m",
            "1:5: parse error: unexpected end of input inside brackets",
        ),
        (
            "x{a=\"b}",
            "1:5: parse error: unterminated quoted string \"",
        ),
        (
            "x[5m:1m:]",
            "1:8: parse error: unexpected second colon(:) in brackets",
        ),
    ];
    assert_explained(&cases);
}

#[test]
fn every_query_of_the_differential_corpus_is_taken() {
    let corpus = include_str!("../../../bench/promql_corpus.txt");
    let queries: Vec<&str> = corpus
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(queries.len() > 200);
    for query in queries {
        ast::parse(query, 0, 0).expect(query);
        assert_eq!(explain(query, "").position, None, "{query}");
    }
}

#[test]
fn refusals_about_types_keep_the_parser_message() {
    let query = "rate(x)";
    let message = promql_parser::parser::parse(query).expect_err(query);
    let explained = explain(query, &message);
    assert_eq!(explained.position, None);
    assert_eq!(explained.to_string(), format!("parse error: {message}"));
}

#[test]
fn queries_nesting_past_the_limit_are_refused_where_they_get_too_deep() {
    let at_limit = vec!["x"; 100].join(" + ");
    assert!(ast::parse(&at_limit, 0, 0).is_ok());
    let past = vec!["x"; 102].join(" + ");
    let refused = ast::parse(&past, 0, 0).unwrap_err();
    assert_eq!(
        refused.position,
        Some(Position {
            line: 1,
            column: 4 * 100 + 3
        })
    );
    assert!(
        refused.message.contains("deeper than 100 levels"),
        "{refused}"
    );
    let parens = format!("{}x{}", "(".repeat(5_000), ")".repeat(5_000));
    assert!(ast::parse(&parens, 0, 0).is_err());
    // Matchers' `!=` is not an operator.
    let matchers = format!("x{{{}}}", vec!["a!=\"b\""; 150].join(","));
    assert!(ast::parse(&matchers, 0, 0).is_ok());
}

#[test]
fn a_parser_panic_is_a_refusal() {
    assert!(ast::parse("x offset Inf", 0, 0).is_err());
}
