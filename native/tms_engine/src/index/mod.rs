//! Finding series by their labels: posting lists and matchers.

mod matcher;
mod postings;

pub use matcher::{MatchOp, Matcher};
pub use postings::{difference, intersect, union, LabelIndex};
