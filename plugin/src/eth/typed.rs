//! EIP-712 typed structured data: the signing hash (computed by alloy's `TypedData`) and its
//! signature.
//!
//! alloy computes the domain separator from the `domain` values alone: it ignores
//! `types.EIP712Domain` and silently drops domain fields it does not know. Wallets instead
//! hash the domain as `types.EIP712Domain` declares it. So that the hash signed here is the one
//! every wallet and contract computes, the domain must use only the standard fields, and
//! `types.EIP712Domain` must declare exactly those present, in the standard order and types.
//!
//! alloy parses and hashes types recursively, so type names, array dimensions and struct
//! nesting are bounded here first: hostile nesting would otherwise overflow the stack.

use std::collections::HashMap;

use alloy_dyn_abi::TypedData;
use alloy_primitives::{Address, B256, U256};
use serde_json::{Map, Value};

use super::address::parse_address;
use super::exact::Exact;
use super::key::AccountKey;
use super::number::{quoted, shortened};

/// Longest type or struct name accepted, in bytes.
const MAX_TYPE_LEN: usize = 256;
/// Most array dimensions on one type, as in `uint256[][2]`.
const MAX_ARRAY_DIMENSIONS: usize = 8;
/// Deepest chain of structs inside structs, counting the primary type.
const MAX_STRUCT_DEPTH: usize = 32;

/// The EIP-712 domain fields, in the order the standard fixes, with their types.
const DOMAIN_FIELDS: [(&str, &str); 5] = [
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
    ("salt", "bytes32"),
];

/// The EIP-712 signing hash `keccak256(0x19 0x01 || domainSeparator || hashStruct(message))`
/// of a typed-data object (`types`, `primaryType`, `domain`, `message`), given either as a JSON
/// object or as a JSON string holding one, as `eth_signTypedData_v4` sends it.
pub fn typed_data_hash(json: &Value) -> Result<B256, String> {
    typed_data_checked(json).map(|t| t.hash)
}

/// Typed data checked and hashed: the signing hash, and the domain as alloy hashed it (so the
/// chain and contract an account's rules look at are the ones the signature commits to).
pub struct CheckedTypedData {
    pub hash: B256,
    pub chain_id: Option<U256>,
    pub verifying_contract: Option<Address>,
}

/// [`typed_data_hash`], with the domain it hashed. A JSON string is read with its numbers
/// exact; an already-parsed value keeps what serde_json made of its numbers.
pub fn typed_data_checked(json: &Value) -> Result<CheckedTypedData, String> {
    match json {
        Value::String(s) => typed_data_checked_text(s),
        other => typed_data_checked_exact(&Exact::from(other)),
    }
}

/// Typed data as JSON text, its numbers read exactly as written.
pub fn typed_data_checked_text(text: &str) -> Result<CheckedTypedData, String> {
    let exact =
        Exact::parse(text).map_err(|e| format!("typed data: the string is not JSON ({e})"))?;
    typed_data_checked_exact(&exact)
}

/// [`typed_data_checked`] of typed data whose numbers keep their literal text: each number a
/// `uint`/`int` member (or `domain.chainId`) holds is hashed exactly as written, never through
/// f64; a number in fraction or exponent form there is refused, as eth-account refuses it.
pub fn typed_data_checked_exact(exact: &Exact) -> Result<CheckedTypedData, String> {
    let json = &exact.to_value();
    let root = json.as_object().ok_or("typed data must be a JSON object")?;
    let types = required_object(root, "types")?;
    let domain = required_object(root, "domain")?;
    required_object(root, "message")?;
    let primary = match root.get("primaryType") {
        Some(Value::String(p)) if p == "EIP712Domain" => {
            return Err(
                "typed data field 'primaryType' is 'EIP712Domain': there is no message to sign"
                    .to_owned(),
            );
        }
        Some(Value::String(p)) => p,
        Some(_) => return Err("typed data field 'primaryType' must be a string".to_owned()),
        None => return Err("typed data field 'primaryType' is required".to_owned()),
    };
    check_types(types)?;
    if types.contains_key(primary) {
        struct_height(types, primary, 1, &mut HashMap::new())?;
        if let Some(message) = root.get("message") {
            check_no_undeclared(types, primary, message, "message")?;
        }
    }
    check_domain(types, domain)?;

    let mut hashed = root.clone();
    if types.contains_key(primary)
        && let Some(message) = exact.get("message")
    {
        hashed.insert(
            "message".into(),
            exact_integers(types, primary, message, "message")?,
        );
    }
    if let Some(Exact::Object(fields)) = exact.get("domain") {
        let mut d = Map::new();
        for (name, v) in fields {
            let ty = DOMAIN_FIELDS
                .iter()
                .find(|(n, _)| n == name)
                .map_or("", |(_, t)| t);
            let v = exact_integers(types, ty, v, &format!("domain.{name}"))?;
            d.insert(name.clone(), v);
        }
        hashed.insert("domain".into(), Value::Object(d));
    }

    let alloy_error =
        |e: &dyn std::fmt::Display| format!("typed data: {}", shortened(&e.to_string()));
    let typed: TypedData =
        serde_json::from_value(Value::Object(hashed)).map_err(|e| alloy_error(&e))?;
    let hash = typed.eip712_signing_hash().map_err(|e| alloy_error(&e))?;
    Ok(CheckedTypedData {
        hash,
        chain_id: typed.domain.chain_id,
        verifying_contract: typed.domain.verifying_contract,
    })
}

/// Signs typed data; returns the EIP-712 hash signed and `r || s || v` with v 27/28.
pub fn sign_typed_data(key: &AccountKey, json: &Value) -> Result<(B256, [u8; 65]), String> {
    let hash = typed_data_hash(json)?;
    let sig = key.sign_hash(&hash)?;
    Ok((hash, sig.to_rsv()))
}

fn required_object<'a>(
    root: &'a Map<String, Value>,
    key: &str,
) -> Result<&'a Map<String, Value>, String> {
    match root.get(key) {
        Some(Value::Object(o)) => Ok(o),
        Some(_) => Err(format!("typed data field '{key}' must be a JSON object")),
        None => Err(format!("typed data field '{key}' is required")),
    }
}

/// Every struct name is a Solidity identifier that is not an elementary type's name, every
/// member name is an identifier used once in its struct, and every member type is `identifier`
/// followed by at most [`MAX_ARRAY_DIMENSIONS`] `[]` or `[N]` suffixes. A struct named like an
/// elementary type, or a name other wallets would read differently, could make our hash differ
/// from theirs for the same input.
fn check_types(types: &Map<String, Value>) -> Result<(), String> {
    for (name, members) in types {
        if !is_identifier(name) {
            return Err(format!(
                "typed data field 'types': {} is not a struct name (a Solidity identifier)",
                quoted(name)
            ));
        }
        if is_elementary(name) {
            return Err(format!(
                "typed data field 'types': a struct may not be named {}, an elementary type",
                quoted(name)
            ));
        }
        let members = members.as_array().ok_or_else(|| {
            format!("typed data field 'types.{name}' must be an array of {{\"name\", \"type\"}}")
        })?;
        let mut seen = std::collections::HashSet::new();
        for (i, member) in members.iter().enumerate() {
            let member_name = member.get("name").and_then(Value::as_str).ok_or_else(|| {
                format!("typed data field 'types.{name}[{i}].name' must be a string")
            })?;
            if !is_identifier(member_name) {
                return Err(format!(
                    "typed data field 'types.{name}[{i}].name': {} is not a member name (a Solidity identifier)",
                    quoted(member_name)
                ));
            }
            if !seen.insert(member_name) {
                return Err(format!(
                    "typed data field 'types.{name}[{i}].name': {} is declared twice",
                    quoted(member_name)
                ));
            }
            let ty = member.get("type").and_then(Value::as_str).ok_or_else(|| {
                format!("typed data field 'types.{name}[{i}].type' must be a string")
            })?;
            if !is_member_type(ty) {
                return Err(format!(
                    "typed data field 'types.{name}[{i}].type': {} is not a type \
                     (a name, then at most {MAX_ARRAY_DIMENSIONS} [] or [N])",
                    quoted(ty)
                ));
            }
        }
    }
    Ok(())
}

/// The depth of struct nesting below `name`, refusing chains deeper than
/// [`MAX_STRUCT_DEPTH`]; a struct that contains itself is refused the same way.
fn struct_height<'a>(
    types: &'a Map<String, Value>,
    name: &'a str,
    depth: usize,
    heights: &mut HashMap<&'a str, usize>,
) -> Result<usize, String> {
    let too_deep = || {
        format!(
            "typed data field 'types': structs nest more than {MAX_STRUCT_DEPTH} deep, \
             or contain themselves (at {})",
            quoted(name)
        )
    };
    if depth > MAX_STRUCT_DEPTH {
        return Err(too_deep());
    }
    if let Some(&height) = heights.get(name) {
        return if depth + height - 1 > MAX_STRUCT_DEPTH {
            Err(too_deep())
        } else {
            Ok(height)
        };
    }
    let mut height = 1;
    let members = types
        .get(name)
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for member in members {
        let ty = member
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let base = ty.split('[').next().unwrap_or_default();
        if let Some((child, _)) = types.get_key_value(base) {
            height = height.max(1 + struct_height(types, child, depth + 1, heights)?);
        }
    }
    heights.insert(name, height);
    Ok(height)
}

/// Refuses message members that the types do not declare: they would be shown to whoever
/// reviews the request but not be signed. Recursion is bounded by [`check_types`] and
/// [`struct_height`].
fn check_no_undeclared(
    types: &Map<String, Value>,
    ty: &str,
    value: &Value,
    path: &str,
) -> Result<(), String> {
    if let Some(element) = ty.strip_suffix(']') {
        let element = element.rsplit_once('[').map_or(element, |(inner, _)| inner);
        if let Value::Array(items) = value {
            for (i, item) in items.iter().enumerate() {
                check_no_undeclared(types, element, item, &format!("{path}[{i}]"))?;
            }
        }
        return Ok(());
    }
    let (Some(Value::Array(members)), Value::Object(fields)) = (types.get(ty), value) else {
        return Ok(());
    };
    let declared = |key: &str| {
        members
            .iter()
            .any(|m| m.get("name").and_then(Value::as_str) == Some(key))
    };
    if let Some(extra) = fields.keys().find(|k| !declared(k)) {
        return Err(format!(
            "typed data field '{path}.{extra}' is not declared in 'types.{ty}', so it would not \
             be signed"
        ));
    }
    for member in members {
        let name = member
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let member_ty = member
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some(v) = fields.get(name) {
            check_no_undeclared(types, member_ty, v, &format!("{path}.{name}"))?;
        }
    }
    Ok(())
}

/// The value alloy hashes: as serde_json reads it, except that each number a `uint`/`int`
/// member holds is passed on exactly (beyond 64 bits as its decimal digits, which alloy reads
/// exactly), and one in fraction or exponent form is refused. Recursion is bounded like
/// [`check_no_undeclared`]'s.
fn exact_integers(
    types: &Map<String, Value>,
    ty: &str,
    value: &Exact,
    path: &str,
) -> Result<Value, String> {
    if let Some(element) = ty.strip_suffix(']') {
        let element = element.rsplit_once('[').map_or(element, |(inner, _)| inner);
        return match value {
            Exact::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| exact_integers(types, element, item, &format!("{path}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            other => Ok(other.to_value()),
        };
    }
    match (types.get(ty), value) {
        (Some(Value::Array(members)), Exact::Object(fields)) => {
            let member_type = |key: &str| {
                members
                    .iter()
                    .find(|m| m.get("name").and_then(Value::as_str) == Some(key))
                    .and_then(|m| m.get("type"))
                    .and_then(Value::as_str)
            };
            let mut out = Map::new();
            for (name, v) in fields {
                let v = match member_type(name) {
                    Some(t) => exact_integers(types, t, v, &format!("{path}.{name}"))?,
                    None => v.to_value(),
                };
                out.insert(name.clone(), v);
            }
            Ok(Value::Object(out))
        }
        (None, Exact::Number(literal, read)) if is_integer_type(ty) => {
            exact_integer(literal, read, ty, path)
        }
        (_, other) => Ok(other.to_value()),
    }
}

/// `uint`, `int`, `uintN`, `intN` (a struct may not take these names: [`check_types`]).
fn is_integer_type(ty: &str) -> bool {
    ty.strip_prefix("uint")
        .or_else(|| ty.strip_prefix("int"))
        .is_some_and(|bits| bits.bytes().all(|b| b.is_ascii_digit()))
}

fn exact_integer(
    literal: &str,
    read: &serde_json::Number,
    ty: &str,
    path: &str,
) -> Result<Value, String> {
    if read.is_u64() || read.is_i64() {
        return Ok(Value::Number(read.clone()));
    }
    let digits = literal.strip_prefix('-').unwrap_or(literal);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if digits.bytes().all(|b| b == b'0') {
            return Ok(Value::from(0)); // `-0`, which JSON allows
        }
        return Ok(Value::String(literal.to_owned()));
    }
    Err(format!(
        "typed data field '{path}': the JSON number {} is not an integer written in digits; \
         a {ty} takes a JSON integer or a decimal or 0x string (a fraction or an exponent is \
         refused, as eth-account refuses it, rather than rounded)",
        shortened(literal)
    ))
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= MAX_TYPE_LEN
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// The names of Solidity's elementary types (and the reserved `fixed`/`function` family), which
/// EIP-712 resolves before any struct of the same name.
fn is_elementary(name: &str) -> bool {
    const WORDS: [&str; 10] = [
        "address", "bool", "string", "bytes", "byte", "int", "uint", "fixed", "ufixed", "function",
    ];
    if WORDS.contains(&name) {
        return true;
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let sized = ["uint", "int", "bytes"]
        .iter()
        .any(|p| name.strip_prefix(p).is_some_and(digits));
    let fixed = ["ufixed", "fixed"].iter().any(|p| {
        name.strip_prefix(p)
            .and_then(|rest| rest.split_once('x'))
            .is_some_and(|(m, n)| digits(m) && digits(n))
    });
    sized || fixed
}

fn is_member_type(ty: &str) -> bool {
    if ty.len() > MAX_TYPE_LEN {
        return false;
    }
    let (base, mut rest) = ty.split_at(ty.find('[').unwrap_or(ty.len()));
    if !is_identifier(base) {
        return false;
    }
    let mut dimensions = 0;
    while !rest.is_empty() {
        let Some(inner) = rest.strip_prefix('[') else {
            return false;
        };
        let Some(close) = inner.find(']') else {
            return false;
        };
        if !inner[..close].bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        rest = &inner[close + 1..];
        dimensions += 1;
    }
    dimensions <= MAX_ARRAY_DIMENSIONS
}

fn check_domain(types: &Map<String, Value>, domain: &Map<String, Value>) -> Result<(), String> {
    if let Some(unknown) = domain
        .keys()
        .find(|k| !DOMAIN_FIELDS.iter().any(|(name, _)| name == k))
    {
        return Err(format!(
            "typed data field 'domain.{unknown}' is not supported \
             (the EIP-712 domain fields are name, version, chainId, verifyingContract, salt)"
        ));
    }
    if let Some(Value::String(contract)) = domain.get("verifyingContract") {
        parse_address("domain.verifyingContract", contract)
            .map_err(|e| format!("typed data: {e}"))?;
    }

    let expected: Vec<(&str, &str)> = DOMAIN_FIELDS
        .iter()
        .filter(|(name, _)| domain.contains_key(*name))
        .copied()
        .collect();
    let expected_text = expected
        .iter()
        .map(|(name, ty)| format!("{ty} {name}"))
        .collect::<Vec<_>>()
        .join(",");
    let mismatch = || {
        format!(
            "typed data field 'types.EIP712Domain' must declare exactly the fields present in \
             'domain', in the standard order: EIP712Domain({expected_text})"
        )
    };
    let declared = match types.get("EIP712Domain") {
        Some(Value::Array(a)) => a,
        Some(_) => return Err(mismatch()),
        None => {
            return Err(format!(
                "typed data field 'types.EIP712Domain' is required, so that every wallet computes \
                 the same domain separator: EIP712Domain({expected_text})"
            ));
        }
    };
    if declared.len() != expected.len() {
        return Err(mismatch());
    }
    for (entry, (name, ty)) in declared.iter().zip(&expected) {
        let entry_name = entry.get("name").and_then(Value::as_str);
        let entry_type = entry.get("type").and_then(Value::as_str);
        if entry_name != Some(*name) || entry_type != Some(*ty) {
            return Err(mismatch());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eth::{Sig, U256, checksum, keccak256};
    use serde_json::json;

    /// The EIP-712 "Mail" example: the `eth_signTypedData` request in the EIP text and
    /// `assets/eip-712/Example.js`.
    fn mail() -> Value {
        json!({
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"}
                ],
                "Person": [
                    {"name": "name", "type": "string"},
                    {"name": "wallet", "type": "address"}
                ],
                "Mail": [
                    {"name": "from", "type": "Person"},
                    {"name": "to", "type": "Person"},
                    {"name": "contents", "type": "string"}
                ]
            },
            "primaryType": "Mail",
            "domain": {
                "name": "Ether Mail",
                "version": "1",
                "chainId": 1,
                "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"
            },
            "message": {
                "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
                "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
                "contents": "Hello, Bob!"
            }
        })
    }

    const MAIL_HASH: &str = "0xbe609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2";

    #[test]
    fn eip712_mail_example() {
        // Example.js: signHash() = 0xbe60…7bd2; privateKey = keccak256("cow");
        // sig.v = 28, r = 0x4355…1c9d, s = 0x0729…1562. The EIP's eth_signTypedData example
        // result is the same signature as r || s || v.
        assert_eq!(
            typed_data_hash(&mail()).map(|h| h.to_string()),
            Ok(MAIL_HASH.to_owned())
        );
        let cow =
            AccountKey::from_bytes(keccak256(b"cow").as_slice()).unwrap_or_else(|e| panic!("{e}"));
        let (hash, rsv) = sign_typed_data(&cow, &mail()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(hash.to_string(), MAIL_HASH);
        assert_eq!(
            hex::encode(rsv),
            "4355c47d63924e8a72e509b65029052eb6c299d53a04e167c5775fd466751c9d\
             07299936d304c153f6443dfa05f40ff007d72911b6f72307f996231605b91562\
             1c"
        );
        let sig = Sig {
            r: U256::from_be_slice(&rsv[..32]),
            s: U256::from_be_slice(&rsv[32..64]),
            y_parity: rsv[64] == 28,
        };
        assert_eq!(
            sig.recover_address(&hash).map(|a| checksum(&a)),
            Ok("0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826".to_owned())
        );
    }

    #[test]
    fn eip712_v4_arrays_example() {
        // MetaMask eth-sig-util `signTypedData` V4 "example data with arrays" (also in
        // Trust Wallet wallet-core and trezor-firmware EIP-712 tests): domain separator
        // 0xf2ce…090f, message hash 0xeb42…3df8, signing hash 0xa85c…9cc2.
        let v = json!({
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"}
                ],
                "Person": [
                    {"name": "name", "type": "string"},
                    {"name": "wallets", "type": "address[]"}
                ],
                "Mail": [
                    {"name": "from", "type": "Person"},
                    {"name": "to", "type": "Person[]"},
                    {"name": "contents", "type": "string"}
                ],
                "Group": [
                    {"name": "name", "type": "string"},
                    {"name": "members", "type": "Person[]"}
                ]
            },
            "domain": {
                "name": "Ether Mail",
                "version": "1",
                "chainId": 1,
                "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"
            },
            "primaryType": "Mail",
            "message": {
                "from": {
                    "name": "Cow",
                    "wallets": [
                        "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826",
                        "0xDeaDbeefdEAdbeefdEadbEEFdeadbeEFdEaDbeeF"
                    ]
                },
                "to": [{
                    "name": "Bob",
                    "wallets": [
                        "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB",
                        "0xB0BdaBea57B0BDABeA57b0bdABEA57b0BDabEa57",
                        "0xB0B0b0b0b0b0B000000000000000000000000000"
                    ]
                }],
                "contents": "Hello, Bob!"
            }
        });
        assert_eq!(
            typed_data_hash(&v).map(|h| h.to_string()),
            Ok("0xa85c2e2b118698e88db68a8105b794a8cc7cec074e89ef991cb4f5f533819cc2".to_owned())
        );
        let mut extra = v.clone();
        extra["message"]["to"][0]["nickname"] = json!("bobby");
        assert_eq!(
            typed_data_hash(&extra),
            Err(
                "typed data field 'message.to[0].nickname' is not declared in 'types.Person', so \
                 it would not be signed"
                    .into()
            )
        );
    }

    #[test]
    fn bounds_type_nesting() {
        let with_types = |types: Value, message: Value| {
            json!({
                "types": types,
                "primaryType": "Node",
                "domain": {"name": "x"},
                "message": message
            })
        };
        let domain = json!([{"name": "name", "type": "string"}]);

        let own = with_types(
            json!({"EIP712Domain": domain, "Node": [{"name": "next", "type": "Node[]"}]}),
            json!({"next": []}),
        );
        assert_eq!(
            typed_data_hash(&own),
            Err(
                "typed data field 'types': structs nest more than 32 deep, or contain themselves \
                 (at \"Node\")"
                    .into()
            )
        );

        let arrays = |dims: usize| {
            with_types(
                json!({"EIP712Domain": domain, "Node": [{"name": "x", "type": format!("uint8{}", "[]".repeat(dims))}]}),
                json!({"x": []}),
            )
        };
        assert!(typed_data_hash(&arrays(8)).is_ok());
        assert!(
            typed_data_hash(&arrays(100_000))
                .is_err_and(|e| e.ends_with("is not a type (a name, then at most 8 [] or [N])"))
        );

        let chain = |len: usize| {
            let mut types = Map::new();
            types.insert("EIP712Domain".into(), domain.clone());
            types.insert("Node".into(), json!([{"name": "x", "type": "T0"}]));
            for i in 0..len {
                types.insert(
                    format!("T{i}"),
                    json!([{"name": "x", "type": format!("T{}", i + 1)}]),
                );
            }
            types.insert(format!("T{len}"), json!([{"name": "x", "type": "uint8"}]));
            with_types(Value::Object(types), json!({"x": {}}))
        };
        assert!(typed_data_hash(&chain(30)).is_err_and(|e| e.starts_with("typed data: ")));
        assert!(
            typed_data_hash(&chain(31))
                .is_err_and(|e| e.contains("structs nest more than 32 deep"))
        );
        assert!(
            typed_data_hash(&chain(100_000))
                .is_err_and(|e| e.contains("structs nest more than 32 deep"))
        );

        let bad_name = with_types(
            json!({"EIP712Domain": domain, "Node": [{"name": "x", "type": "uint8"}], "A[]": []}),
            json!({"x": 1}),
        );
        assert_eq!(
            typed_data_hash(&bad_name),
            Err(
                "typed data field 'types': \"A[]\" is not a struct name (a Solidity identifier)"
                    .into()
            )
        );
    }

    #[test]
    fn names_are_solidity_identifiers_and_no_struct_is_named_like_a_primitive() {
        let with = |types: Value| {
            let mut v = mail();
            for (k, t) in types.as_object().unwrap() {
                v["types"][k] = t.clone();
            }
            v
        };
        for primitive in [
            "address",
            "uint256",
            "bytes32",
            "bool",
            "string",
            "int8",
            "uint",
            "fixed128x18",
        ] {
            let v = with(json!({ primitive: [{"name": "x", "type": "uint8"}] }));
            assert_eq!(
                typed_data_hash(&v).err(),
                Some(format!(
                    "typed data field 'types': a struct may not be named \"{primitive}\", an elementary type"
                )),
            );
        }
        for name in ["uint256x", "Bytes32", "addressBook", "int_", "fixedx"] {
            assert!(!is_elementary(name), "{name}");
        }
        let bad_member = with(
            json!({ "Person": [{"name": "na me", "type": "string"}, {"name": "wallet", "type": "address"}] }),
        );
        assert!(
            typed_data_hash(&bad_member)
                .is_err_and(|e| e.contains("'types.Person[0].name'") && e.contains("identifier"))
        );
        let twice = with(
            json!({ "Person": [{"name": "name", "type": "string"}, {"name": "name", "type": "address"}] }),
        );
        assert!(typed_data_hash(&twice).is_err_and(|e| e.contains("declared twice")));
        let unnamed = with(json!({ "Person": [{"type": "string"}] }));
        assert!(typed_data_hash(&unnamed).is_err_and(|e| e.contains("must be a string")));
    }

    #[test]
    fn the_checked_domain_is_the_one_hashed() {
        let checked = typed_data_checked(&mail()).unwrap();
        assert_eq!(checked.chain_id, Some(U256::from(1)));
        assert_eq!(
            checked.verifying_contract.map(|a| crate::eth::checksum(&a)),
            Some("0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC".to_owned())
        );
        let mut hex_chain = mail();
        hex_chain["domain"]["chainId"] = json!("0x1");
        let same = typed_data_checked(&hex_chain).unwrap();
        assert_eq!(
            (same.chain_id, same.hash.to_string()),
            (checked.chain_id, MAIL_HASH.to_owned())
        );
    }

    /// Numbers beyond 64 bits, as JSON numbers; each hash is eth-account 0.14.0's
    /// (`encode_typed_data(full_message=json.loads(text))`) for the same text.
    fn two_numbers(u: &str, i: &str) -> String {
        format!(
            r#"{{"types":{{"EIP712Domain":[{{"name":"name","type":"string"}},{{"name":"chainId","type":"uint256"}}],
            "T":[{{"name":"u","type":"uint256"}},{{"name":"i","type":"int256"}}]}},"primaryType":"T",
            "domain":{{"name":"x","chainId":31337}},"message":{{"u":{u},"i":{i}}}}}"#
        )
    }

    const TWO_POW_255: &str =
        "57896044618658097711785492504343953926634992332820282019728792003956564819968";

    #[test]
    fn big_json_numbers_hash_exactly_as_eth_account_hashes_them() {
        let hash = |text: &str| typed_data_checked_text(text).map(|c| c.hash.to_string());
        let ten_pow_30 = "0x2e68df00795779f5f3431ecb7f8e09b6bcd16618c0e836fcffe6bdf62dc74d99";
        assert_eq!(
            hash(&two_numbers("1000000000000000000000000000000", "-5")).as_deref(),
            Ok(ten_pow_30)
        );
        // The same numbers as strings: the same hash.
        assert_eq!(
            hash(&two_numbers(
                "\"1000000000000000000000000000000\"",
                "\"-5\""
            ))
            .as_deref(),
            Ok(ten_pow_30)
        );
        assert_eq!(
            hash(&two_numbers(TWO_POW_255, &format!("-{TWO_POW_255}"))).as_deref(),
            Ok("0x4051f40340e748a63b7d03059999733c0f3c72ff558b2d0ef3f2216ae6aeb731")
        );
        // Nested structs and arrays; int128's both ends, uint256's top, -0.
        let nested = r#"{"types": {"EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"}],
            "Outer": [{"name": "inner", "type": "Inner[]"}, {"name": "vals", "type": "uint256[2]"}, {"name": "grid", "type": "int256[][]"}],
            "Inner": [{"name": "x", "type": "int128"}, {"name": "ys", "type": "uint256[]"}]},
            "primaryType": "Outer", "domain": {"name": "x", "chainId": 31337},
            "message": {"inner": [{"x": -170141183460469231731687303715884105728, "ys": [1000000000000000000000000000000, 0, 18446744073709551616]},
                                  {"x": 170141183460469231731687303715884105727, "ys": []}],
                        "vals": [115792089237316195423570985008687907853269984665640564039457584007913129639935, 7],
                        "grid": [[-1000000000000000000000000000000], [5, -0]]}}"#;
        assert_eq!(
            hash(nested).as_deref(),
            Ok("0xaaeb492b2cdfd5b24d27c25c6c8fa24e6580931ac62dc07f8d5d7e18097bc708")
        );
        // One above each type's range is refused, never wrapped.
        let over = nested.replace(
            "170141183460469231731687303715884105727",
            "170141183460469231731687303715884105728",
        );
        assert!(
            hash(&over).is_err_and(|e| e.starts_with("typed data: ")),
            "{over}"
        );
        assert!(
            hash(&two_numbers(&format!("{TWO_POW_255}0"), "0"))
                .is_err_and(|e| e.starts_with("typed data: "))
        );
    }

    #[test]
    fn an_integer_in_fraction_or_exponent_form_is_refused_not_rounded() {
        for (u, i, path, literal) in [
            ("1e30", "0", "message.u", "1e30"),
            ("1.0", "0", "message.u", "1.0"),
            ("1E+2", "0", "message.u", "1E+2"),
            ("1", "-1.5", "message.i", "-1.5"),
            ("1", "-0.0", "message.i", "-0.0"),
        ] {
            assert_eq!(
                typed_data_checked_text(&two_numbers(u, i)).err(),
                Some(format!(
                    "typed data field '{path}': the JSON number {literal} is not an integer \
                     written in digits; a {} takes a JSON integer or a decimal or 0x string (a \
                     fraction or an exponent is refused, as eth-account refuses it, rather than \
                     rounded)",
                    if path == "message.u" {
                        "uint256"
                    } else {
                        "int256"
                    }
                ))
            );
        }
        let chain = two_numbers("1", "1").replace("31337", "3.1337e4");
        assert!(
            typed_data_checked_text(&chain)
                .is_err_and(|e| e.starts_with("typed data field 'domain.chainId': the JSON number"))
        );
        // A big number already parsed by serde_json was rounded: refused, not signed.
        let rounded: Value =
            serde_json::from_str(&two_numbers("1000000000000000000000000000001", "0")).unwrap();
        assert!(
            typed_data_checked(&rounded)
                .is_err_and(|e| e.contains("the JSON number 1e+30 is not an integer"))
        );
    }

    #[test]
    fn accepts_a_json_string_holding_the_object() {
        let text = Value::String(mail().to_string());
        assert_eq!(
            typed_data_hash(&text).map(|h| h.to_string()),
            Ok(MAIL_HASH.to_owned())
        );
        assert!(
            typed_data_hash(&json!("{not json"))
                .is_err_and(|e| e.starts_with("typed data: the string is not JSON"))
        );
    }

    #[test]
    fn refuses_domains_alloy_would_hash_differently() {
        // alloy alone drops the unknown field and still returns the Mail hash, though a
        // wallet following types.EIP712Domain would hash httpOrigin too.
        let mut with_origin = mail();
        with_origin["domain"]["httpOrigin"] = json!("https://ether-mail.eth");
        let alloy_alone: Result<TypedData, _> = serde_json::from_value(with_origin.clone());
        assert_eq!(
            alloy_alone
                .map(|t| t.eip712_signing_hash().map(|h| h.to_string()).ok())
                .ok()
                .flatten(),
            Some(MAIL_HASH.to_owned())
        );
        assert_eq!(
            typed_data_hash(&with_origin),
            Err("typed data field 'domain.httpOrigin' is not supported \
                 (the EIP-712 domain fields are name, version, chainId, verifyingContract, salt)"
                .into())
        );

        let standard =
            "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)";
        let mut missing = mail();
        if let Some(t) = missing["types"].as_object_mut() {
            t.remove("EIP712Domain");
        }
        assert_eq!(
            typed_data_hash(&missing),
            Err(format!(
                "typed data field 'types.EIP712Domain' is required, so that every wallet computes \
                 the same domain separator: {standard}"
            ))
        );

        let mismatch = Err(format!(
            "typed data field 'types.EIP712Domain' must declare exactly the fields present in \
             'domain', in the standard order: {standard}"
        ));
        let mut reordered = mail();
        reordered["types"]["EIP712Domain"] = json!([
            {"name": "version", "type": "string"},
            {"name": "name", "type": "string"},
            {"name": "chainId", "type": "uint256"},
            {"name": "verifyingContract", "type": "address"}
        ]);
        assert_eq!(typed_data_hash(&reordered), mismatch);

        let mut undeclared = mail();
        undeclared["types"]["EIP712Domain"] = json!([
            {"name": "name", "type": "string"},
            {"name": "version", "type": "string"},
            {"name": "chainId", "type": "uint256"}
        ]);
        assert_eq!(typed_data_hash(&undeclared), mismatch);

        let mut wrong_type = mail();
        wrong_type["types"]["EIP712Domain"][2] = json!({"name": "chainId", "type": "uint64"});
        assert_eq!(typed_data_hash(&wrong_type), mismatch);

        let mut bad_contract = mail();
        bad_contract["domain"]["verifyingContract"] =
            json!("0xcCCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC");
        assert!(typed_data_hash(&bad_contract).is_err_and(|e| e.contains("bad EIP-55 checksum")));
    }

    #[test]
    fn domain_with_fewer_fields() {
        let mut v = mail();
        if let Some(d) = v["domain"].as_object_mut() {
            d.remove("version");
            d.remove("verifyingContract");
        }
        v["types"]["EIP712Domain"] = json!([
            {"name": "name", "type": "string"},
            {"name": "chainId", "type": "uint256"}
        ]);
        let hash = typed_data_hash(&v);
        assert!(hash.is_ok(), "{hash:?}");
        assert_ne!(hash.map(|h| h.to_string()), Ok(MAIL_HASH.to_owned()));
    }

    #[test]
    fn refuses_malformed_typed_data() {
        assert_eq!(
            typed_data_hash(&json!([])),
            Err("typed data must be a JSON object".into())
        );
        assert_eq!(
            typed_data_hash(&Value::Null),
            Err("typed data must be a JSON object".into())
        );
        let mut v = mail();
        if let Some(o) = v.as_object_mut() {
            o.remove("message");
        }
        assert_eq!(
            typed_data_hash(&v),
            Err("typed data field 'message' is required".into())
        );
        let mut v = mail();
        v["domain"] = json!("Ether Mail");
        assert_eq!(
            typed_data_hash(&v),
            Err("typed data field 'domain' must be a JSON object".into())
        );
        let mut v = mail();
        v["primaryType"] = json!("EIP712Domain");
        assert_eq!(
            typed_data_hash(&v),
            Err(
                "typed data field 'primaryType' is 'EIP712Domain': there is no message to sign"
                    .into()
            )
        );
        let mut v = mail();
        v["primaryType"] = json!(5);
        assert_eq!(
            typed_data_hash(&v),
            Err("typed data field 'primaryType' must be a string".into())
        );
        let mut v = mail();
        v["primaryType"] = json!("Letter");
        assert!(typed_data_hash(&v).is_err_and(|e| e.starts_with("typed data: ")));
        let mut v = mail();
        v["message"]["to"] = json!({"name": "Bob"});
        assert!(typed_data_hash(&v).is_err_and(|e| e.starts_with("typed data: ")));
        let mut v = mail();
        v["message"]["from"]["wallet"] = json!("0x1234");
        assert!(typed_data_hash(&v).is_err_and(|e| e.starts_with("typed data: ")));
        let mut v = mail();
        v["message"]["to"]["note"] = json!("unsigned");
        assert_eq!(
            typed_data_hash(&v),
            Err(
                "typed data field 'message.to.note' is not declared in 'types.Person', so it \
                 would not be signed"
                    .into()
            )
        );
        let mut v = mail();
        v["message"]["cc"] = json!("carol");
        assert_eq!(
            typed_data_hash(&v),
            Err("typed data field 'message.cc' is not declared in 'types.Mail', so it would not be signed"
                .into())
        );
        let mut v = mail();
        v["domain"]["chainId"] = json!(-1);
        assert!(typed_data_hash(&v).is_err_and(|e| e.starts_with("typed data: ")));
    }
}
