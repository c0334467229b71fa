//! Batched JSON-RPC (one HTTP request carries many calls, several requests in flight): the
//! transactions behind many hashes at once, so the reconcile's cost grows with the signatures
//! it checks, not with the chain's blocks.

use serde_json::{Value, json};

use super::{Rpc, data, quantity};
use crate::error::{Context as _, Error, Kind, Result};

/// Calls per HTTP request, and requests in flight at once.
pub const BATCH: usize = 250;
pub const IN_FLIGHT: usize = 4;

/// A transaction as the chain holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainTx {
    pub from: [u8; 20],
    pub nonce: u64,
    /// In a block (else pending in the node's pool).
    pub mined: bool,
}

impl Rpc {
    /// `method` with each of `params`, in order: each call's `result`, or its error's text.
    pub async fn batch(
        &self,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Vec<std::result::Result<Value, String>>> {
        let mut out = Vec::with_capacity(params.len());
        let mut chunks = params.chunks(BATCH).map(<[Value]>::to_vec).peekable();
        while chunks.peek().is_some() {
            let mut set = tokio::task::JoinSet::new();
            for (i, chunk) in chunks.by_ref().take(IN_FLIGHT).enumerate() {
                let rpc = self.clone();
                let method = method.to_owned();
                set.spawn(async move { (i, rpc.one_batch(&method, chunk).await) });
            }
            let mut done: Vec<Option<Result<Vec<_>>>> = (0..set.len()).map(|_| None).collect();
            while let Some(joined) = set.join_next().await {
                let (i, r) =
                    joined.map_err(|e| Error::internal(format!("a JSON-RPC batch's task: {e}")))?;
                done[i] = Some(r);
            }
            for r in done {
                out.extend(r.ok_or_else(|| Error::internal("a JSON-RPC batch gave no answer"))??);
            }
        }
        Ok(out)
    }

    async fn one_batch(
        &self,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Vec<std::result::Result<Value, String>>> {
        let doing = || format!("a batch of {} {method} at {}", params.len(), self.url);
        let body: Vec<Value> = params
            .iter()
            .enumerate()
            .map(|(i, p)| json!({ "jsonrpc": "2.0", "id": i, "method": method, "params": p }))
            .collect();
        let answer: Value = self
            .http
            .post(self.url.request_url()?)
            .json(&body)
            .send()
            .await
            .map_err(reqwest::Error::without_url)
            .with_kind(
                Kind::Precondition,
                format!("{}: the node does not answer", doing()),
            )?
            .error_for_status()
            .map_err(reqwest::Error::without_url)
            .with_kind(Kind::Precondition, doing())?
            .json()
            .await
            .map_err(reqwest::Error::without_url)
            .context(format!("{}: the answer is not JSON", doing()))?;
        let Value::Array(items) = answer else {
            return Err(Error::failed(format!(
                "{}: the node did not answer with a batch: {}",
                doing(),
                crate::ui::escape(crate::ui::prefix(&answer.to_string(), 300))
            )));
        };
        let mut out: Vec<Option<std::result::Result<Value, String>>> =
            (0..params.len()).map(|_| None).collect();
        for item in items {
            let slot = item["id"]
                .as_u64()
                .and_then(|i| out.get_mut(usize::try_from(i).ok()?));
            let Some(slot) = slot else {
                return Err(Error::failed(format!(
                    "{}: an answer with an id the batch did not ask",
                    doing()
                )));
            };
            *slot = Some(match item.get("error") {
                Some(e) => Err(crate::ui::escape(&e.to_string())),
                None => Ok(item.get("result").cloned().unwrap_or(Value::Null)),
            });
        }
        out.into_iter()
            .map(|r| r.ok_or_else(|| Error::failed(format!("{}: a call went unanswered", doing()))))
            .collect()
    }

    /// `eth_getTransactionByHash` of each hash: the transaction, or `None` where the node
    /// knows none.
    pub async fn transactions(&self, hashes: &[[u8; 32]]) -> Result<Vec<Option<ChainTx>>> {
        let params = hashes
            .iter()
            .map(|h| json!([format!("0x{}", hex::encode(h))]))
            .collect();
        let answers = self.batch("eth_getTransactionByHash", params).await?;
        answers
            .into_iter()
            .zip(hashes)
            .map(|(a, h)| {
                let what = || format!("eth_getTransactionByHash 0x{}", hex::encode(h));
                let v = a.map_err(|e| {
                    Error::failed(format!("{}: the node answered an error: {e}", what()))
                })?;
                if v.is_null() {
                    return Ok(None);
                }
                let from = data(&v["from"]).map_err(|e| e.doing(what()))?;
                let from = <[u8; 20]>::try_from(from)
                    .map_err(|_| Error::failed(format!("{}: no sender address", what())))?;
                Ok(Some(ChainTx {
                    from,
                    nonce: quantity(&v["nonce"]).map_err(|e| e.doing(what()))?,
                    mined: !v["blockNumber"].is_null(),
                }))
            })
            .collect()
    }

    /// `eth_getRawTransactionByHash` of each hash: the signed transaction as `0x…` hex, or
    /// `None` where the node knows none.
    pub async fn raw_transactions(&self, hashes: &[[u8; 32]]) -> Result<Vec<Option<String>>> {
        let params = hashes
            .iter()
            .map(|h| json!([format!("0x{}", hex::encode(h))]))
            .collect();
        let answers = self.batch("eth_getRawTransactionByHash", params).await?;
        answers
            .into_iter()
            .zip(hashes)
            .map(|(a, h)| {
                let what = || format!("eth_getRawTransactionByHash 0x{}", hex::encode(h));
                let v = a.map_err(|e| {
                    Error::failed(format!("{}: the node answered an error: {e}", what()))
                })?;
                if v.is_null() {
                    return Ok(None);
                }
                let bytes = data(&v).map_err(|e| e.doing(what()))?;
                Ok(Some(format!("0x{}", hex::encode(bytes))))
            })
            .collect()
    }

    /// The hash of the transaction `address` sent with each nonce, where the node answers
    /// Otterscan's `ots_getTransactionBySenderAndNonce` (anvil, Erigon, Reth); `None` for
    /// each where it does not.
    pub async fn hashes_by_sender_and_nonce(
        &self,
        address: &str,
        nonces: &[u64],
    ) -> Result<Vec<Option<[u8; 32]>>> {
        let params = nonces
            .iter()
            .map(|n| json!([address, format!("{n:#x}")]))
            .collect();
        let answers = self
            .batch("ots_getTransactionBySenderAndNonce", params)
            .await?;
        Ok(answers
            .into_iter()
            .map(|a| {
                a.ok()
                    .and_then(|v| data(&v).ok())
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
            })
            .collect())
    }
}
