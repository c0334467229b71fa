//! The chain the Authority serves, through an Ethereum node's JSON-RPC: the only code that
//! speaks to a chain. Read-only: custody never sends a transaction (the rehearsal deploys its
//! test contract to its own throwaway anvil, through `localcluster::anvil`).

pub mod abi;
mod agree;
mod batch;
pub mod bytecode;
pub mod rlp;
mod url;

pub use agree::{ChainNonces, ContractSeen, Rpcs};
pub use batch::{BATCH, IN_FLIGHT};
pub use url::{ENV as RPC_URL_ENV, Gathered, RpcUrl, Sources, redacted};

use std::time::Duration;

use serde_json::{Value, json};

use crate::error::{Context as _, Error, Kind, Result};

/// How long one JSON-RPC call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// An Ethereum node's JSON-RPC endpoint. Its URL is shown only redacted (`RpcUrl`); reqwest's
/// errors are stripped of it.
#[derive(Clone)]
pub struct Rpc {
    url: RpcUrl,
    http: reqwest::Client,
}

impl Rpc {
    /// `url` is https://, or http:// to a loopback address (else exit 2).
    pub fn new(url: &str) -> Result<Rpc> {
        Rpc::from_url(RpcUrl::parse(url, "the RPC URL")?)
    }

    /// A client for `url`: no redirect is followed (it could lead to plain http elsewhere), and
    /// a loopback http:// URL goes through no proxy, with localhost resolved to 127.0.0.1 here.
    pub fn from_url(url: RpcUrl) -> Result<Rpc> {
        let mut builder = reqwest::Client::builder()
            .tls_backend_rustls()
            .timeout(CALL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("custody/", env!("CARGO_PKG_VERSION")));
        if url.is_loopback_http() {
            builder = builder
                .no_proxy()
                .resolve("localhost", std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        }
        let http = builder
            .build()
            .with_kind(Kind::Internal, "building the JSON-RPC client")?;
        Ok(Rpc { url, http })
    }

    /// The URL; it displays redacted.
    pub fn url(&self) -> &RpcUrl {
        &self.url
    }

    /// Any call, for the rehearsal's own throwaway chain (`localcluster::anvil`).
    pub(crate) async fn raw_call(&self, method: &str, params: Value) -> Result<Value> {
        self.call(method, params).await
    }

    /// `body` posted to the node and its answer as JSON; `doing` says what for. reqwest's errors
    /// name the full URL: they are kept without it.
    async fn post(&self, body: &Value, doing: String) -> Result<Value> {
        self.http
            .post(self.url.request_url()?)
            .json(body)
            .send()
            .await
            .map_err(reqwest::Error::without_url)
            .with_kind(
                Kind::Precondition,
                format!("{doing}: the node does not answer"),
            )?
            .error_for_status()
            .map_err(reqwest::Error::without_url)
            .with_kind(Kind::Precondition, doing.clone())?
            .json()
            .await
            .map_err(reqwest::Error::without_url)
            .context(format!("{doing}: the answer is not JSON"))
    }

    /// One call: its `result`, or the node's error. reqwest's errors name the full URL: they
    /// are kept without it.
    async fn call(&self, method: &str, params: Value) -> Result<Value> {
        let doing = || format!("{method} at {}", self.url);
        let answer = self
            .post(
                &json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params }),
                doing(),
            )
            .await?;
        if let Some(e) = answer.get("error") {
            return Err(Error::failed(format!(
                "{}: the node answered an error: {}",
                doing(),
                crate::ui::escape(&e.to_string())
            )));
        }
        answer
            .get("result")
            .cloned()
            .ok_or_else(|| Error::failed(format!("{}: the answer has no result", doing())))
    }

    /// `eth_chainId`.
    pub async fn chain_id(&self) -> Result<u64> {
        let v = self.call("eth_chainId", json!([])).await?;
        quantity(&v).map_err(|e| e.doing("eth_chainId"))
    }

    /// `eth_getTransactionCount ADDRESS pending`: the next nonce the chain expects from
    /// `address`, counting the transactions in its pool.
    pub async fn pending_nonce(&self, address: &str) -> Result<u64> {
        let v = self
            .call("eth_getTransactionCount", json!([address, "pending"]))
            .await?;
        quantity(&v).map_err(|e| e.doing(format!("eth_getTransactionCount {address} pending")))
    }
}

impl Rpc {
    /// `eth_getTransactionCount ADDRESS latest`: the transactions from `address` mined so far.
    pub async fn mined_nonce(&self, address: &str) -> Result<u64> {
        let v = self
            .call("eth_getTransactionCount", json!([address, "latest"]))
            .await?;
        quantity(&v).map_err(|e| e.doing(format!("eth_getTransactionCount {address} latest")))
    }

    /// `eth_getBalance ADDRESS BLOCK`, in wei (decimal).
    pub async fn balance_at(&self, address: &str, block: u64) -> Result<String> {
        let v = self
            .call("eth_getBalance", json!([address, format!("{block:#x}")]))
            .await?;
        let digits = v
            .as_str()
            .and_then(|s| s.strip_prefix("0x"))
            .filter(|d| !d.is_empty() && d.len() <= 32)
            .and_then(|d| u128::from_str_radix(d, 16).ok())
            .ok_or_else(|| {
                Error::failed(format!(
                    "eth_getBalance {address}: {} is not a balance",
                    crate::ui::escape(&v.to_string())
                ))
            })?;
        Ok(digits.to_string())
    }

    /// `eth_blockNumber`.
    pub async fn block_number(&self) -> Result<u64> {
        let v = self.call("eth_blockNumber", json!([])).await?;
        quantity(&v).map_err(|e| e.doing("eth_blockNumber"))
    }

    /// `eth_getCode ADDRESS BLOCK`: the contract's code (empty where there is none).
    pub async fn code(&self, address: &str, block: u64) -> Result<Vec<u8>> {
        let v = self
            .call("eth_getCode", json!([address, format!("{block:#x}")]))
            .await?;
        data(&v).map_err(|e| e.doing(format!("eth_getCode {address}")))
    }

    /// `eth_getBlockByNumber BLOCK`: the block's hash.
    pub async fn block_hash(&self, block: u64) -> Result<String> {
        let v = self
            .call(
                "eth_getBlockByNumber",
                json!([format!("{block:#x}"), false]),
            )
            .await?;
        let hash =
            data(&v["hash"]).map_err(|e| e.doing(format!("eth_getBlockByNumber {block}")))?;
        if hash.len() != 32 {
            return Err(Error::failed(format!(
                "eth_getBlockByNumber {block}: no block hash in the answer"
            )));
        }
        Ok(format!("0x{}", hex::encode(hash)))
    }

    /// `eth_getTransactionCount ADDRESS BLOCK`: the transactions from `address` mined up to
    /// `block`.
    pub async fn nonce_at(&self, address: &str, block: u64) -> Result<u64> {
        let v = self
            .call(
                "eth_getTransactionCount",
                json!([address, format!("{block:#x}")]),
            )
            .await?;
        quantity(&v).map_err(|e| e.doing(format!("eth_getTransactionCount {address} {block}")))
    }

    /// `eth_call` of a function without arguments at `block`: the raw return data.
    pub async fn call_view(&self, to: &str, signature: &str, block: u64) -> Result<Vec<u8>> {
        let input = format!("0x{}", hex::encode(selector(signature)));
        let v = self
            .call(
                "eth_call",
                json!([{ "to": to, "data": input }, format!("{block:#x}")]),
            )
            .await?;
        data(&v).map_err(|e| e.doing(format!("eth_call {signature} on {to}")))
    }
}

/// Where a signer's next nonce stands against the chain's pending nonce for the same account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The signer would sign the nonce the chain expects next.
    Even,
    /// The signer would sign a nonce the chain already has (mined or pending): by how many.
    Behind(u64),
    /// The signer signed transactions the chain has not seen: how many.
    Ahead(u64),
}

pub fn standing(signer_next: u64, chain_pending: u64) -> Standing {
    match signer_next.cmp(&chain_pending) {
        std::cmp::Ordering::Equal => Standing::Even,
        std::cmp::Ordering::Less => Standing::Behind(chain_pending - signer_next),
        std::cmp::Ordering::Greater => Standing::Ahead(signer_next - chain_pending),
    }
}

/// The 4-byte selector of a function signature such as `authority()`.
pub fn selector(signature: &str) -> [u8; 4] {
    let hash = keccak256(signature.as_bytes());
    [hash[0], hash[1], hash[2], hash[3]]
}

/// Keccak-256, Ethereum's hash (a contract's code hash, a selector).
pub fn keccak256(bytes: &[u8]) -> [u8; 32] {
    use sha3::Digest as _;
    sha3::Keccak256::digest(bytes).into()
}

/// An ABI-encoded address (one 32-byte word, 12 zero bytes then 20): its checksummed text.
pub fn abi_address(word: &[u8]) -> Option<String> {
    if word.len() != 32 || word[..12].iter().any(|b| *b != 0) {
        return None;
    }
    Some(checksum(&word[12..]))
}

/// EIP-55: an address with the case of each hex letter set by its hash.
pub fn checksum(address: &[u8]) -> String {
    let lower = hex::encode(address);
    let hash = keccak256(lower.as_bytes());
    let mut out = String::from("0x");
    for (i, c) in lower.chars().enumerate() {
        let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
        out.push(if c.is_ascii_alphabetic() && nibble >= 8 {
            c.to_ascii_uppercase()
        } else {
            c
        });
    }
    out
}

/// A JSON-RPC data value: "0x" and an even number of hex digits.
fn data(v: &Value) -> Result<Vec<u8>> {
    let bad = || {
        Error::failed(format!(
            "{} is not hex data",
            crate::ui::escape(&v.to_string())
        ))
    };
    let digits = v
        .as_str()
        .and_then(|s| s.strip_prefix("0x"))
        .ok_or_else(bad)?;
    hex::decode(digits).map_err(|_| bad())
}

/// A JSON-RPC quantity: "0x" and hex digits without leading zeros, at most 64 bits here.
fn quantity(v: &Value) -> Result<u64> {
    let bad = || {
        Error::failed(format!(
            "{} is not a quantity",
            crate::ui::escape(&v.to_string())
        ))
    };
    let digits = v
        .as_str()
        .and_then(|s| s.strip_prefix("0x"))
        .ok_or_else(bad)?;
    if digits.is_empty() || digits.len() > 16 || (digits.len() > 1 && digits.starts_with('0')) {
        return Err(bad());
    }
    u64::from_str_radix(digits, 16).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_strict() {
        assert_eq!(quantity(&json!("0x0")).unwrap(), 0);
        assert_eq!(quantity(&json!("0x7a69")).unwrap(), 31337);
        assert_eq!(quantity(&json!("0xffffffffffffffff")).unwrap(), u64::MAX);
        for bad in [
            json!("0x"),
            json!("7a69"),
            json!("0x07"),
            json!(5),
            json!("0x1ffffffffffffffff"),
            json!("0xzz"),
        ] {
            assert!(quantity(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn selectors_and_checksums_are_ethereum_s() {
        assert_eq!(hex::encode(selector("submitBlock(bytes32)")), "baa47694");
        assert_eq!(hex::encode(selector("authority()")), "bf7e214f");
        // EIP-55's own example.
        let a = hex::decode("5aaeb6053f3e94c9b9a09f33669435e7ef1beaed").unwrap();
        assert_eq!(checksum(&a), "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed");
        let mut word = vec![0u8; 12];
        word.extend_from_slice(&a);
        assert_eq!(abi_address(&word).unwrap(), checksum(&a));
        word[0] = 1;
        assert!(abi_address(&word).is_none());
        assert!(abi_address(&word[..31]).is_none());
    }

    #[test]
    fn a_signer_behind_the_chain_is_told_from_one_ahead() {
        assert_eq!(standing(5, 5), Standing::Even);
        assert_eq!(standing(3, 5), Standing::Behind(2));
        assert_eq!(standing(7, 5), Standing::Ahead(2));
    }

    #[test]
    fn only_http_urls() {
        assert!(Rpc::new("http://127.0.0.1:8545").is_ok());
        assert_eq!(
            Rpc::new("file:///etc/passwd")
                .err()
                .unwrap()
                .kind
                .exit_code(),
            2
        );
        assert_eq!(Rpc::new("not a url").err().unwrap().kind.exit_code(), 2);
    }
}
