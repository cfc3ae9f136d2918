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

/// Refusals about types and argument counts, placed and worded as
/// Prometheus 2.42 answers these queries (asked of `prometheus` 2.42 from
/// Debian).
#[test]
fn type_and_arity_errors_are_placed_at_their_argument_or_call() {
    let cases = [
        ("rate(foo)", "1:6: parse error: expected type range vector in call to function \"rate\", got instant vector"),
        ("rate(rate(foo))", "1:11: parse error: expected type range vector in call to function \"rate\", got instant vector"),
        ("foo + rate(bar)", "1:12: parse error: expected type range vector in call to function \"rate\", got instant vector"),
        ("sum(rate(foo)) by (x)", "1:10: parse error: expected type range vector in call to function \"rate\", got instant vector"),
        ("abs(foo[5m])", "1:5: parse error: expected type instant vector in call to function \"abs\", got range vector"),
        ("abs(rate(x[1m])[5m:])", "1:5: parse error: expected type instant vector in call to function \"abs\", got range vector"),
        ("sum(abs(foo[1m]))", "1:9: parse error: expected type instant vector in call to function \"abs\", got range vector"),
        ("round(foo, bar)", "1:12: parse error: expected type scalar in call to function \"round\", got instant vector"),
        ("clamp(foo, bar, 1)", "1:12: parse error: expected type scalar in call to function \"clamp\", got instant vector"),
        ("histogram_quantile(foo, bar)", "1:20: parse error: expected type scalar in call to function \"histogram_quantile\", got instant vector"),
        ("vector(foo)", "1:8: parse error: expected type scalar in call to function \"vector\", got instant vector"),
        ("label_replace(foo, 1, \"a\", \"b\", \"c\")", "1:20: parse error: expected type string in call to function \"label_replace\", got scalar"),
        ("label_join(foo, \"a\", 1)", "1:22: parse error: expected type string in call to function \"label_join\", got scalar"),
        ("sum(foo[1m])", "1:5: parse error: expected type instant vector in aggregation expression, got range vector"),
        ("sum by (a) (foo[1m])", "1:13: parse error: expected type instant vector in aggregation expression, got range vector"),
        ("topk(foo, bar)", "1:6: parse error: expected type scalar in aggregation parameter, got instant vector"),
        ("quantile(foo, bar)", "1:10: parse error: expected type scalar in aggregation parameter, got instant vector"),
        ("count_values(1, foo)", "1:14: parse error: expected type string in aggregation parameter, got scalar"),
        ("time(1)", "1:1: parse error: expected 0 argument(s) in call to \"time\", got 1"),
        ("rate()", "1:1: parse error: expected 1 argument(s) in call to \"rate\", got 0"),
        ("round(a, 1, 2)", "1:1: parse error: expected at most 2 argument(s) in call to \"round\", got 3"),
        ("topk(foo)", "1:1: parse error: wrong number of arguments for aggregate expression provided, expected 2, got 1"),
        ("count_values(\"c\", count by (a) (x, y))", "1:19: parse error: wrong number of arguments for aggregate expression provided, expected 1, got 2"),
    ];
    assert_explained(&cases);
}

/// A range vector or a string beside a binary operator, at that operand;
/// of several, the first Prometheus checks (by precedence, left before
/// right). Prometheus 2.42's answers.
#[test]
fn binary_operands_of_the_wrong_type_are_placed_at_the_operand() {
    let message =
        "parse error: binary expression must contain only scalar and instant vector types";
    let cases = [
        ("foo[5m] + 1", "1:1"),
        ("foo + on(a) group_left bar[5m]", "1:24"),
        ("1 + \"x\"", "1:5"),
        ("x * y[5m] + z", "1:5"),
        ("(foo[5m]) + 1", "1:1"),
        ("x + y[5m:] offset 1m", "1:5"),
        ("x and \"s\"", "1:7"),
        ("sum(x) / rate(y[1m])[5m:]", "1:10"),
        ("2 ^ 3  + +\"s\"^ 2", "1:11"),
        ("foo[5m] + bar[5m]", "1:1"),
        ("x[5m] + y * z[5m]", "1:13"),
        ("x * y[5m] + z[5m]", "1:5"),
    ];
    for (query, place) in cases {
        assert_eq!(explained(query), format!("{place}: {message}"), "{query}");
    }
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
