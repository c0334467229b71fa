//! Root token generation by a quorum of unseal shares: the authenticated
//! `sys/generate-root-token/*` (OpenBao 2.6+) or the classic `sys/generate-root/*` (HashiCorp
//! Vault, older OpenBao). Shares reach the server only in zeroizing request bodies.

use reqwest::Method;

use super::addr::Addr;
use super::client::{NodeError, NodeResult, Request, Vault};
use crate::secret::SecretString;

/// Which root generation the server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `sys/generate-root-token/*`, authenticated (OpenBao 2.6+).
    Authenticated,
    /// `sys/generate-root/*`, unauthenticated (HashiCorp Vault, older OpenBao).
    Classic,
}

impl Family {
    pub fn base(self) -> &'static str {
        match self {
            Family::Authenticated => "sys/generate-root-token",
            Family::Classic => "sys/generate-root",
        }
    }

    fn path(self, leaf: &str) -> String {
        format!("{}/{leaf}", self.base())
    }
}

/// A root generation attempt as the server reports it (the two families differ only in
/// whether the fields sit under `data`). The one-time pad and the encoded token are wiped when
/// it is dropped, and never shown by `Debug`.
#[derive(Default, serde::Deserialize)]
pub struct Attempt {
    #[serde(default)]
    pub otp: String,
    #[serde(default)]
    pub started: bool,
    #[serde(default)]
    pub nonce: String,
    #[serde(default)]
    pub progress: u32,
    #[serde(default)]
    pub required: u32,
    #[serde(default)]
    pub complete: bool,
    #[serde(default)]
    pub pgp_fingerprint: String,
    #[serde(default)]
    pub encoded_token: String,
    #[serde(default)]
    pub encoded_root_token: String,
}

impl Attempt {
    /// The encoded root token of a complete attempt, whichever field the server used.
    pub fn encoded(&self) -> &str {
        if self.encoded_token.is_empty() {
            &self.encoded_root_token
        } else {
            &self.encoded_token
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.otp.zeroize();
        self.encoded_token.zeroize();
        self.encoded_root_token.zeroize();
    }
}

impl std::fmt::Debug for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempt")
            .field("started", &self.started)
            .field("nonce", &self.nonce)
            .field("progress", &self.progress)
            .field("required", &self.required)
            .field("complete", &self.complete)
            .field("pgp_fingerprint", &self.pgp_fingerprint)
            .finish_non_exhaustive()
    }
}

/// What an attempt's answer is called in errors. It sits under `data` (authenticated family)
/// or at the top (classic): [`data_or_top`].
const ATTEMPT: &str = "the server's root generation status";

impl Vault {
    /// Which family the server offers: the authenticated one if it answers, else the classic.
    /// The classic family's own error is returned when neither answers.
    pub async fn root_generation_family(&self, addr: &Addr) -> NodeResult<Family> {
        match self.get(addr, &Family::Authenticated.path("attempt")).await {
            Ok(_) => return Ok(Family::Authenticated),
            Err(e) if e.is_unreachable() => return Err(e),
            Err(_) => {}
        }
        self.get(addr, &Family::Classic.path("attempt"))
            .await
            .map(|_| Family::Classic)
    }

    pub async fn root_generation_attempt(
        &self,
        addr: &Addr,
        family: Family,
    ) -> NodeResult<Attempt> {
        let path = family.path("attempt");
        let req = Request::new(Method::GET, &path);
        self.secret_answer(addr, req, ATTEMPT).await
    }

    /// Starts an attempt: the token is encrypted to `pgp_key` (base64 of the binary key) or,
    /// without one, XORed with a one-time pad the answer carries.
    pub async fn root_generation_start(
        &self,
        addr: &Addr,
        family: Family,
        pgp_key: Option<&str>,
    ) -> NodeResult<Attempt> {
        let body = match pgp_key {
            Some(key) => serde_json::json!({ "pgp_key": key }),
            None => serde_json::json!({}),
        };
        let body = serde_json::to_vec(&body).map_err(NodeError::encoding)?;
        let path = family.path("attempt");
        let req = Request::new(Method::PUT, &path).body(Some(body.into()));
        self.secret_answer(addr, req, ATTEMPT).await
    }

    pub async fn root_generation_cancel(&self, addr: &Addr, family: Family) -> NodeResult<()> {
        self.delete(addr, &family.path("attempt")).await.map(|_| ())
    }

    /// Gives one share to the attempt `nonce`.
    pub async fn root_generation_update(
        &self,
        addr: &Addr,
        family: Family,
        share: &SecretString,
        nonce: &str,
    ) -> NodeResult<Attempt> {
        let path = family.path("update");
        self.give_share(addr, Method::PUT, &path, share, nonce, ATTEMPT)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::client::data_or_top;
    use super::*;

    fn attempt_of(raw: &[u8]) -> NodeResult<Attempt> {
        data_or_top(raw, ATTEMPT)
    }

    #[test]
    fn reads_both_families_answers_and_never_shows_the_pad() {
        let authenticated = br#"{"request_id":"x","data":{"started":true,"nonce":"n1","progress":1,"required":3,"otp":"PAD-SECRET"}}"#;
        let classic = br#"{"started":true,"nonce":"n2","progress":2,"required":3,"complete":true,"encoded_root_token":"ENC"}"#;
        let a = attempt_of(authenticated).unwrap();
        assert_eq!((a.nonce.as_str(), a.progress, a.required), ("n1", 1, 3));
        assert!(!format!("{a:?}").contains("PAD-SECRET"), "{a:?}");
        let c = attempt_of(classic).unwrap();
        assert_eq!(
            (c.nonce.as_str(), c.complete, c.encoded()),
            ("n2", true, "ENC")
        );
        assert!(attempt_of(b"not json").is_err());
    }
}
