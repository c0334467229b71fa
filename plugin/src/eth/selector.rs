//! Function selectors for call allow-lists: `0x` + 8 hex digits, or the first four bytes of
//! keccak256 of a canonical function signature such as `transfer(address,uint256)`.

use alloy_dyn_abi::DynSolType;
use alloy_primitives::Address;

use super::address::parse_address;
use super::keccak256;
use super::number::{quoted, shortened};

/// Longest function signature accepted, in bytes.
const MAX_SIGNATURE_LEN: usize = 1024;
/// Most `(` and `[` in one signature; alloy parses types recursively, so nesting is bounded.
const MAX_NESTING: usize = 64;

/// The 4-byte selector named by `spec`: `0x12345678`, or a canonical signature `name(types)`.
pub fn selector_of(spec: &str) -> Result<[u8; 4], String> {
    if let Some(digits) = spec.strip_prefix("0x") {
        if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "selector {}: a hex selector is 0x followed by exactly 8 hex digits",
                quoted(spec)
            ));
        }
        let mut out = [0u8; 4];
        hex::decode_to_slice(digits, &mut out)
            .map_err(|e| format!("selector {}: {e}", quoted(spec)))?;
        return Ok(out);
    }
    check_signature(spec)?;
    let hash = keccak256(spec.as_bytes());
    let mut out = [0u8; 4];
    out.copy_from_slice(&hash[..4]);
    Ok(out)
}

/// Parses an allow-list entry `CONTRACT:SELECTOR`, e.g. `0x…:0xa9059cbb` or
/// `0x…:submitBlock(bytes32)`.
pub fn parse_allowed_call(s: &str) -> Result<(Address, [u8; 4]), String> {
    let (contract, selector) = s.split_once(':').ok_or_else(|| {
        format!(
            "allowed call {}: expected CONTRACT:SELECTOR, like 0xContractAddress:0xa9059cbb \
             or 0xContractAddress:transfer(address,uint256)",
            quoted(s)
        )
    })?;
    let contract = parse_address("contract", contract)
        .map_err(|e| format!("allowed call {}: {e}", quoted(s)))?;
    let selector = selector_of(selector).map_err(|e| format!("allowed call {}: {e}", quoted(s)))?;
    Ok((contract, selector))
}

/// Accepts only `name(types)` where the types are already in canonical ABI form, so the text
/// hashed is exactly the one Solidity hashes.
fn check_signature(spec: &str) -> Result<(), String> {
    let shape = || {
        format!(
            "selector {}: expected 0x followed by 8 hex digits, or a function signature \
             like transfer(address,uint256)",
            quoted(spec)
        )
    };
    if spec.chars().any(char::is_whitespace) {
        return Err(format!(
            "selector {}: a function signature has no spaces, like transfer(address,uint256)",
            quoted(spec)
        ));
    }
    if spec.len() > MAX_SIGNATURE_LEN {
        return Err(format!(
            "selector {}: a function signature is at most {MAX_SIGNATURE_LEN} bytes",
            quoted(spec)
        ));
    }
    if spec.bytes().filter(|b| matches!(b, b'(' | b'[')).count() > MAX_NESTING {
        return Err(format!(
            "selector {}: a function signature has at most {MAX_NESTING} '(' and '[' in all",
            quoted(spec)
        ));
    }
    let open = spec.find('(').ok_or_else(shape)?;
    let (name, params) = spec.split_at(open);
    if !params.ends_with(')') {
        return Err(shape());
    }
    let mut chars = name.chars();
    let starts_well = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$');
    if !starts_well || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
        return Err(format!(
            "selector {}: {} is not a function name (letters, digits, _ and $, not starting with a digit)",
            quoted(spec),
            quoted(name)
        ));
    }
    let ty = DynSolType::parse(params).map_err(|e| {
        format!(
            "selector {}: {} is not a list of ABI types ({})",
            quoted(spec),
            quoted(params),
            shortened(&e.to_string())
        )
    })?;
    let canonical = canonical_name(&ty);
    if !matches!(ty, DynSolType::Tuple(_)) || canonical != params {
        return Err(format!(
            "selector {}: the parameter types are not in canonical form; write {name}{canonical}",
            quoted(spec)
        ));
    }
    Ok(())
}

/// The ABI spelling of `ty`. alloy's own `sol_type_name` writes a one-element tuple Rust-style
/// as `(address,)`, which is not what Solidity hashes.
fn canonical_name(ty: &DynSolType) -> String {
    match ty {
        DynSolType::Tuple(members) => {
            let inner: Vec<String> = members.iter().map(canonical_name).collect();
            format!("({})", inner.join(","))
        }
        DynSolType::Array(member) => format!("{}[]", canonical_name(member)),
        DynSolType::FixedArray(member, len) => format!("{}[{len}]", canonical_name(member)),
        other => other.sol_type_name().into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_selectors() {
        // ERC-20 (EIP-20) and Solidity ABI spec examples.
        assert_eq!(
            selector_of("transfer(address,uint256)"),
            Ok([0xa9, 0x05, 0x9c, 0xbb])
        );
        assert_eq!(
            selector_of("approve(address,uint256)"),
            Ok([0x09, 0x5e, 0xa7, 0xb3])
        );
        assert_eq!(
            selector_of("balanceOf(address)"),
            Ok([0x70, 0xa0, 0x82, 0x31])
        );
        assert_eq!(selector_of("totalSupply()"), Ok([0x18, 0x16, 0x0d, 0xdd]));
        // Solidity ABI specification, "Examples": baz(uint32,bool) = 0xcdcd77c0,
        // bar(bytes3[2]) = 0xfce353f6, sam(bytes,bool,uint256[]) = 0xa5643bf2,
        // f(uint256,uint32[],bytes10,bytes) = 0x8be65246.
        assert_eq!(
            selector_of("baz(uint32,bool)"),
            Ok([0xcd, 0xcd, 0x77, 0xc0])
        );
        assert_eq!(selector_of("bar(bytes3[2])"), Ok([0xfc, 0xe3, 0x53, 0xf6]));
        assert_eq!(
            selector_of("sam(bytes,bool,uint256[])"),
            Ok([0xa5, 0x64, 0x3b, 0xf2])
        );
        assert_eq!(
            selector_of("f(uint256,uint32[],bytes10,bytes)"),
            Ok([0x8b, 0xe6, 0x52, 0x46])
        );
        assert_eq!(
            selector_of("submitBlock(bytes32)"),
            Ok(<[u8; 4]>::try_from(&keccak256(b"submitBlock(bytes32)")[..4]).unwrap_or_default())
        );
        assert!(selector_of("f((address,uint256)[],bool)").is_ok());
        assert_eq!(
            selector_of("f((address)[2][],(bool))"),
            Ok(
                <[u8; 4]>::try_from(&keccak256(b"f((address)[2][],(bool))")[..4])
                    .unwrap_or_default()
            )
        );
        assert!(selector_of("_$x9()").is_ok());
    }

    #[test]
    fn hex_selectors() {
        assert_eq!(selector_of("0xa9059cbb"), Ok([0xa9, 0x05, 0x9c, 0xbb]));
        assert_eq!(selector_of("0xA9059CBB"), Ok([0xa9, 0x05, 0x9c, 0xbb]));
        let msg = |s: &str| {
            format!("selector {s:?}: a hex selector is 0x followed by exactly 8 hex digits")
        };
        for bad in [
            "0x",
            "0xa9059cb",
            "0xa9059cbb00",
            "0xa9059cbg",
            "0x a9059cb",
        ] {
            assert_eq!(selector_of(bad), Err(msg(bad)), "{bad}");
        }
    }

    #[test]
    fn refuses_malformed_signatures() {
        assert_eq!(
            selector_of("transfer(address, uint256)"),
            Err(r#"selector "transfer(address, uint256)": a function signature has no spaces, like transfer(address,uint256)"#.into())
        );
        assert_eq!(
            selector_of("transfer(address,uint)"),
            Err(r#"selector "transfer(address,uint)": the parameter types are not in canonical form; write transfer(address,uint256)"#.into())
        );
        assert_eq!(
            selector_of("transfer"),
            Err(r#"selector "transfer": expected 0x followed by 8 hex digits, or a function signature like transfer(address,uint256)"#.into())
        );
        assert_eq!(
            selector_of(""),
            Err(r#"selector "": expected 0x followed by 8 hex digits, or a function signature like transfer(address,uint256)"#.into())
        );
        assert_eq!(
            selector_of("1transfer(address)"),
            Err(r#"selector "1transfer(address)": "1transfer" is not a function name (letters, digits, _ and $, not starting with a digit)"#.into())
        );
        assert!(selector_of("(address)").is_err());
        assert!(selector_of("transfer(address").is_err());
        assert!(selector_of("transfer(address))").is_err());
        assert!(selector_of("transfer(address)x").is_err());
        assert!(selector_of("transfer(adress)").is_err());
        assert!(selector_of("transfer(Person)").is_err());
        assert_eq!(
            selector_of("transfer(address,)"),
            Err(r#"selector "transfer(address,)": the parameter types are not in canonical form; write transfer(address)"#.into())
        );
        assert!(selector_of("f((address,))").is_err());
        assert!(selector_of("f(uint[])").is_err());
        assert!(selector_of("transfer(tuple(address))").is_err());
        assert!(selector_of("tr-ansfer(address)").is_err());
        assert!(selector_of("transfer\t(address)").is_err());
    }

    #[test]
    fn allowed_calls() {
        let contract = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        let expected = parse_address("contract", contract).unwrap_or_default();
        assert_eq!(
            parse_allowed_call(&format!("{contract}:0xa9059cbb")),
            Ok((expected, [0xa9, 0x05, 0x9c, 0xbb]))
        );
        assert_eq!(
            parse_allowed_call(&format!("{contract}:transfer(address,uint256)")),
            Ok((expected, [0xa9, 0x05, 0x9c, 0xbb]))
        );
        assert_eq!(
            parse_allowed_call(contract),
            Err(format!(
                "allowed call {contract:?}: expected CONTRACT:SELECTOR, like 0xContractAddress:0xa9059cbb \
                 or 0xContractAddress:transfer(address,uint256)"
            ))
        );
        assert_eq!(
            parse_allowed_call(":0xa9059cbb"),
            Err(r#"allowed call ":0xa9059cbb": field 'contract' is required: an empty address is never taken as the zero address"#.into())
        );
        let bad_checksum = "0x5aaeb6053F3E94C9b9A09f33669435E7Ef1BeAed:0xa9059cbb";
        assert!(
            parse_allowed_call(bad_checksum).is_err_and(|e| e.contains("bad EIP-55 checksum")),
            "{bad_checksum}"
        );
        assert!(parse_allowed_call(&format!("{contract}:")).is_err());
        assert!(parse_allowed_call(&format!("{contract}:transfer(address, uint256)")).is_err());
        assert!(parse_allowed_call(&format!(" {contract}:0xa9059cbb")).is_err());
    }
}
