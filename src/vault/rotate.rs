//! Rotating the unseal shares to a new set of holders: OpenBao's authenticated
//! `sys/rotate/root/{init,update,verify}` (2.4+), or HashiCorp Vault's `sys/rekey/*` (whose
//! unauthenticated form OpenBao turned off in 2.5). Old shares reach the server only in
//! zeroizing request bodies; the new shares come back encrypted to their holders.

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::addr::Addr;
use super::client::{NodeError, NodeResult, Request, Vault};
use crate::secret::SecretString;

/// Which share rotation the server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RotationFamily {
    /// `sys/rotate/root/*`, authenticated (OpenBao 2.4+).
    RotateRoot,
    /// `sys/rekey/*` (HashiCorp Vault, older OpenBao).
    Rekey,
}

impl RotationFamily {
    pub fn base(self) -> &'static str {
        match self {
            RotationFamily::RotateRoot => "sys/rotate/root",
            RotationFamily::Rekey => "sys/rekey",
        }
    }

    fn path(self, leaf: &str) -> String {
        format!("{}/{leaf}", self.base())
    }
}

/// A rotation as the server reports it. `required` is how many OLD shares it takes; `t` and
/// `n` are the new threshold and share count. A complete update carries the new shares,
/// each PGP-encrypted to its holder (base64 of the binary message), wiped on drop.
#[derive(Default, Deserialize)]
pub struct Rotation {
    #[serde(default)]
    pub started: bool,
    #[serde(default)]
    pub nonce: String,
    #[serde(default)]
    pub t: u32,
    #[serde(default)]
    pub n: u32,
    #[serde(default)]
    pub progress: u32,
    #[serde(default)]
    pub required: u32,
    #[serde(default)]
    pub pgp_fingerprints: Option<Vec<String>>,
    #[serde(default)]
    pub backup: bool,
    #[serde(default)]
    pub verification_required: bool,
    #[serde(default)]
    pub verification_nonce: String,
    #[serde(default)]
    pub complete: bool,
    #[serde(default)]
    pub keys_base64: Vec<String>,
}

impl Rotation {
    /// The old holders are done; the new holders must prove their shares.
    pub fn awaiting_verification(&self) -> bool {
        self.started && !self.verification_nonce.is_empty()
    }
}

impl Drop for Rotation {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for k in &mut self.keys_base64 {
            k.zeroize();
        }
    }
}

impl std::fmt::Debug for Rotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rotation")
            .field("started", &self.started)
            .field("nonce", &self.nonce)
            .field("t", &self.t)
            .field("n", &self.n)
            .field("progress", &self.progress)
            .field("required", &self.required)
            .field("verification_nonce", &self.verification_nonce)
            .field("complete", &self.complete)
            .field("keys", &self.keys_base64.len())
            .finish_non_exhaustive()
    }
}

/// The new holders' proof of their shares.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct Verification {
    #[serde(default)]
    pub started: bool,
    #[serde(default)]
    pub nonce: String,
    #[serde(default)]
    pub t: u32,
    #[serde(default)]
    pub n: u32,
    #[serde(default)]
    pub progress: u32,
    #[serde(default)]
    pub complete: bool,
}

/// What a new rotation asks for: `pgp_keys` are base64 of each new holder's binary key, in
/// holder order.
#[derive(Debug, Serialize)]
pub struct RotationRequest {
    pub secret_shares: u32,
    pub secret_threshold: u32,
    pub pgp_keys: Vec<String>,
    pub backup: bool,
    pub require_verification: bool,
}

impl Vault {
    /// Which rotation the server offers: the authenticated one when its path exists (a 403
    /// without a token says it does), else the rekey family.
    pub async fn rotation_family(&self, addr: &Addr) -> NodeResult<RotationFamily> {
        match self
            .get(addr, &RotationFamily::RotateRoot.path("init"))
            .await
        {
            Ok(_) | Err(NodeError::Api { status: 403, .. }) => {
                return Ok(RotationFamily::RotateRoot);
            }
            Err(e) if e.is_unreachable() => return Err(e),
            Err(_) => {}
        }
        self.get(addr, &RotationFamily::Rekey.path("init"))
            .await
            .map(|_| RotationFamily::Rekey)
    }

    pub async fn rotation_status(
        &self,
        addr: &Addr,
        family: RotationFamily,
    ) -> NodeResult<Rotation> {
        let path = family.path("init");
        let req = Request::new(Method::GET, &path);
        self.secret_answer(addr, req, "the server's rotation status")
            .await
    }

    pub async fn rotation_start(
        &self,
        addr: &Addr,
        family: RotationFamily,
        req: &RotationRequest,
    ) -> NodeResult<Rotation> {
        let body = serde_json::to_vec(req).map_err(NodeError::encoding)?;
        let path = family.path("init");
        let req = Request::new(Method::POST, &path).body(Some(body.into()));
        self.secret_answer(addr, req, "the server's answer to the rotation's start")
            .await
    }

    /// Cancels the rotation in progress, whatever its stage; the old shares stay in force.
    pub async fn rotation_cancel(&self, addr: &Addr, family: RotationFamily) -> NodeResult<()> {
        self.delete(addr, &family.path("init")).await.map(|_| ())
    }

    /// Gives one old share to the rotation `nonce`; the last one returns the new shares.
    pub async fn rotation_update(
        &self,
        addr: &Addr,
        family: RotationFamily,
        share: &SecretString,
        nonce: &str,
    ) -> NodeResult<Rotation> {
        let path = family.path("update");
        self.give_share(
            addr,
            Method::POST,
            &path,
            share,
            nonce,
            "the server's answer to a rotation share",
        )
        .await
    }

    pub async fn verification_status(
        &self,
        addr: &Addr,
        family: RotationFamily,
    ) -> NodeResult<Verification> {
        let path = family.path("verify");
        let req = Request::new(Method::GET, &path);
        self.secret_answer(addr, req, "the server's verification status")
            .await
    }

    /// Gives one NEW share to the verification `nonce`; the last one puts the new shares in
    /// force.
    pub async fn verification_update(
        &self,
        addr: &Addr,
        family: RotationFamily,
        share: &SecretString,
        nonce: &str,
    ) -> NodeResult<Verification> {
        let path = family.path("verify");
        self.give_share(
            addr,
            Method::POST,
            &path,
            share,
            nonce,
            "the server's answer to a verification share",
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::client::data_or_top;
    use super::*;

    #[test]
    fn reads_both_families_and_never_shows_the_new_shares() {
        let rotate = br#"{"data":{"complete":true,"nonce":"n1","t":3,"n":5,"keys_base64":["SECRET-ONE"],"verification_nonce":"v1"}}"#;
        let rekey = br#"{"started":true,"nonce":"n2","t":2,"n":3,"progress":1,"required":3}"#;
        let r: Rotation = data_or_top(rotate, "x").unwrap();
        assert!(r.complete && !r.verification_nonce.is_empty());
        assert_eq!(r.keys_base64.len(), 1);
        assert!(!format!("{r:?}").contains("SECRET"), "{r:?}");
        let k: Rotation = data_or_top(rekey, "x").unwrap();
        assert_eq!((k.nonce.as_str(), k.progress, k.required), ("n2", 1, 3));
        assert!(!k.awaiting_verification());
    }
}
