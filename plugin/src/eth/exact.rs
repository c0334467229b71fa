//! JSON read with every number exactly as its client wrote it.
//!
//! serde_json reads an integer beyond u64 as the nearest f64: `1000000000000000000000000000001`
//! becomes `1e30`. OpenBao hands the plugin the request's numbers digit for digit (its JSON
//! decoder keeps them as `json.Number`), so typed data can sign the number the client wrote, as
//! eth-account does, if the plugin reads it exactly. serde_json's `arbitrary_precision` feature
//! would do that, but for every crate of the workspace built with the plugin, custody included;
//! this reader changes nothing else. serde_json parses and validates the text as always; a scan
//! of the same text supplies, in the same order, the literal of each number it reads, and each
//! literal is checked to be the number serde_json read, so the two can never fall out of step.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

/// A JSON value whose numbers keep their literal text beside the number serde_json reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Exact {
    Null,
    Bool(bool),
    /// The literal as written (`1e30`, `-0`, `1000000000000000000000000000000`) and the number
    /// serde_json makes of it.
    Number(String, Number),
    String(String),
    Array(Vec<Exact>),
    /// Keys as serde_json keeps them: sorted, and the last of a repeated key wins.
    Object(BTreeMap<String, Exact>),
}

impl Exact {
    /// Parses JSON text; the errors are serde_json's.
    pub fn parse(text: &str) -> Result<Exact, String> {
        serde_json::from_str::<IgnoredAny>(text).map_err(|e| e.to_string())?;
        let literals = RefCell::new(number_literals(text).into_iter());
        let mut de = serde_json::Deserializer::from_str(text);
        let value = Seed(&literals)
            .deserialize(&mut de)
            .map_err(|e| e.to_string())?;
        de.end().map_err(|e| e.to_string())?;
        if literals.borrow_mut().next().is_some() {
            return Err(OUT_OF_STEP.to_owned());
        }
        Ok(value)
    }

    /// The value as serde_json reads it (numbers beyond 64 bits rounded).
    pub fn to_value(&self) -> Value {
        match self {
            Exact::Null => Value::Null,
            Exact::Bool(b) => Value::Bool(*b),
            Exact::Number(_, n) => Value::Number(n.clone()),
            Exact::String(s) => Value::String(s.clone()),
            Exact::Array(a) => Value::Array(a.iter().map(Exact::to_value).collect()),
            Exact::Object(o) => {
                Value::Object(o.iter().map(|(k, v)| (k.clone(), v.to_value())).collect())
            }
        }
    }

    /// A member of an object.
    pub fn get(&self, key: &str) -> Option<&Exact> {
        match self {
            Exact::Object(o) => o.get(key),
            _ => None,
        }
    }
}

/// An already-parsed value: its numbers are what serde_json made of them, written back as
/// text (so a number that was rounded stays rounded, and reads as `1e+30`).
impl From<&Value> for Exact {
    fn from(v: &Value) -> Exact {
        match v {
            Value::Null => Exact::Null,
            Value::Bool(b) => Exact::Bool(*b),
            Value::Number(n) => Exact::Number(n.to_string(), n.clone()),
            Value::String(s) => Exact::String(s.clone()),
            Value::Array(a) => Exact::Array(a.iter().map(Exact::from).collect()),
            Value::Object(o) => {
                Exact::Object(o.iter().map(|(k, v)| (k.clone(), v.into())).collect())
            }
        }
    }
}

const OUT_OF_STEP: &str =
    "the JSON numbers could not be read exactly (the number scan is out of step with the parser)";

/// The number tokens of valid JSON text, in order: outside strings, a number is the only token
/// that starts with `-` or a digit, and it runs over digits, signs, `.`, `e` and `E`.
fn number_literals(text: &str) -> Vec<&str> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    // An escape's next byte is never the closing quote (`\"`), nor does `\u`
                    // take one: skipping one byte after the backslash is enough.
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < b.len() && matches!(b[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    i += 1;
                }
                out.push(&text[start..i]);
            }
            _ => i += 1,
        }
    }
    out
}

/// serde_json's default float parsing is best effort (its `float_roundtrip` feature is off), so
/// a literal's correctly rounded value may differ from serde_json's in the last bits.
fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= a.abs().max(b.abs()) * 1e-12 || a.abs().max(b.abs()) < 1e-300
}

type Literals<'t> = RefCell<std::vec::IntoIter<&'t str>>;

#[derive(Clone, Copy)]
struct Seed<'a, 't>(&'a Literals<'t>);

impl Seed<'_, '_> {
    /// The next literal, which must be the number serde_json read.
    fn number<E: de::Error>(self, read: Number, same: impl Fn(&str) -> bool) -> Result<Exact, E> {
        match self.0.borrow_mut().next() {
            Some(literal) if same(literal) => Ok(Exact::Number(literal.to_owned(), read)),
            _ => Err(E::custom(OUT_OF_STEP)),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_, '_> {
    type Value = Exact;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Exact, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_, '_> {
    type Value = Exact;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Exact, E> {
        Ok(Exact::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Exact, E> {
        Ok(Exact::Bool(b))
    }
    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Exact, E> {
        self.number(u.into(), |l| l.parse() == Ok(u))
    }
    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Exact, E> {
        self.number(i.into(), |l| l.parse() == Ok(i))
    }
    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Exact, E> {
        let read = Number::from_f64(f).ok_or_else(|| E::custom("a JSON number is not finite"))?;
        self.number(read, |l| l.parse::<f64>().is_ok_and(|g| close(f, g)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Exact, E> {
        Ok(Exact::String(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Exact, E> {
        Ok(Exact::String(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Exact, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Exact::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Exact, A::Error> {
        let mut members = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(self)?;
            members.insert(key, value);
        }
        Ok(Exact::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn literal(e: &Exact) -> &str {
        match e {
            Exact::Number(l, _) => l,
            other => panic!("not a number: {other:?}"),
        }
    }

    #[test]
    fn numbers_keep_their_digits() {
        let text = r#"{"a": 1000000000000000000000000000001, "b": [1e30, 1.0, -0, 2.50, -3],
            "c": {"d": -57896044618658097711785492504343953926634992332820282019728792003956564819968},
            "s": "not 5 a -number \" 7", "k\"ey 9": 18446744073709551615, "t": true, "n": null}"#;
        let e = Exact::parse(text).unwrap();
        assert_eq!(
            literal(e.get("a").unwrap()),
            "1000000000000000000000000000001"
        );
        let Some(Exact::Array(b)) = e.get("b") else {
            panic!()
        };
        let b: Vec<&str> = b.iter().map(literal).collect();
        assert_eq!(b, ["1e30", "1.0", "-0", "2.50", "-3"]);
        assert!(literal(e.get("c").unwrap().get("d").unwrap()).starts_with("-578960446186"));
        assert_eq!(
            e.get("s"),
            Some(&Exact::String("not 5 a -number \" 7".into()))
        );
        assert_eq!(literal(e.get("k\"ey 9").unwrap()), "18446744073709551615");
        // What serde_json alone makes of the same text.
        assert_eq!(e.to_value(), serde_json::from_str::<Value>(text).unwrap());
    }

    #[test]
    fn long_literals_that_serde_json_rounds_its_own_way() {
        let mut text = String::from("[");
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for i in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let digits = format!("{x}{}{}", x.rotate_left(i % 64), x / 3);
            text.push_str(&match i % 4 {
                0 => digits.clone(),
                1 => format!("-{digits}"),
                2 => format!("{}.{}e{}", &digits[..1], &digits[1..], i % 300),
                _ => format!("0.{digits}e-{}", i % 300),
            });
            text.push(',');
        }
        text.push_str("0]");
        let e = Exact::parse(&text).unwrap();
        assert_eq!(e.to_value(), serde_json::from_str::<Value>(&text).unwrap());
    }

    #[test]
    fn a_repeated_key_keeps_the_last_as_serde_json_does() {
        let text = r#"{"x": 1, "x": 20000000000000000000000}"#;
        let e = Exact::parse(text).unwrap();
        assert_eq!(literal(e.get("x").unwrap()), "20000000000000000000000");
        assert_eq!(e.to_value(), serde_json::from_str::<Value>(text).unwrap());
    }

    #[test]
    fn refuses_what_serde_json_refuses() {
        for bad in ["{", "01", "1e400", "[1,]", "\"\\x\"", "{} {}", "-", "nul"] {
            let ours = Exact::parse(bad);
            let theirs = serde_json::from_str::<Value>(bad);
            assert!(
                ours.is_err() && theirs.is_err(),
                "{bad}: {ours:?} {theirs:?}"
            );
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(Exact::parse(&deep).is_err_and(|e| e.contains("recursion limit")));
    }

    #[test]
    fn a_parsed_value_keeps_what_serde_json_made_of_it() {
        let v = json!({"a": 5, "b": 1e30, "c": [-1, "x"]});
        let e = Exact::from(&v);
        assert_eq!(literal(e.get("b").unwrap()), "1e+30");
        assert_eq!(e.to_value(), v);
    }
}
