//! Just enough RLP to read a signed transaction's nonce (legacy, or typed: EIP-2718's type
//! byte, then chain id and nonce first in the list).

/// One item's (payload start, payload length, whether it is a list) at `at`.
fn item(b: &[u8], at: usize) -> Option<(usize, usize, bool)> {
    let h = *b.get(at)?;
    let long = |n: usize| -> Option<usize> {
        let bytes = b.get(at + 1..at + 1 + n)?;
        if n > 8 || bytes.first() == Some(&0) {
            return None;
        }
        Some(
            bytes
                .iter()
                .fold(0usize, |acc, x| (acc << 8) | usize::from(*x)),
        )
    };
    let (start, len, list) = match h {
        0x00..=0x7f => return Some((at, 1, false)),
        0x80..=0xb7 => (at + 1, usize::from(h - 0x80), false),
        0xb8..=0xbf => {
            let n = usize::from(h - 0xb7);
            (at + 1 + n, long(n)?, false)
        }
        0xc0..=0xf7 => (at + 1, usize::from(h - 0xc0), true),
        0xf8..=0xff => {
            let n = usize::from(h - 0xf7);
            (at + 1 + n, long(n)?, true)
        }
    };
    (start.checked_add(len)? <= b.len()).then_some((start, len, list))
}

fn integer(b: &[u8], at: usize) -> Option<(u64, usize)> {
    let (start, len, list) = item(b, at)?;
    if list || len > 8 || (len > 0 && b[start] == 0 && b[at] >= 0x80) {
        return None;
    }
    let v = b[start..start + len]
        .iter()
        .fold(0u64, |acc, x| (acc << 8) | u64::from(*x));
    Some((v, start + len))
}

/// The nonce of a signed transaction as the chain holds it.
pub fn tx_nonce(raw: &[u8]) -> Option<u64> {
    let (body, typed) = match raw.first()? {
        0x00..=0x7f => (&raw[1..], true),
        0xc0..=0xff => (raw, false),
        _ => return None,
    };
    let (start, _, list) = item(body, 0)?;
    if !list {
        return None;
    }
    let at = if typed {
        integer(body, start)?.1
    } else {
        start
    };
    Some(integer(body, at)?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nonce_of_typed_and_legacy_transactions() {
        // The plugin's EIP-1559 transfer at nonce 0 (chain 1), from a real sign-tx answer.
        let eip1559 = hex::decode("02f86701800185174876e8008252089422222222222222222222222222222222222222228080c080a0e792e5de170db3fcb418b3dd8748eecd3456c7461cb47795d7d6cafd7584a349a0060189e7155706d0ae137cab07b83f544e50c98cbb295898b133ba5bd7de0fcb").unwrap();
        assert_eq!(tx_nonce(&eip1559), Some(0));
        // EIP-155's example: nonce 9.
        let legacy = hex::decode("f86c098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a76400008025a028ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276a067cbe9d8997f761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83").unwrap();
        assert_eq!(tx_nonce(&legacy), Some(9));
        // A nonce of two bytes (0x0102) in a typed list.
        assert_eq!(tx_nonce(&[0x02, 0xc4, 0x01, 0x82, 0x01, 0x02]), Some(258));
        for bad in [
            &[][..],
            &[0x02],
            &[0x02, 0x80],
            &[0xc3, 0x82, 0x01],
            &[0x80],
        ] {
            assert_eq!(tx_nonce(bad), None, "{bad:?}");
        }
    }
}
