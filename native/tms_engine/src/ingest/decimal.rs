//! Numbers from text without `str`: integers (timestamps), and the fast
//! path of decimal parsing, `[-]digits[.digits][e[+-]digits]` with at most
//! 15 significant digits and a power of ten within ±22, the shape most
//! exporter values take (`0`, `1.5`, `12345.0`, `1.8e-05`).
//!
//! Exact by construction (Clinger's fast path): the digits form an integer
//! below 2^53 and the scale is a power of ten up to 10^22, both exact as
//! `f64`, and IEEE multiplication and division round their result
//! correctly, so the value is the `f64` nearest the decimal, as the general
//! parser's.

/// Most significant digits the fast path takes: 10^15 < 2^53.
const MAX_DIGITS: usize = 15;

/// The largest power of ten exact as `f64`.
const MAX_POW10: usize = 22;

/// Powers of ten exact as `f64`.
const POW10: [f64; MAX_POW10 + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The value of `token` if it is a decimal the fast path takes; `None`
/// sends the caller to the general parser (long digit strings, far
/// exponents, `NaN`, `Inf`, a leading `+`, anything malformed).
pub fn plain(token: &[u8]) -> Option<f64> {
    let (negative, body) = match token.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, token),
    };
    let (number, exponent) = match body.iter().position(|&b| b == b'e' || b == b'E') {
        Some(e) => (&body[..e], Some(&body[e + 1..])),
        None => (body, None),
    };
    let mut mantissa: u64 = 0;
    let mut digits = 0;
    let mut fraction: Option<usize> = None;
    for &b in number {
        match b {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(b - b'0');
                digits += 1;
                if digits > MAX_DIGITS {
                    return None;
                }
                if let Some(f) = fraction.as_mut() {
                    *f += 1;
                }
            }
            b'.' if fraction.is_none() => fraction = Some(0),
            _ => return None,
        }
    }
    // "", "-", "." and "1." or ".5" forms: the general parser decides.
    let scale = fraction.unwrap_or(0);
    if digits == 0 || fraction == Some(0) || digits == scale {
        return None;
    }
    let power = exponent.map_or(Some(0), small_exponent)? - scale as i64;
    let value = if power >= 0 {
        mantissa as f64 * *POW10.get(power as usize)?
    } else {
        mantissa as f64 / *POW10.get(power.unsigned_abs() as usize)?
    };
    Some(if negative { -value } else { value })
}

/// An exponent of at most three digits, signed.
fn small_exponent(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first()? {
        (b'-', rest) => (true, rest),
        (b'+', rest) => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 3 {
        return None;
    }
    let mut e: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        e = e * 10 + i64::from(b - b'0');
    }
    Some(if negative { -e } else { e })
}

/// An optionally signed decimal integer (`+` allowed, as Go's ParseInt
/// reads it) within `i64`.
pub fn integer(token: &[u8]) -> Option<i64> {
    let (negative, digits) = match token.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, token),
    };
    if digits.is_empty() {
        return None;
    }
    // Accumulated negatively, so that i64::MIN parses too.
    let mut ms: i64 = 0;
    for &b in digits {
        let digit = i64::from(b.wrapping_sub(b'0'));
        if digit > 9 {
            return None;
        }
        ms = ms.checked_mul(10)?.checked_sub(digit)?;
    }
    if negative {
        Some(ms)
    } else {
        ms.checked_neg()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_decimals_and_what_it_leaves_to_the_general_parser() {
        for (text, value) in [
            ("1", 1.0f64),
            ("0", 0.0),
            ("-0", -0.0),
            ("12345.0", 12345.0),
            ("0.1", 0.1),
            ("-2.5", -2.5),
            ("007", 7.0),
            ("999999999999999", 999_999_999_999_999.0),
            ("0.00000000000001", 1e-14),
            ("1e3", 1e3),
            ("1.8e-05", 1.8e-5),
            ("-2.5E+7", -2.5e7),
            ("123456789012345e7", 1.23456789012345e21),
            ("1e22", 1e22),
            ("1e-22", 1e-22),
        ] {
            assert_eq!(
                plain(text.as_bytes()).map(f64::to_bits),
                Some(value.to_bits()),
                "{text}"
            );
        }
        for text in [
            "",
            "-",
            ".",
            "1.",
            ".5",
            "+1",
            "1e",
            "1e+",
            "1e1.5",
            "1e23",
            "1.5e-22",
            "1e0001",
            "e5",
            "1.2.3",
            "NaN",
            "1_0",
            "9999999999999999",
        ] {
            assert_eq!(plain(text.as_bytes()), None, "{text}");
        }
    }

    proptest! {
        /// Whatever the fast path takes, it reads as the standard parser does.
        #[test]
        fn agrees_with_the_standard_parser(
            negative: bool,
            int in 0u64..10_000_000_000,
            frac in proptest::option::of("[0-9]{1,8}"),
            exponent in proptest::option::of(("[eE]", "[-+]?", -40i32..40)),
        ) {
            let text = format!(
                "{}{int}{}{}",
                if negative { "-" } else { "" },
                frac.map(|f| format!(".{f}")).unwrap_or_default(),
                exponent.map(|(e, sign, n)| format!("{e}{sign}{}", n.abs())).unwrap_or_default()
            );
            if let Some(value) = plain(text.as_bytes()) {
                prop_assert_eq!(value.to_bits(), text.parse::<f64>().unwrap().to_bits(), "{}", text);
            }
        }
    }
}
