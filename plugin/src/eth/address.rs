//! Ethereum addresses: strict parsing with EIP-55 checksum enforcement, and checksummed output.
//!
//! An address is `0x` followed by exactly 40 hex digits. All-lowercase and all-uppercase
//! digits carry no checksum and are taken as written; mixed case must be the exact EIP-55
//! spelling, so a mistyped checksummed address is refused rather than silently accepted.

use alloy_primitives::Address;

use super::number::quoted;

/// Parses `s` as the address in request field `field`.
pub fn parse_address(field: &str, s: &str) -> Result<Address, String> {
    if s.is_empty() {
        return Err(format!(
            "field '{field}' is required: an empty address is never taken as the zero address"
        ));
    }
    let digits = s.strip_prefix("0x").ok_or_else(|| {
        format!(
            "field '{field}': {} is not an address (it must start with 0x)",
            quoted(s)
        )
    })?;
    if let Some(bad) = digits.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(format!(
            "field '{field}': {} is not an address ({bad:?} is not a hex digit)",
            quoted(s)
        ));
    }
    if digits.len() != 40 {
        return Err(format!(
            "field '{field}': {} is not an address (it has {} hex digits, an address has 40)",
            quoted(s),
            digits.len()
        ));
    }
    let mut bytes = [0u8; 20];
    hex::decode_to_slice(digits, &mut bytes)
        .map_err(|e| format!("field '{field}': {} is not an address ({e})", quoted(s)))?;
    let address = Address::from(bytes);

    let has_lower = digits.bytes().any(|b| b.is_ascii_lowercase());
    let has_upper = digits.bytes().any(|b| b.is_ascii_uppercase());
    if has_lower && has_upper {
        let expected = checksum(&address);
        if expected != s {
            return Err(format!(
                "field '{field}': {s} has a bad EIP-55 checksum \
                 (mixed case must match the checksum exactly; check the address for typos)"
            ));
        }
    }
    Ok(address)
}

/// The EIP-55 mixed-case checksummed spelling of `a`, with the `0x` prefix.
pub fn checksum(a: &Address) -> String {
    a.to_checksum(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// EIP-55 "Test Cases" (all caps, all lower, normal), as also used by ethereumjs-util's
    /// `isValidChecksumAddress` tests.
    const EIP55_VECTORS: [&str; 8] = [
        "0x52908400098527886E0F7030069857D2E4169EE7",
        "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
        "0xde709f2102306220921060314715629080e2fb77",
        "0x27b1fdb04752bbc536007a920d24acb045561c26",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ];

    #[test]
    fn eip55_vectors_parse_and_round_trip() {
        for v in EIP55_VECTORS {
            let a = parse_address("to", v);
            assert!(a.is_ok(), "{v}: {a:?}");
            let a = a.unwrap_or_default();
            assert_eq!(checksum(&a), v);
            assert_eq!(parse_address("to", &v.to_lowercase()), Ok(a));
            assert_eq!(
                parse_address("to", &format!("0x{}", v[2..].to_uppercase())),
                Ok(a)
            );
        }
    }

    #[test]
    fn flipped_case_is_a_bad_checksum() {
        let good = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        let bad = "0x5aaeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        assert_eq!(
            parse_address("to", bad),
            Err(format!(
                "field 'to': {bad} has a bad EIP-55 checksum \
                 (mixed case must match the checksum exactly; check the address for typos)"
            ))
        );
        for (i, c) in good.char_indices().skip(2) {
            if !c.is_ascii_alphabetic() {
                continue;
            }
            let mut flipped = good.to_owned();
            let swapped = if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            flipped.replace_range(i..=i, &swapped.to_string());
            let r = parse_address("to", &flipped);
            assert!(
                r.as_ref().is_err_and(|e| e.contains("bad EIP-55 checksum")),
                "{flipped}: {r:?}"
            );
        }
    }

    #[test]
    fn refuses_malformed_addresses() {
        assert_eq!(
            parse_address("to", ""),
            Err(
                "field 'to' is required: an empty address is never taken as the zero address"
                    .into()
            )
        );
        assert_eq!(
            parse_address("to", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe"),
            Err(r#"field 'to': "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe" is not an address (it has 39 hex digits, an address has 40)"#.into())
        );
        assert_eq!(
            parse_address("to", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed00"),
            Err(r#"field 'to': "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed00" is not an address (it has 42 hex digits, an address has 40)"#.into())
        );
        assert_eq!(
            parse_address("to", "0x"),
            Err(
                r#"field 'to': "0x" is not an address (it has 0 hex digits, an address has 40)"#
                    .into()
            )
        );
        assert_eq!(
            parse_address("to", "0xg2908400098527886e0f7030069857d2e4169ee7"),
            Err(r#"field 'to': "0xg2908400098527886e0f7030069857d2e4169ee7" is not an address ('g' is not a hex digit)"#.into())
        );
        assert_eq!(
            parse_address("to", "52908400098527886e0f7030069857d2e4169ee7"),
            Err(r#"field 'to': "52908400098527886e0f7030069857d2e4169ee7" is not an address (it must start with 0x)"#.into())
        );
        assert_eq!(
            parse_address("to", " 0x52908400098527886e0f7030069857d2e4169ee7"),
            Err(r#"field 'to': " 0x52908400098527886e0f7030069857d2e4169ee7" is not an address (it must start with 0x)"#.into())
        );
        assert!(parse_address("to", "0x52908400098527886e0f7030069857d2e4169ee7 ").is_err());
        assert!(parse_address("to", "0X52908400098527886e0f7030069857d2e4169ee7").is_err());
        assert!(parse_address("to", "0x+2908400098527886e0f7030069857d2e4169ee7").is_err());
        assert!(parse_address("to", "0xé908400098527886e0f7030069857d2e4169ee7").is_err());
    }

    #[test]
    fn zero_address_must_be_written_out() {
        assert_eq!(
            parse_address("to", "0x0000000000000000000000000000000000000000"),
            Ok(Address::ZERO)
        );
    }
}
