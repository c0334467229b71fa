//! Batched JSON-RPC (one HTTP request carries many calls, several requests in flight): the
//! receipts and raw transactions behind many hashes at once, so the reconcile's cost grows with the signatures
//! it checks, not with the chain's blocks.

use serde_json::{Value, json};

use super::{Rpc, data};
use crate::error::{Error, Result};

/// Calls per HTTP request, and requests in flight at once.
pub const BATCH: usize = 250;
pub const IN_FLIGHT: usize = 4;

impl Rpc {
    /// `method` with each of `params`, in order: each call's `result`, or its error's text.
    pub async fn batch(
        &self,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Vec<std::result::Result<Value, String>>> {
        self.batch_map(method, params, |_, a| Ok(a)).await
    }

    /// `method` with each of `params`, each answer turned by `convert` (given the call's
    /// index) as its batch arrives, so that only the converted values are kept; [`IN_FLIGHT`]
    /// batches of [`BATCH`] calls in flight, a new one sent as each is answered.
    pub async fn batch_map<T: Send + 'static>(
        &self,
        method: &str,
        params: Vec<Value>,
        convert: fn(usize, std::result::Result<Value, String>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let total = params.len();
        let batches = total.div_ceil(BATCH);
        let mut params = params.into_iter();
        let mut chunks =
            (0..batches).map(move |i| (i, params.by_ref().take(BATCH).collect::<Vec<Value>>()));
        let mut done: Vec<Option<Vec<T>>> = (0..batches).map(|_| None).collect();
        let mut set = tokio::task::JoinSet::new();
        let spawn = |set: &mut tokio::task::JoinSet<_>, (i, chunk): (usize, Vec<Value>)| {
            let rpc = self.clone();
            let method = method.to_owned();
            set.spawn(async move {
                let answers = rpc.one_batch(&method, chunk).await?;
                let converted = answers
                    .into_iter()
                    .enumerate()
                    .map(|(j, a)| convert(i * BATCH + j, a))
                    .collect::<Result<Vec<T>>>()?;
                Ok::<_, Error>((i, converted))
            });
        };
        for chunk in chunks.by_ref().take(IN_FLIGHT) {
            spawn(&mut set, chunk);
        }
        while let Some(joined) = set.join_next().await {
            let (i, converted) =
                joined.map_err(|e| Error::internal(format!("a JSON-RPC batch's task: {e}")))??;
            done[i] = Some(converted);
            if let Some(chunk) = chunks.next() {
                spawn(&mut set, chunk);
            }
        }
        let mut out = Vec::with_capacity(total);
        for d in done {
            out.extend(d.ok_or_else(|| Error::internal("a JSON-RPC batch gave no answer"))?);
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
        let answer = self.post(&Value::Array(body), doing()).await?;
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

    /// `eth_getTransactionReceipt` of each hash: the sender of the transaction mined under
    /// it, or `None` where none is mined (unknown, or pending).
    pub async fn mined_senders(&self, hashes: &[[u8; 32]]) -> Result<Vec<Option<[u8; 20]>>> {
        self.batch_map("eth_getTransactionReceipt", by_hash(hashes), |_, a| {
            let what = "eth_getTransactionReceipt";
            let v =
                a.map_err(|e| Error::failed(format!("{what}: the node answered an error: {e}")))?;
            if v.is_null() || v["blockNumber"].is_null() {
                return Ok(None);
            }
            let from = data(&v["from"]).map_err(|e| e.doing(what))?;
            Ok(Some(<[u8; 20]>::try_from(from).map_err(|_| {
                Error::failed(format!("{what}: no sender address"))
            })?))
        })
        .await
    }

    /// `eth_getRawTransactionByHash` of each hash: the signed transaction as `0x…` hex, or
    /// `None` where the node knows none.
    pub async fn raw_transactions(&self, hashes: &[[u8; 32]]) -> Result<Vec<Option<String>>> {
        self.batch_map("eth_getRawTransactionByHash", by_hash(hashes), |_, a| {
            let what = "eth_getRawTransactionByHash";
            let v =
                a.map_err(|e| Error::failed(format!("{what}: the node answered an error: {e}")))?;
            if v.is_null() {
                return Ok(None);
            }
            let bytes = data(&v).map_err(|e| e.doing(what))?;
            Ok(Some(format!("0x{}", hex::encode(bytes))))
        })
        .await
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
        self.batch_map("ots_getTransactionBySenderAndNonce", params, |_, a| {
            Ok(a.ok()
                .and_then(|v| data(&v).ok())
                .and_then(|b| <[u8; 32]>::try_from(b).ok()))
        })
        .await
    }
}

fn by_hash(hashes: &[[u8; 32]]) -> Vec<Value> {
    hashes
        .iter()
        .map(|h| json!([format!("0x{}", hex::encode(h))]))
        .collect()
}
