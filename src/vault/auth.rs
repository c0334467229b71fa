//! Tokens and ACL policies: the few `auth/token/*` and `sys/policies/acl/*` calls custody makes.

use reqwest::Method;
use serde_json::{Value, json};

use super::addr::Addr;
use super::client::{NodeError, NodeResult, Request, Vault};
use crate::secret::SecretString;

/// A response-wrapped answer: the single-use wrapping token and what may be recorded of it.
pub struct WrapInfo {
    pub token: SecretString,
    pub accessor: String,
    pub ttl: u64,
    pub creation_path: String,
}

/// An orphan token limited to `policies` (no default policy), periodic when `period` is given.
pub struct OrphanToken<'a> {
    pub policies: &'a [String],
    pub period: Option<&'a str>,
    pub display_name: &'a str,
}

impl OrphanToken<'_> {
    fn body(&self) -> Value {
        let mut body = json!({
            "policies": self.policies,
            "no_default_policy": true,
            "display_name": self.display_name,
        });
        if let Some(period) = self.period {
            body["period"] = json!(period);
        }
        body
    }
}

impl Vault {
    /// Writes (or replaces) the ACL policy `name`.
    pub async fn put_policy(&self, addr: &Addr, name: &str, text: &str) -> NodeResult<()> {
        self.json(
            Method::PUT,
            addr,
            &format!("sys/policies/acl/{name}"),
            Some(&json!({ "policy": text })),
            None,
        )
        .await
        .map(|_| ())
    }

    /// Creates the token; its secret in zeroizing memory, and its accessor.
    pub async fn create_orphan_token(
        &self,
        addr: &Addr,
        token: &OrphanToken<'_>,
    ) -> NodeResult<(SecretString, String)> {
        self.create_token(addr, "auth/token/create-orphan", &token.body())
            .await
    }

    /// Creates the token response-wrapped for `wrap_ttl`; the wrapping token is read from wiped
    /// memory and kept in zeroizing memory.
    pub async fn create_orphan_token_wrapped(
        &self,
        addr: &Addr,
        token: &OrphanToken<'_>,
        wrap_ttl: &str,
    ) -> NodeResult<WrapInfo> {
        #[derive(serde::Deserialize)]
        struct Answer {
            wrap_info: Info,
        }
        #[derive(serde::Deserialize)]
        struct Info {
            token: String,
            accessor: String,
            ttl: u64,
            creation_path: String,
        }
        let body = serde_json::to_vec(&token.body()).map_err(NodeError::encoding)?;
        let req = Request::new(Method::POST, "auth/token/create-orphan")
            .body(Some(body.into()))
            .wrap_ttl(Some(wrap_ttl));
        let raw = self.call_secret(addr, req).await?;
        let answer: Answer = serde_json::from_slice(&raw)
            .map_err(|e| NodeError::unexpected("the server did not wrap the token", e))?;
        let info = answer.wrap_info;
        Ok(WrapInfo {
            token: SecretString::new(info.token),
            accessor: info.accessor,
            ttl: info.ttl,
            creation_path: info.creation_path,
        })
    }

    /// Unwraps a response-wrapped token (the calling token is the single-use wrapping token):
    /// the token's secret, in zeroizing memory, and its accessor.
    pub async fn unwrap_token(&self, addr: &Addr) -> NodeResult<(SecretString, String)> {
        self.create_token(addr, "sys/wrapping/unwrap", &json!({}))
            .await
    }

    /// The calling token's own view of itself.
    pub async fn lookup_self(&self, addr: &Addr) -> NodeResult<Value> {
        self.get(addr, "auth/token/lookup-self").await
    }

    /// Revokes the calling token.
    pub async fn revoke_self(&self, addr: &Addr) -> NodeResult<()> {
        self.json(Method::POST, addr, "auth/token/revoke-self", None, None)
            .await
            .map(|_| ())
    }
}
