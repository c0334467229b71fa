//! A signature as an audit line records it: the response entry of a successful
//! `MOUNT/accounts/NAME/sign-tx`, with the fields the signer mount logs in clear (`tx_hash`,
//! `nonce`, `from`, `chain_id`) and the HMAC of the one it does not (`signed_tx`, the raw
//! transaction), which only the device's salt can make.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::Text;

/// One signature from one audit line, kept small: memory grows with the signatures, not with
/// the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub nonce: u64,
    pub tx_hash: [u8; 32],
    pub from: [u8; 20],
    pub chain_id: u64,
    /// The HMAC the device logged for `signed_tx` (`None` when the mount logs it in clear).
    pub signed_tx_hmac: Option<[u8; 32]>,
}

/// What one audit line is, for the reconcile.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    /// Not a successful sign-tx response of the account (a request, another path, an error).
    Other,
    /// A sign-tx response of the account, and its request id.
    Signed { request_id: String, sig: Signature },
    /// A sign-tx response of the account that cannot be read, and why.
    Unreadable(String),
    /// Not an audit entry at all (not JSON, cut off, another shape), and why.
    Malformed(String),
}

/// The few fields of an audit entry the reconcile reads; serde skips the rest without keeping
/// it.
#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "type")]
    kind: Option<String>,
    request: Option<RawRequest>,
    response: Option<RawResponse>,
}

#[derive(Deserialize)]
struct RawRequest {
    id: Option<String>,
    path: Option<String>,
}

#[derive(Deserialize)]
struct RawResponse {
    data: Option<Map<String, Value>>,
}

/// `path`: `MOUNT/accounts/NAME/sign-tx`.
pub fn sign_path(mount: &str, account: &str) -> String {
    format!("{}/accounts/{account}/sign-tx", mount.trim_matches('/'))
}

/// What the line `text` is. Only a line that holds `sign_path` is read into fields; every
/// other is only checked to be JSON.
pub fn entry(text: Text<'_>, sign_path: &str) -> Entry {
    if memchr::memmem::find(text.bytes, sign_path.as_bytes()).is_none() {
        return match serde_json::from_slice::<serde::de::IgnoredAny>(text.bytes) {
            Ok(_) if text.bytes.first() == Some(&b'{') => Entry::Other,
            Ok(_) => Entry::Malformed("not a JSON object".into()),
            Err(e) => Entry::Malformed(text.not_json(&e)),
        };
    }
    let raw: Raw = match serde_json::from_slice(text.bytes) {
        Ok(r) => r,
        Err(e) if e.is_syntax() || e.is_eof() => return Entry::Malformed(text.not_json(&e)),
        Err(e) => return Entry::Malformed(format!("not an audit entry ({e})")),
    };
    let Some(request) = raw.request else {
        return Entry::Other;
    };
    if raw.kind.as_deref() != Some("response") || request.path.as_deref() != Some(sign_path) {
        return Entry::Other;
    }
    let Some(data) = raw.response.and_then(|r| r.data).map(Value::Object) else {
        return Entry::Other;
    };
    if data.get("error").is_some() || data.get("tx_hash").is_none() {
        return Entry::Other;
    }
    let Some(request_id) = request.id.filter(|s| !s.is_empty()) else {
        return Entry::Unreadable("a sign-tx response without a request id".into());
    };
    match signature(&data) {
        Ok(sig) => Entry::Signed { request_id, sig },
        Err(why) => Entry::Unreadable(why),
    }
}

const HMAC: &str = "hmac-sha256:";

fn hashed_hint(field: &str, v: &Value) -> String {
    if v.as_str().is_some_and(|s| s.starts_with(HMAC)) {
        format!(
            "its {field} is HMAC-ed: the mount does not log it in clear (custody plugin install \
             tunes it: audit_non_hmac_response_keys)"
        )
    } else {
        format!("its {field} is not readable")
    }
}

fn signature(data: &Value) -> Result<Signature, String> {
    let hex_field = |field: &str, len: usize| -> Result<Vec<u8>, String> {
        let v = &data[field];
        v.as_str()
            .and_then(|s| s.strip_prefix("0x"))
            .and_then(|d| hex::decode(d).ok())
            .filter(|b| b.len() == len)
            .ok_or_else(|| hashed_hint(field, v))
    };
    let number = |field: &str| -> Result<u64, String> {
        data[field]
            .as_u64()
            .ok_or_else(|| hashed_hint(field, &data[field]))
    };
    let tx_hash = hex_field("tx_hash", 32)?;
    let from = hex_field("from", 20)?;
    let signed_tx_hmac = match data["signed_tx"].as_str() {
        Some(s) if s.starts_with(HMAC) => Some(
            hex::decode(&s[HMAC.len()..])
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or("its signed_tx HMAC is not 32 bytes of hex")?,
        ),
        Some(_) => None,
        None => return Err("it has no signed_tx".into()),
    };
    Ok(Signature {
        nonce: number("nonce")?,
        chain_id: number("chain_id")?,
        tx_hash: tx_hash.try_into().expect("32 bytes"),
        from: from.try_into().expect("20 bytes"),
        signed_tx_hmac,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn response(data: Value) -> Value {
        json!({
            "type": "response",
            "request": { "id": "r1", "path": "ethereum/accounts/authority/sign-tx" },
            "response": { "data": data }
        })
    }

    fn of(v: &Value, path: &str) -> Entry {
        let text = v.to_string();
        entry(
            Text {
                bytes: text.as_bytes(),
                ended: true,
            },
            path,
        )
    }

    fn good() -> Value {
        json!({
            "chain_id": 1, "from": "0xa3a593e95ce8E04bbA8f2589f5A3A7076e06741D", "nonce": 7,
            "signed_tx": format!("hmac-sha256:{}", "ab".repeat(32)),
            "tx_hash": format!("0x{}", "cd".repeat(32)), "type": "hmac-sha256:00"
        })
    }

    #[test]
    fn a_sign_tx_response_is_a_signature() {
        let p = sign_path("ethereum", "authority");
        let Entry::Signed { request_id, sig } = of(&response(good()), &p) else {
            panic!("not read");
        };
        assert_eq!(request_id, "r1");
        assert_eq!(sig.nonce, 7);
        assert_eq!(sig.chain_id, 1);
        assert_eq!(sig.tx_hash, [0xcd; 32]);
        assert_eq!(sig.signed_tx_hmac, Some([0xab; 32]));
    }

    #[test]
    fn requests_other_paths_and_errors_are_not_signatures() {
        let p = sign_path("ethereum", "authority");
        let mut req = response(good());
        req["type"] = json!("request");
        assert_eq!(of(&req, &p), Entry::Other);
        assert_eq!(
            of(&response(good()), "ethereum/accounts/other/sign-tx"),
            Entry::Other
        );
        assert_eq!(of(&response(json!({ "error": "no" })), &p), Entry::Other);
    }

    #[test]
    fn a_line_that_is_not_an_entry_is_malformed() {
        let p = sign_path("ethereum", "authority");
        let cut = response(good()).to_string();
        let cut = &cut[..cut.len() / 2];
        let e = entry(
            Text {
                bytes: cut.as_bytes(),
                ended: false,
            },
            &p,
        );
        assert!(
            matches!(e, Entry::Malformed(ref w) if w.starts_with("truncated")),
            "{e:?}"
        );
        let e = entry(
            Text {
                bytes: b"[1]",
                ended: true,
            },
            &p,
        );
        assert_eq!(e, Entry::Malformed("not a JSON object".into()));
        let e = entry(
            Text {
                bytes: b"{\"x\":",
                ended: true,
            },
            &p,
        );
        assert!(
            matches!(e, Entry::Malformed(ref w) if w.starts_with("not JSON")),
            "{e:?}"
        );
    }

    #[test]
    fn a_hashed_nonce_says_the_mount_is_not_tuned() {
        let p = sign_path("ethereum", "authority");
        let mut d = good();
        d["nonce"] = json!("hmac-sha256:1234");
        let Entry::Unreadable(why) = of(&response(d), &p) else {
            panic!("read");
        };
        assert!(why.contains("nonce is HMAC-ed"), "{why}");
    }
}
