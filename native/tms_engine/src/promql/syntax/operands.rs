//! The order in which Prometheus checks the operands of a chain of binary
//! operators: its parser reduces `a op b` once both sides are read, by
//! operator precedence (`^` binding tightest and to the right, then
//! `* / % atan2`, `+ -`, the comparisons, `and unless`, `or`), and checks
//! the left operand's type before the right one's.

use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD,
    T_MUL, T_NEQ, T_POW, T_SUB,
};

/// A byte span of the query.
pub(super) type Span = (usize, usize);

/// The operands of the chain `operands[0] operators[0] operands[1] ...`
/// in the order their types are checked, each preceded by what was
/// checked inside it (`inside[i]`, e.g. a parenthesized chain of its own).
pub(super) fn checked(operands: &[Span], operators: &[u16], inside: &[Vec<Span>]) -> Vec<Span> {
    let mut out = Vec::new();
    if !operands.is_empty() && operators.len() + 1 == operands.len() {
        visit(0, operands.len() - 1, operands, operators, inside, &mut out);
    }
    out
}

/// The checks of the subtree over operands `lo..=hi`.
fn visit(
    lo: usize,
    hi: usize,
    operands: &[Span],
    operators: &[u16],
    inside: &[Vec<Span>],
    out: &mut Vec<Span>,
) {
    if lo == hi {
        out.extend_from_slice(&inside[lo]);
        return;
    }
    // The root is the loosest operator: the last of them for the
    // left-associative ones, the first for `^`.
    let loosest = (lo..hi).map(|i| binding(operators[i])).min().unwrap_or(0);
    let mut at = (lo..hi).filter(|&i| binding(operators[i]) == loosest);
    let root = if loosest == binding(T_POW) {
        at.next()
    } else {
        at.next_back()
    };
    let Some(root) = root else { return };
    visit(lo, root, operands, operators, inside, out);
    visit(root + 1, hi, operands, operators, inside, out);
    if lo == root {
        out.push(operands[lo]);
    }
    if root + 1 == hi {
        out.push(operands[hi]);
    }
}

fn binding(op: u16) -> u8 {
    match op {
        T_LOR => 1,
        T_LAND | T_LUNLESS => 2,
        T_EQLC | T_NEQ | T_LTE | T_LSS | T_GTE | T_GTR => 3,
        T_ADD | T_SUB => 4,
        T_MUL | T_DIV | T_MOD | T_ATAN2 => 5,
        T_POW => 6,
        _ => 0,
    }
}
