//! Several RPCs that must agree: the chain is not taken on one provider's word. Each is asked
//! the same question at the same block (the lowest latest block among them, which every one
//! has); any difference, or an RPC that does not answer, refuses (exit 3) naming what each said.
//!
//! Nonces: the mined count at that common block must be the same everywhere; the pending count
//! may differ (each provider sees its own mempool), and the highest is taken: a floor or a
//! check against the chain then counts every transaction any provider has seen. How high a
//! floor may go is the caller's bound (the rollback's `--max-nonce-jump`).

use std::fmt::Display;
use std::future::Future;

use super::{Rpc, RpcUrl, keccak256};
use crate::error::{Error, Result};

/// One or more RPCs of one chain.
#[derive(Clone)]
pub struct Rpcs {
    each: Vec<Rpc>,
}

/// A contract as every RPC showed it, at one block.
pub struct ContractSeen {
    pub block: u64,
    pub block_hash: String,
    pub code: Vec<u8>,
    /// `0x` and the keccak256 of the code.
    pub code_hash: String,
    /// What the getter returned (raw).
    pub returned: Vec<u8>,
}

/// An account's nonces as the RPCs showed them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainNonces {
    /// The common block the mined count is read at.
    pub block: u64,
    /// Transactions mined up to `block` (the same at every RPC).
    pub mined: u64,
    /// The highest pending count (`eth_getTransactionCount ADDRESS pending`) of any RPC.
    pub pending: u64,
    /// Each RPC's pending count, in order.
    pub pending_each: Vec<u64>,
}

impl Rpcs {
    /// At least one URL (else exit 2).
    pub fn new(urls: Vec<RpcUrl>) -> Result<Rpcs> {
        if urls.is_empty() {
            return Err(Error::usage("no RPC URL given"));
        }
        Ok(Rpcs {
            each: urls.into_iter().map(Rpc::from_url).collect::<Result<_>>()?,
        })
    }

    /// The one RPC given, for a command that reads through one (exit 2 when several are).
    pub fn one(&self, flag: &str) -> Result<Rpc> {
        match self.each.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(Error::usage(format!(
                "{flag}: give one RPC here ({} given)",
                self.each.len()
            ))),
        }
    }

    pub fn len(&self) -> usize {
        self.each.len()
    }

    pub fn is_empty(&self) -> bool {
        self.each.is_empty()
    }

    /// Each URL, redacted.
    pub fn shown(&self) -> Vec<String> {
        self.each.iter().map(|r| r.url().to_string()).collect()
    }

    /// Every URL, redacted, in one line.
    pub fn label(&self) -> String {
        self.shown().join(", ")
    }

    /// "RPC 2 (https://host/…)", or the URL alone when there is one.
    fn name(&self, i: usize) -> String {
        match self.each.len() {
            1 => self.each[0].url().to_string(),
            _ => format!("RPC {} ({})", i + 1, self.each[i].url()),
        }
    }

    /// `ask` of every RPC at once, in order. One RPC's error is returned as it is; with
    /// several, an RPC that fails is a failed agreement (exit 3) naming it.
    async fn ask<T, F, Fut>(&self, what: &str, ask: F) -> Result<Vec<T>>
    where
        F: Fn(Rpc) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let mut set = tokio::task::JoinSet::new();
        for (i, rpc) in self.each.iter().enumerate() {
            let asked = ask(rpc.clone());
            set.spawn(async move { (i, asked.await) });
        }
        let mut out: Vec<Option<Result<T>>> = (0..self.each.len()).map(|_| None).collect();
        while let Some(done) = set.join_next().await {
            let (i, r) = done.map_err(|e| Error::internal(format!("an RPC call's task: {e}")))?;
            out[i] = Some(r);
        }
        let several = self.each.len() > 1;
        out.into_iter()
            .enumerate()
            .map(|(i, r)| match r {
                Some(Ok(v)) => Ok(v),
                Some(Err(e)) if several => Err(Error::verification(format!(
                    "{} failed to answer {what}: every RPC must answer and agree",
                    self.name(i)
                ))
                .caused_by(e)),
                Some(Err(e)) => Err(e),
                None => Err(Error::internal("an RPC call's task gave no answer")),
            })
            .collect()
    }

    /// Every value the same, else exit 3 naming what each RPC said.
    fn agree<T: PartialEq + Display>(&self, what: &str, values: &[T]) -> Result<()> {
        match self.disagreement(what, values) {
            None => Ok(()),
            Some(d) => Err(Error::verification(format!("the RPCs disagree on {d}"))),
        }
    }

    /// `None` when every value is the same, else what each RPC said of `what`.
    fn disagreement<T: PartialEq + Display>(&self, what: &str, values: &[T]) -> Option<String> {
        if values.iter().all(|v| v == &values[0]) {
            return None;
        }
        let said: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{} says {v}", self.name(i)))
            .collect();
        Some(format!("{what}: {}", said.join(", ")))
    }

    /// `eth_chainId`, the same at every RPC.
    pub async fn chain_id(&self) -> Result<u64> {
        let ids = self
            .ask("eth_chainId", |r| async move { r.chain_id().await })
            .await?;
        self.agree("the chain id", &ids)?;
        Ok(ids[0])
    }

    /// The chain id, the same at every RPC and `expected`, the one `mount`/ signs for (`None`:
    /// it signs for no chain yet); else exit 3.
    pub async fn expect_chain(&self, mount: &str, expected: Option<u64>) -> Result<u64> {
        let chain_id = self.chain_id().await?;
        if expected != Some(chain_id) {
            return Err(Error::verification(format!(
                "{} serves chain {chain_id}, but {mount}/ signs for chain {}",
                self.label(),
                expected.map_or("(none)".to_owned(), |c| c.to_string())
            )));
        }
        Ok(chain_id)
    }

    /// The lowest latest block among the RPCs: one every RPC has.
    pub async fn common_block(&self) -> Result<u64> {
        let blocks = self
            .ask("eth_blockNumber", |r| async move { r.block_number().await })
            .await?;
        Ok(blocks.into_iter().min().unwrap_or_default())
    }

    /// The block's hash, `contract`'s code and what its getter `signature` returns, at `block`,
    /// the same at every RPC (else exit 3).
    pub async fn contract_at(
        &self,
        contract: &str,
        signature: &str,
        block: u64,
    ) -> Result<ContractSeen> {
        let (to, getter) = (contract.to_owned(), signature.to_owned());
        let seen = self
            .ask("for the block, the code and the getter", move |r| {
                let (to, getter) = (to.clone(), getter.clone());
                async move {
                    let hash = r.block_hash(block).await?;
                    let code = r.code(&to, block).await?;
                    let returned = r.call_view(&to, &getter, block).await?;
                    Ok((hash, code, returned))
                }
            })
            .await?;
        let hashes: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
        let code_hashes: Vec<String> = seen
            .iter()
            .map(|s| format!("0x{}", hex::encode(keccak256(&s.1))))
            .collect();
        let returned: Vec<String> = seen
            .iter()
            .map(|s| format!("0x{}", hex::encode(&s.2)))
            .collect();
        let differ: Vec<String> = [
            self.disagreement(&format!("block {block}'s hash"), &hashes),
            self.disagreement(
                &format!("the keccak256 of the code at {contract}"),
                &code_hashes,
            ),
            self.disagreement(
                &format!("what {signature} of {contract} returns"),
                &returned,
            ),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !differ.is_empty() {
            return Err(Error::verification(format!(
                "the RPCs disagree at block {block} on {}",
                differ.join("; and on ")
            )));
        }
        let (block_hash, code, returned) = seen.into_iter().next().expect("at least one RPC");
        Ok(ContractSeen {
            block,
            block_hash,
            code,
            code_hash: code_hashes[0].clone(),
            returned,
        })
    }

    /// `address`'s nonces: mined up to the common block (the same everywhere, else exit 3) and
    /// the highest pending.
    pub async fn nonces(&self, address: &str) -> Result<ChainNonces> {
        let block = self.common_block().await?;
        let who = address.to_owned();
        let seen = self
            .ask("for the account's nonces", move |r| {
                let who = who.clone();
                async move {
                    let mined = r.nonce_at(&who, block).await?;
                    let pending = r.pending_nonce(&who).await?;
                    Ok((mined, pending))
                }
            })
            .await?;
        let mined: Vec<u64> = seen.iter().map(|s| s.0).collect();
        self.agree(
            &format!("the transactions {address} had mined by block {block}"),
            &mined,
        )?;
        let pending_each: Vec<u64> = seen.iter().map(|s| s.1).collect();
        Ok(ChainNonces {
            block,
            mined: mined[0],
            pending: pending_each.iter().copied().max().unwrap_or_default(),
            pending_each,
        })
    }

    /// The highest pending nonce of `address` among the RPCs (one call each, at once: for the
    /// checks made while signing is paused).
    pub async fn highest_pending(&self, address: &str) -> Result<u64> {
        let who = address.to_owned();
        let pending = self
            .ask("for the account's pending nonce", move |r| {
                let who = who.clone();
                async move { r.pending_nonce(&who).await }
            })
            .await?;
        Ok(pending.into_iter().max().unwrap_or_default())
    }

    /// `address`'s balance at `block`, in wei, the same at every RPC.
    pub async fn balance_at(&self, address: &str, block: u64) -> Result<String> {
        let who = address.to_owned();
        let balances = self
            .ask("for the account's balance", move |r| {
                let who = who.clone();
                async move { r.balance_at(&who, block).await }
            })
            .await?;
        self.agree(&format!("{address}'s balance at block {block}"), &balances)?;
        Ok(balances[0].clone())
    }
}
