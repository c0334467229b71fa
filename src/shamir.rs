//! Vault's unseal shares: `y… ‖ x`, the Shamir index (x, never 0) in the last byte, over
//! GF(2^8). custody never combines shares (the server does); it checks their form before any
//! is sent, so a typo or a share given twice is caught without touching the cluster.

use base64::Engine as _;
use zeroize::Zeroizing;

use crate::secret::SecretString;

/// The length of a share of Vault's 32-byte unseal key: 32 bytes and the index.
pub const SHARE_LEN: usize = 33;

/// A share that passed the checks, held as the hex text the server takes.
#[derive(Debug)]
pub struct Share {
    pub text: SecretString,
    pub index: u8,
    /// Who gave it, for people ("holder 6811C6…", "stdin line 2").
    pub label: String,
}

/// Decodes a share typed or piped by a holder (hex as `gpg --decrypt` prints it, or base64).
pub fn parse_share(raw: &SecretString, label: &str) -> Result<Share, String> {
    let s = raw.expose().trim();
    if s.is_empty() {
        return Err(format!("{label}: the share is empty"));
    }
    let bytes: Zeroizing<Vec<u8>> = if s.len() == SHARE_LEN * 2
        && s.bytes().all(|b| b.is_ascii_hexdigit())
    {
        Zeroizing::new(hex::decode(s).map_err(|_| format!("{label}: not valid hex"))?)
    } else {
        match base64::engine::general_purpose::STANDARD.decode(s) {
            Ok(b) => Zeroizing::new(b),
            Err(_) => {
                return Err(format!(
                    "{label}: not a share: expected {} hex digits (as `gpg --decrypt` prints it) or base64; \
                     got {} characters",
                    SHARE_LEN * 2,
                    s.chars().count()
                ));
            }
        }
    };
    if bytes.len() != SHARE_LEN {
        return Err(format!(
            "{label}: a share is {SHARE_LEN} bytes; this one decodes to {} (truncated or not a share?)",
            bytes.len()
        ));
    }
    let index = bytes[SHARE_LEN - 1];
    if index == 0 {
        return Err(format!(
            "{label}: the share's index byte is 0, which no real share has"
        ));
    }
    Ok(Share {
        text: SecretString::new(hex::encode(&bytes[..])),
        index,
        label: label.to_owned(),
    })
}

/// Refuses a set of shares holding the same share twice, or two with the same index.
pub fn check_distinct(shares: &[Share]) -> Result<(), String> {
    for (i, a) in shares.iter().enumerate() {
        for b in &shares[..i] {
            if a.text.expose() == b.text.expose() {
                return Err(format!(
                    "{} and {} are the same share, given twice",
                    b.label, a.label
                ));
            }
            if a.index == b.index {
                return Err(format!(
                    "{} and {} have the same Shamir index ({}): they cannot both be shares of one cluster",
                    b.label, a.label, a.index
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(hexstr: &str) -> SecretString {
        SecretString::new(hexstr.to_owned())
    }

    #[test]
    fn hex_and_base64_accepted() {
        let h = format!("{}07", "ab".repeat(32));
        let s = parse_share(&share(&h), "a").unwrap();
        assert_eq!(s.index, 7);
        let b = base64::engine::general_purpose::STANDARD.encode(hex::decode(&h).unwrap());
        assert_eq!(parse_share(&share(&b), "b").unwrap().text.expose(), h);
        assert_eq!(
            parse_share(&share(&format!("  {h}\n")), "c").unwrap().index,
            7
        );
    }

    #[test]
    fn malformed_refused() {
        assert!(parse_share(&share(""), "x").unwrap_err().contains("empty"));
        assert!(
            parse_share(&share("zz"), "x")
                .unwrap_err()
                .contains("not a share")
        );
        assert!(
            parse_share(&share(&"ab".repeat(20)), "x")
                .unwrap_err()
                .contains("33 bytes")
        );
        assert!(
            parse_share(&share(&format!("{}00", "ab".repeat(32))), "x")
                .unwrap_err()
                .contains("index")
        );
    }

    #[test]
    fn duplicates_refused() {
        let a = parse_share(&share(&format!("{}01", "ab".repeat(32))), "a").unwrap();
        let b = parse_share(&share(&format!("{}01", "ab".repeat(32))), "b").unwrap();
        let c = parse_share(&share(&format!("{}01", "cd".repeat(32))), "c").unwrap();
        let d = parse_share(&share(&format!("{}02", "cd".repeat(32))), "d").unwrap();
        assert!(check_distinct(&[a, b]).unwrap_err().contains("twice"));
        let a = parse_share(&share(&format!("{}01", "ab".repeat(32))), "a").unwrap();
        assert!(
            check_distinct(&[a, c])
                .unwrap_err()
                .contains("same Shamir index")
        );
        let a = parse_share(&share(&format!("{}01", "ab".repeat(32))), "a").unwrap();
        assert!(check_distinct(&[a, d]).is_ok());
    }
}
