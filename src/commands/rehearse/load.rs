//! The load the rehearsal runs through the balancer while it cuts over: reads of the Authority
//! with its reader token, reads of `sys/health` (only an active node answers 200: a standby the
//! balancer sends one to answers 429), and a block submitter: `submitBlock` signed with the
//! signer token through the balancer and broadcast to the rehearsal's chain, one block after
//! another, until told to stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;
use crate::localcluster::anvil::send_raw_via;
use crate::vault::{Addr, HaRole};

/// The two load tasks, running.
pub(super) struct Load {
    stop: Arc<AtomicBool>,
    reads: tokio::task::JoinHandle<(u64, u64)>,
    health: tokio::task::JoinHandle<(u64, Vec<String>)>,
    signatures: tokio::task::JoinHandle<Submitted>,
}

/// What the block submitter saw.
#[derive(Default)]
struct Submitted {
    nonces: Vec<u64>,
    frozen: u64,
    failed: u64,
    /// When each block was mined (since the load began).
    mined_at: Vec<Duration>,
    /// Transactions the chain refused, and why.
    refused: Vec<String>,
}

/// What the load saw.
pub(super) struct LoadOutcome {
    pub reads_ok: u64,
    pub reads_failed: u64,
    pub health_ok: u64,
    /// Each `sys/health` read through the balancer that did not reach an active node, and why.
    pub health_failed: Vec<String>,
    /// The nonces signed, in order.
    pub nonces: Vec<u64>,
    /// Signatures answered "frozen" (retryable) during the pause.
    pub frozen: u64,
    pub sign_failed: u64,
    /// When each block was mined, since the load began.
    pub mined_at: Vec<Duration>,
    /// Transactions the chain refused, and why.
    pub chain_refused: Vec<String>,
}

impl Load {
    pub(super) fn start(
        through: &Addr,
        reader: Vault,
        signer: Vault,
        contract: &str,
        chain: crate::chain::Rpc,
    ) -> Load {
        let began = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let reads = {
            let (stop, a) = (stop.clone(), through.clone());
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0u64, 0u64);
                while !stop.load(Ordering::SeqCst) {
                    match reader.signer(MOUNT).account(&a, AUTHORITY).await {
                        Ok(_) => ok += 1,
                        Err(_) => failed += 1,
                    }
                }
                (ok, failed)
            })
        };
        let health = {
            let (stop, a) = (stop.clone(), through.clone());
            let anyone = Vault::new(None, None).expect("a client without a CA file");
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0u64, Vec::new());
                while !stop.load(Ordering::SeqCst) {
                    match anyone.health(&a).await {
                        Ok((HaRole::Active, _)) => ok += 1,
                        Ok((role, _)) => failed.push(format!("answered as {role:?}")),
                        Err(e) => failed.push(e.to_string()),
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                (ok, failed)
            })
        };
        let signatures = {
            let (stop, a, contract) = (stop.clone(), through.clone(), contract.to_owned());
            tokio::spawn(async move {
                let mut seen = Submitted::default();
                while !stop.load(Ordering::SeqCst) {
                    let root = format!("{:064x}", seen.nonces.len() + 1);
                    let body = submit_block(&contract, &format!("0xbaa47694{root}"));
                    match signer
                        .signer(MOUNT)
                        .sign(&a, AUTHORITY, Signing::Tx, &body)
                        .await
                    {
                        Ok(r) => {
                            seen.nonces.push(r["nonce"].as_u64().unwrap_or(u64::MAX));
                            match send_raw_via(&chain, &r["signed_tx"]).await {
                                Ok(_) => seen.mined_at.push(began.elapsed()),
                                Err(e) => seen.refused.push(e.to_string()),
                            }
                        }
                        Err(e) if e.message_contains("frozen") => {
                            seen.frozen += 1;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Err(_) => seen.failed += 1,
                    }
                }
                seen
            })
        };
        Load {
            stop,
            reads,
            health,
            signatures,
        }
    }

    pub(super) async fn stop(self) -> Result<LoadOutcome> {
        self.stop.store(true, Ordering::SeqCst);
        let (reads_ok, reads_failed) = self
            .reads
            .await
            .with_kind(Kind::Internal, "the reads' load task")?;
        let (health_ok, health_failed) = self
            .health
            .await
            .with_kind(Kind::Internal, "the health reads' load task")?;
        let submitted = self
            .signatures
            .await
            .with_kind(Kind::Internal, "the block submitter's task")?;
        Ok(LoadOutcome {
            reads_ok,
            reads_failed,
            health_ok,
            health_failed,
            nonces: submitted.nonces,
            frozen: submitted.frozen,
            sign_failed: submitted.failed,
            mined_at: submitted.mined_at,
            chain_refused: submitted.refused,
        })
    }
}

impl LoadOutcome {
    /// The longest time between two blocks mined one after the other.
    pub(super) fn longest_gap(&self) -> Duration {
        self.mined_at
            .windows(2)
            .map(|w| w[1].saturating_sub(w[0]))
            .max()
            .unwrap_or_default()
    }

    /// No read or signature failed, and the nonces run consecutively from the load's first
    /// signature (the Authority signed before it began): none twice, no gap.
    pub(super) fn verdict(&self) -> Result<()> {
        if !self.health_failed.is_empty() {
            return Err(Error::verification(format!(
                "{} sys/health reads through the balancer did not reach an active node: {}",
                self.health_failed.len(),
                self.health_failed.join("; ")
            )));
        }
        if !self.chain_refused.is_empty() {
            return Err(Error::verification(format!(
                "the chain refused {} of the submitted blocks: {}",
                self.chain_refused.len(),
                self.chain_refused.join("; ")
            )));
        }
        if self.reads_failed > 0 || self.sign_failed > 0 {
            return Err(Error::verification(format!(
                "under the cutover {} reads and {} signatures failed",
                self.reads_failed, self.sign_failed
            )));
        }
        let mut nonces = self.nonces.clone();
        nonces.sort_unstable();
        if let Some(&first) = nonces.first()
            && nonces != (first..first + nonces.len() as u64).collect::<Vec<_>>()
        {
            return Err(Error::verification(format!(
                "the nonces signed under load repeat or leave a gap: {nonces:?}"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(nonces: &[u64], reads_failed: u64) -> LoadOutcome {
        LoadOutcome {
            reads_ok: 10,
            reads_failed,
            health_ok: 5,
            health_failed: Vec::new(),
            mined_at: Vec::new(),
            chain_refused: Vec::new(),
            nonces: nonces.to_vec(),
            frozen: 0,
            sign_failed: 0,
        }
    }

    #[test]
    fn the_verdict_refuses_a_repeat_a_gap_and_a_failed_read() {
        assert!(outcome(&[7, 5, 6], 0).verdict().is_ok());
        assert!(outcome(&[], 0).verdict().is_ok());
        let repeat = outcome(&[5, 6, 6], 0).verdict().unwrap_err();
        assert!(repeat.message.contains("repeat or leave a gap"), "{repeat}");
        assert!(outcome(&[5, 7], 0).verdict().is_err());
        let read = outcome(&[5], 1).verdict().unwrap_err();
        assert!(read.message.contains("1 reads"), "{read}");
        assert_eq!(read.kind.exit_code(), 3);
        let mut standby = outcome(&[5], 0);
        standby.health_failed.push("answered as Standby".into());
        let e = standby.verdict().unwrap_err();
        assert!(e.message.contains("did not reach an active node"), "{e}");
    }
}
