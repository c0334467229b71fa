//! Strict parsing of unsigned integers and byte strings from JSON request fields.
//!
//! A number is a JSON non-negative integer, a string of decimal digits (leading zeros
//! allowed), or a string `0x`/`0X` followed by 1 to 64 hex digits. Signs, whitespace,
//! underscores, fractions, exponents and overflow are refused, never rounded or wrapped.

use alloy_primitives::U256;
use serde_json::{Number, Value};

/// Longest piece of a rejected input quoted back in an error message, in characters.
const MAX_QUOTED: usize = 100;

const EXPECTED_NUMBER: &str = "a number (JSON integer, decimal string, or 0x-hex string)";

/// Parses a request field as an unsigned 256-bit integer.
pub fn parse_u256(field: &str, v: &Value) -> Result<U256, String> {
    match v {
        Value::String(s) => parse_str(field, s),
        Value::Number(n) => parse_json_number(field, n),
        other => Err(format!(
            "field '{field}': expected {EXPECTED_NUMBER}, got {}",
            json_kind(other)
        )),
    }
}

/// Parses a request field as an unsigned 64-bit integer.
pub fn parse_u64(field: &str, v: &Value) -> Result<u64, String> {
    let n = parse_u256(field, v)?;
    u64::try_from(n).map_err(|_| too_large(field, &as_written(v)))
}

/// Parses a request field as an unsigned 128-bit integer.
pub fn parse_u128(field: &str, v: &Value) -> Result<u128, String> {
    let n = parse_u256(field, v)?;
    u128::try_from(n).map_err(|_| too_large(field, &as_written(v)))
}

/// Parses a request field holding `0x`-hex data; `""` and `"0x"` are empty data.
pub fn parse_bytes(field: &str, v: &Value) -> Result<Vec<u8>, String> {
    let s = match v {
        Value::String(s) => s,
        other => {
            return Err(format!(
                "field '{field}': expected 0x-hex data as a string, got {}",
                json_kind(other)
            ));
        }
    };
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let digits = strip_hex_prefix(s).ok_or_else(|| {
        format!(
            "field '{field}': {} is not 0x-hex data (it must start with 0x)",
            quoted(s)
        )
    })?;
    if let Some(bad) = digits.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(format!(
            "field '{field}': {} is not 0x-hex data ({bad:?} is not a hex digit)",
            quoted(s)
        ));
    }
    if digits.len() % 2 != 0 {
        return Err(format!(
            "field '{field}': 0x-hex data must have an even number of hex digits, got {}",
            digits.len()
        ));
    }
    hex::decode(digits)
        .map_err(|e| format!("field '{field}': {} is not 0x-hex data ({e})", quoted(s)))
}

fn parse_str(field: &str, s: &str) -> Result<U256, String> {
    if s.is_empty() {
        return Err(format!(
            "field '{field}' is empty: expected {EXPECTED_NUMBER}"
        ));
    }
    if s.starts_with('-') {
        return Err(negative(field));
    }
    let not_a_number = || {
        format!(
            "field '{field}': {} is not a number (decimal, or 0x-hex)",
            quoted(s)
        )
    };
    if let Some(digits) = strip_hex_prefix(s) {
        if digits.is_empty() {
            return Err(format!(
                "field '{field}': {} has no hex digits after 0x",
                quoted(s)
            ));
        }
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(not_a_number());
        }
        if digits.len() > 64 {
            return Err(format!(
                "field '{field}': {} is too large (at most 64 hex digits)",
                shortened(s)
            ));
        }
        return accumulate(digits, 16).ok_or_else(|| too_large(field, s));
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_a_number());
    }
    accumulate(s, 10).ok_or_else(|| too_large(field, s))
}

fn parse_json_number(field: &str, n: &Number) -> Result<U256, String> {
    if let Some(u) = n.as_u64() {
        return Ok(U256::from(u));
    }
    if n.is_i64() {
        return Err(negative(field));
    }
    let text = n.to_string();
    if text.starts_with('-') {
        return Err(negative(field));
    }
    // Only reachable when serde_json keeps the literal text (its `arbitrary_precision`
    // feature): an integer literal beyond u64.
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return accumulate(&text, 10).ok_or_else(|| too_large(field, &text));
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f >= 18_446_744_073_709_551_616.0 => Err(format!(
            "field '{field}': the JSON number {} is too large to be exact; \
             send large numbers as a decimal or 0x-hex string",
            shortened(&text)
        )),
        _ => Err(format!(
            "field '{field}': {} is not a whole number (JSON fractions and exponents are not allowed)",
            shortened(&text)
        )),
    }
}

/// Folds validated digits of the given radix into a U256; `None` on overflow.
fn accumulate(digits: &str, radix: u32) -> Option<U256> {
    let base = U256::from(radix);
    digits.chars().try_fold(U256::ZERO, |acc, c| {
        let d = c.to_digit(radix)?;
        acc.checked_mul(base)?.checked_add(U256::from(d))
    })
}

fn strip_hex_prefix(s: &str) -> Option<&str> {
    s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))
}

fn negative(field: &str) -> String {
    format!("field '{field}': negative numbers are not allowed")
}

fn too_large(field: &str, written: &str) -> String {
    format!("field '{field}': {} is too large", shortened(written))
}

/// The value as the client wrote it, for messages about a number that parsed.
fn as_written(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `s` cut to [`MAX_QUOTED`] characters, with an ellipsis when cut.
pub(crate) fn shortened(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTED) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_owned(),
    }
}

/// `s` shortened and quoted with escapes, so control characters stay visible.
pub(crate) fn quoted(s: &str) -> String {
    format!("{:?}", shortened(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TWO_256: &str =
        "115792089237316195423570985008687907853269984665640564039457584007913129639936";
    const TWO_256_MINUS_1: &str =
        "115792089237316195423570985008687907853269984665640564039457584007913129639935";

    fn u256(v: Value) -> Result<U256, String> {
        parse_u256("value", &v)
    }

    #[test]
    fn accepts_json_integers_and_strings() {
        assert_eq!(u256(json!(0)), Ok(U256::ZERO));
        assert_eq!(u256(json!(u64::MAX)), Ok(U256::from(u64::MAX)));
        assert_eq!(u256(json!("0")), Ok(U256::ZERO));
        assert_eq!(u256(json!("000123")), Ok(U256::from(123u64)));
        assert_eq!(
            u256(json!("1000000000000000000")),
            Ok(U256::from(10u64).pow(U256::from(18u64)))
        );
        assert_eq!(u256(json!("0x0")), Ok(U256::ZERO));
        assert_eq!(
            u256(json!("0xde0B6b3a7640000")),
            Ok(U256::from(1_000_000_000_000_000_000u64))
        );
        assert_eq!(u256(json!("0XFF")), Ok(U256::from(255u64)));
        assert_eq!(u256(json!(TWO_256_MINUS_1)), Ok(U256::MAX));
        assert_eq!(u256(json!(format!("0x{}", "f".repeat(64)))), Ok(U256::MAX));
        assert_eq!(u256(json!(format!("0x{}", "0".repeat(64)))), Ok(U256::ZERO));
    }

    #[test]
    fn refuses_malformed_strings() {
        assert_eq!(
            u256(json!("12abc")),
            Err(r#"field 'value': "12abc" is not a number (decimal, or 0x-hex)"#.into())
        );
        assert_eq!(
            u256(json!("-1")),
            Err("field 'value': negative numbers are not allowed".into())
        );
        assert_eq!(
            u256(json!(" 1")),
            Err(r#"field 'value': " 1" is not a number (decimal, or 0x-hex)"#.into())
        );
        assert_eq!(
            u256(json!("1 ")),
            Err(r#"field 'value': "1 " is not a number (decimal, or 0x-hex)"#.into())
        );
        assert_eq!(
            u256(json!("1.5")),
            Err(r#"field 'value': "1.5" is not a number (decimal, or 0x-hex)"#.into())
        );
        assert_eq!(
            u256(json!("+1")),
            Err(r#"field 'value': "+1" is not a number (decimal, or 0x-hex)"#.into())
        );
        assert_eq!(
            u256(json!("1_000")),
            Err(r#"field 'value': "1_000" is not a number (decimal, or 0x-hex)"#.into())
        );
        assert_eq!(
            u256(json!("1e18")),
            Err(r#"field 'value': "1e18" is not a number (decimal, or 0x-hex)"#.into())
        );
        assert_eq!(
            u256(json!("")),
            Err("field 'value' is empty: expected a number (JSON integer, decimal string, or 0x-hex string)".into())
        );
        assert_eq!(
            u256(json!("0x")),
            Err(r#"field 'value': "0x" has no hex digits after 0x"#.into())
        );
        assert_eq!(
            u256(json!("0xg1")),
            Err(r#"field 'value': "0xg1" is not a number (decimal, or 0x-hex)"#.into())
        );
        assert_eq!(
            u256(json!("0x-1")),
            Err(r#"field 'value': "0x-1" is not a number (decimal, or 0x-hex)"#.into())
        );
        assert_eq!(
            u256(json!("0x 1")),
            Err(r#"field 'value': "0x 1" is not a number (decimal, or 0x-hex)"#.into())
        );
        assert_eq!(
            u256(json!("٣")),
            Err(r#"field 'value': "٣" is not a number (decimal, or 0x-hex)"#.into())
        );
        assert_eq!(
            u256(json!("1\n")),
            Err(r#"field 'value': "1\n" is not a number (decimal, or 0x-hex)"#.into())
        );
    }

    #[test]
    fn refuses_overflow() {
        assert_eq!(
            u256(json!(TWO_256)),
            Err(format!("field 'value': {TWO_256} is too large"))
        );
        let hex65 = format!("0x1{}", "0".repeat(64));
        assert_eq!(
            u256(json!(hex65)),
            Err(format!(
                "field 'value': {hex65} is too large (at most 64 hex digits)"
            ))
        );
        let leading_zero_hex65 = format!("0x0{}", "f".repeat(64));
        assert!(u256(json!(leading_zero_hex65)).is_err());
        assert_eq!(
            parse_u64("gas", &json!("18446744073709551616")),
            Err("field 'gas': 18446744073709551616 is too large".into())
        );
        assert_eq!(
            parse_u64("gas", &json!("0x10000000000000000")),
            Err("field 'gas': 0x10000000000000000 is too large".into())
        );
        assert_eq!(
            parse_u64("gas", &json!("18446744073709551615")),
            Ok(u64::MAX)
        );
        assert_eq!(parse_u64("gas", &json!(u64::MAX)), Ok(u64::MAX));
        assert_eq!(
            parse_u128(
                "max_fee_per_gas",
                &json!("340282366920938463463374607431768211456")
            ),
            Err(
                "field 'max_fee_per_gas': 340282366920938463463374607431768211456 is too large"
                    .into()
            )
        );
        assert_eq!(
            parse_u128(
                "max_fee_per_gas",
                &json!("0xffffffffffffffffffffffffffffffff")
            ),
            Ok(u128::MAX)
        );
        let long = "9".repeat(500);
        let msg = u256(json!(long)).err().unwrap_or_default();
        assert!(msg.ends_with("… is too large"), "{msg}");
        assert!(msg.len() < 200, "{msg}");
    }

    #[test]
    fn refuses_non_integer_json() {
        assert_eq!(
            u256(json!(1.5)),
            Err("field 'value': 1.5 is not a whole number (JSON fractions and exponents are not allowed)".into())
        );
        assert_eq!(
            u256(serde_json::from_str("1e3").unwrap_or(Value::Null)),
            Err("field 'value': 1000.0 is not a whole number (JSON fractions and exponents are not allowed)".into())
        );
        assert_eq!(
            u256(json!(-1)),
            Err("field 'value': negative numbers are not allowed".into())
        );
        assert_eq!(
            u256(json!(-1.5)),
            Err("field 'value': negative numbers are not allowed".into())
        );
        assert_eq!(
            parse_u64(
                "gas",
                &serde_json::from_str("18446744073709551616").unwrap_or(Value::Null)
            ),
            Err(
                "field 'gas': the JSON number 1.8446744073709552e+19 is too large to be exact; \
                 send large numbers as a decimal or 0x-hex string"
                    .into()
            )
        );
        assert_eq!(
            u256(Value::Null),
            Err("field 'value': expected a number (JSON integer, decimal string, or 0x-hex string), got null".into())
        );
        assert_eq!(
            u256(json!(true)),
            Err("field 'value': expected a number (JSON integer, decimal string, or 0x-hex string), got a boolean".into())
        );
        assert_eq!(
            u256(json!([1])),
            Err("field 'value': expected a number (JSON integer, decimal string, or 0x-hex string), got an array".into())
        );
        assert_eq!(
            u256(json!({"n": 1})),
            Err("field 'value': expected a number (JSON integer, decimal string, or 0x-hex string), got an object".into())
        );
    }

    #[test]
    fn parses_bytes() {
        assert_eq!(parse_bytes("data", &json!("")), Ok(vec![]));
        assert_eq!(parse_bytes("data", &json!("0x")), Ok(vec![]));
        assert_eq!(
            parse_bytes("data", &json!("0xa9059CBB")),
            Ok(vec![0xa9, 0x05, 0x9c, 0xbb])
        );
        assert_eq!(parse_bytes("data", &json!("0X00")), Ok(vec![0]));
        assert_eq!(
            parse_bytes("data", &json!("0xabc")),
            Err("field 'data': 0x-hex data must have an even number of hex digits, got 3".into())
        );
        assert_eq!(
            parse_bytes("data", &json!("0xzz")),
            Err(r#"field 'data': "0xzz" is not 0x-hex data ('z' is not a hex digit)"#.into())
        );
        assert_eq!(
            parse_bytes("data", &json!("abcd")),
            Err(r#"field 'data': "abcd" is not 0x-hex data (it must start with 0x)"#.into())
        );
        assert_eq!(
            parse_bytes("data", &Value::Null),
            Err("field 'data': expected 0x-hex data as a string, got null".into())
        );
        assert_eq!(
            parse_bytes("data", &json!([1, 2])),
            Err("field 'data': expected 0x-hex data as a string, got an array".into())
        );
    }
}
