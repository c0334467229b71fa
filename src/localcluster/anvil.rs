//! A throwaway chain for the rehearsal: anvil on a free loopback port, stopped by pid, and the
//! deployment of the test contract from one of its unlocked accounts. Only the rehearsal sends
//! anything to a chain, and only to this one.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::process;
use crate::chain::Rpc;
use crate::error::{Context as _, Error, Result};
use crate::poll::{Check, Stopped, wait_for};

/// The creation bytecode of `contracts/PlasmaAuthority.sol` (solc-js 0.8.28; `tests/bind.rs`
/// checks it is what solc makes of the source).
pub const PLASMA_AUTHORITY: &str = include_str!("../../contracts/PlasmaAuthority.bin");

pub struct LocalChain {
    child: Child,
    pub rpc: Rpc,
    /// The RPC's URL (loopback, no secret in it): for the ceremonies the rehearsal runs.
    pub url: String,
}

impl LocalChain {
    /// anvil on 127.0.0.1 for chain `chain_id`, once it answers; its output goes to `log`.
    pub async fn start(anvil: &Path, chain_id: u64, log: &Path) -> Result<LocalChain> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port for anvil")?
            .port();
        let mut cmd = Command::new(anvil);
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--chain-id", &chain_id.to_string()])
            .stdin(Stdio::null());
        let child = process::spawn_logged(&mut cmd, log)?;
        let url = format!("http://127.0.0.1:{port}");
        let chain = LocalChain {
            child,
            rpc: Rpc::new(&url)?,
            url,
        };
        let answered = wait_for(
            Duration::from_secs(30),
            Duration::from_millis(100),
            || async {
                Ok::<_, Error>(match chain.rpc.chain_id().await {
                    Ok(id) => Check::Ready(id),
                    Err(e) => Check::NotYet(e.to_string()),
                })
            },
        )
        .await;
        match answered {
            Ok(id) if id == chain_id => Ok(chain),
            Ok(id) => Err(Error::failed(format!(
                "anvil serves chain {id}, not {chain_id}"
            ))),
            Err(Stopped::Failed(e)) => Err(e),
            Err(Stopped::TimedOut(why)) => Err(Error::failed(format!(
                "anvil did not answer within 30 s ({why}); its log is {}",
                log.display()
            ))),
        }
    }

    /// Deploys the test contract naming `authority`, from anvil's first account: its address.
    pub async fn deploy_plasma_authority(&self, authority: &str) -> Result<String> {
        let arg = format!("{:0>64}", authority.trim_start_matches("0x").to_lowercase());
        let accounts = self.rpc.raw_call("eth_accounts", json!([])).await?;
        let from = accounts[0].clone();
        let hash = self
            .rpc
            .raw_call(
                "eth_sendTransaction",
                json!([{ "from": from, "data": format!("0x{}{arg}", PLASMA_AUTHORITY.trim()), "gas": "0x100000" }]),
            )
            .await?;
        let receipt = receipt(&self.rpc, &hash).await?;
        receipt["contractAddress"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| {
                Error::failed(format!(
                    "the deployment's receipt has no contract: {receipt}"
                ))
            })
    }

    /// Gives `address` 100 ether, for its gas.
    pub async fn fund(&self, address: &str) -> Result<()> {
        self.rpc
            .raw_call("anvil_setBalance", json!([address, "0x56BC75E2D63100000"]))
            .await
            .map(|_| ())
    }

    /// Broadcasts a signed transaction: its receipt, once mined with status 1.
    pub async fn send_raw(&self, signed: &Value) -> Result<Value> {
        send_raw_via(&self.rpc, signed).await
    }
}

/// Broadcasts a signed transaction through `rpc`: its receipt, once mined with status 1.
pub async fn send_raw_via(rpc: &Rpc, signed: &Value) -> Result<Value> {
    let hash = rpc
        .raw_call("eth_sendRawTransaction", json!([signed]))
        .await?;
    receipt(rpc, &hash).await
}

/// The receipt of transaction `hash`, once mined with status 1.
async fn receipt(rpc: &Rpc, hash: &Value) -> Result<Value> {
    let got = wait_for(
        Duration::from_secs(20),
        Duration::from_millis(10),
        || async {
            let r = rpc
                .raw_call("eth_getTransactionReceipt", json!([hash]))
                .await?;
            Ok::<_, Error>(if r.is_null() {
                Check::NotYet(format!("{hash} is not mined"))
            } else {
                Check::Ready(r)
            })
        },
    )
    .await;
    let receipt = match got {
        Ok(r) => r,
        Err(Stopped::Failed(e)) => return Err(e),
        Err(Stopped::TimedOut(why)) => return Err(Error::failed(why)),
    };
    if receipt["status"] != "0x1" {
        return Err(Error::failed(format!("{hash} failed: {receipt}")));
    }
    Ok(receipt)
}

impl Drop for LocalChain {
    fn drop(&mut self) {
        process::stop(&mut self.child, Duration::from_secs(5));
    }
}
