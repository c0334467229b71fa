//! A contract's JSON ABI (solc's `--abi` array, or a Foundry/Hardhat/Truffle artifact with an
//! `abi` key): the canonical signatures of its functions and errors, the text Solidity hashes
//! for a selector (`enqueue(uint256,address,(uint256,bytes32),uint168)`: a tuple is its
//! components in parentheses).

use serde_json::Value;

use crate::error::{Error, Result};

/// The functions and custom errors an ABI declares, as canonical signatures.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Abi {
    pub functions: Vec<String>,
    pub errors: Vec<String>,
}

/// Reads an ABI from its JSON. Anything that is not an ABI is an error naming the entry.
pub fn parse(json: &Value) -> Result<Abi> {
    let entries = match json {
        Value::Array(a) => a,
        Value::Object(o) => match o.get("abi") {
            Some(Value::Array(a)) => a,
            _ => return Err(bad("an object without an \"abi\" array")),
        },
        _ => return Err(bad("neither an array nor an artifact with an \"abi\" key")),
    };
    let mut abi = Abi::default();
    for (i, entry) in entries.iter().enumerate() {
        let what = || format!("entry {i}");
        let kind = match entry.get("type") {
            // Solidity's ABI spec: a missing type is a function.
            None => "function",
            Some(Value::String(t)) => t.as_str(),
            Some(_) => return Err(bad(format!("{}: \"type\" is not a string", what()))),
        };
        let into = match kind {
            "function" => &mut abi.functions,
            "error" => &mut abi.errors,
            _ => continue, // constructor, event, fallback, receive
        };
        let name = entry
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| is_identifier(n))
            .ok_or_else(|| bad(format!("{}: a {kind} without a valid \"name\"", what())))?;
        let types =
            params(entry.get("inputs"), 0).map_err(|e| bad(format!("{} ({name}): {e}", what())))?;
        into.push(format!("{name}({types})"));
    }
    Ok(abi)
}

fn bad(what: impl std::fmt::Display) -> Error {
    Error::usage(format!("not a JSON ABI: {what}"))
}

/// A parameter list's canonical types, comma-separated.
fn params(list: Option<&Value>, depth: usize) -> std::result::Result<String, String> {
    let list = match list {
        None => return Ok(String::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err("\"inputs\"/\"components\" is not an array".into()),
    };
    if depth > 32 {
        return Err("tuples nested more than 32 deep".into());
    }
    let mut out = Vec::with_capacity(list.len());
    for p in list {
        let ty = p
            .get("type")
            .and_then(Value::as_str)
            .ok_or("a parameter without a \"type\"")?;
        out.push(if let Some(dims) = ty.strip_prefix("tuple") {
            check_dims(dims).map_err(|()| format!("the type {ty:?}"))?;
            format!("({}){dims}", params(p.get("components"), depth + 1)?)
        } else {
            check_type(ty).map_err(|()| format!("the type {ty:?}"))?;
            ty.to_owned()
        });
    }
    Ok(out.join(","))
}

/// An elementary type as canonical ABI text: lower-case letters and digits, then array
/// dimensions (`uint256`, `bytes32[]`, `address[2][]`).
fn check_type(ty: &str) -> std::result::Result<(), ()> {
    let base_end = ty.find('[').unwrap_or(ty.len());
    let (base, dims) = ty.split_at(base_end);
    let ok = !base.is_empty()
        && base.starts_with(|c: char| c.is_ascii_lowercase())
        && base
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if ok { check_dims(dims) } else { Err(()) }
}

/// `[]`, `[3]`, repeated, or nothing.
fn check_dims(mut dims: &str) -> std::result::Result<(), ()> {
    while !dims.is_empty() {
        let inner_end = dims.find(']').ok_or(())?;
        let inner = dims
            .strip_prefix('[')
            .ok_or(())?
            .get(..inner_end - 1)
            .ok_or(())?;
        if !inner.chars().all(|c| c.is_ascii_digit()) {
            return Err(());
        }
        dims = &dims[inner_end + 1..];
    }
    Ok(())
}

/// A Solidity identifier: letters, digits, `_` and `$`, not starting with a digit.
fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn signatures_are_canonical_with_tuples_and_arrays() {
        let abi = parse(&json!([
            { "type": "constructor", "inputs": [{ "name": "a", "type": "address" }] },
            { "type": "function", "name": "submitBlock", "inputs": [{ "name": "r", "type": "bytes32" }] },
            { "name": "authority", "inputs": [] },
            { "type": "event", "name": "BlockSubmitted", "inputs": [{ "type": "uint256" }] },
            { "type": "error", "name": "Unauthorized", "inputs": [{ "type": "address" }] },
            { "type": "function", "name": "enqueue", "inputs": [
                { "type": "uint256" },
                { "type": "tuple", "components": [{ "type": "uint256" }, { "type": "bytes32" }] },
                { "type": "tuple[2][]", "components": [{ "type": "address[]" }, { "type": "tuple", "components": [{ "type": "bool" }] }] }
            ] }
        ]))
        .unwrap();
        assert_eq!(
            abi.functions,
            [
                "submitBlock(bytes32)",
                "authority()",
                "enqueue(uint256,(uint256,bytes32),(address[],(bool))[2][])"
            ]
        );
        assert_eq!(abi.errors, ["Unauthorized(address)"]);
        // An artifact's "abi" key.
        let art = parse(
            &json!({ "contractName": "X", "abi": [{ "type": "function", "name": "f", "inputs": [] }] }),
        );
        assert_eq!(art.unwrap().functions, ["f()"]);
    }

    #[test]
    fn what_is_not_an_abi_is_refused() {
        for bad in [
            json!({ "x": 1 }),
            json!("submitBlock(bytes32)"),
            json!([{ "type": "function", "inputs": [] }]),
            json!([{ "type": "function", "name": "f(x)", "inputs": [] }]),
            json!([{ "type": "function", "name": "f", "inputs": [{ "type": "Bytes32" }] }]),
            json!([{ "type": "function", "name": "f", "inputs": [{ "type": "uint256[" }] }]),
            json!([{ "type": "function", "name": "f", "inputs": [{ "type": "uint256[x]" }] }]),
            json!([{ "type": "function", "name": "f", "inputs": [{ "type": "uint 256" }] }]),
            json!([{ "type": "function", "name": "f", "inputs": [{ "name": "a" }] }]),
            json!([{ "type": "function", "name": "f", "inputs": {} }]),
            json!([{ "type": 5, "name": "f" }]),
        ] {
            let e = parse(&bad).unwrap_err();
            assert_eq!(e.kind.exit_code(), 2, "{bad}");
        }
    }
}
