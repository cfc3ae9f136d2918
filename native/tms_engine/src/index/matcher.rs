//! Label matchers, with Prometheus' semantics: `=`, `!=`, `=~`, `!~`,
//! regexes anchored to the whole value, and an absent label read as `""`.

/// How a matcher compares a label's value.
#[derive(Debug, Clone)]
pub enum MatchOp {
    Eq(String),
    Neq(String),
    /// Anchored: the whole value must match, as in Prometheus.
    Regex(regex::Regex),
    NotRegex(regex::Regex),
}

/// A label matcher. As in Prometheus, a series without the label has the
/// value `""` for it: `{"env", :eq, ""}` selects series without `env`.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub label: String,
    pub op: MatchOp,
}

impl Matcher {
    /// Builds a matcher; a regex is compiled once, anchored to the whole value.
    pub fn new(label: &str, op: &str, value: &str) -> Result<Matcher, String> {
        let anchored = || {
            regex::Regex::new(&format!("^(?:{value})$"))
                .map_err(|e| format!("label {label:?}: bad regex {value:?}: {e}"))
        };
        let op = match op {
            "eq" => MatchOp::Eq(value.to_string()),
            "neq" => MatchOp::Neq(value.to_string()),
            "regex" => MatchOp::Regex(anchored()?),
            "not_regex" => MatchOp::NotRegex(anchored()?),
            other => return Err(format!("unknown matcher operator {other:?}")),
        };
        Ok(Matcher {
            label: label.to_string(),
            op,
        })
    }

    /// True if a series whose value for the label is `value` (`""` when it
    /// lacks the label) matches.
    pub fn accepts(&self, value: &str) -> bool {
        match &self.op {
            MatchOp::Eq(v) => value == v,
            MatchOp::Neq(v) => value != v,
            MatchOp::Regex(re) => re.is_match(value),
            MatchOp::NotRegex(re) => !re.is_match(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_regex_or_operator_is_an_error() {
        assert!(Matcher::new("a", "regex", "(").is_err());
        assert!(Matcher::new("a", "like", "x").is_err());
    }

    #[test]
    fn an_absent_label_is_the_empty_value() {
        let eq = Matcher::new("env", "eq", "").unwrap();
        assert!(eq.accepts(""));
        assert!(!eq.accepts("prod"));
        let re = Matcher::new("env", "regex", "prod|").unwrap();
        assert!(re.accepts("") && re.accepts("prod") && !re.accepts("production"));
    }
}
