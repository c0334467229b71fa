//! Blue-green phase 2 in the rehearsal: HAProxy, the load through it, the cutover.

use super::load::Load;
use super::*;
use crate::localcluster::anvil::LocalChain;
use crate::localcluster::haproxy::{LbServer, LocalHaproxy};
use crate::vault::Addr;

/// Blue-green phase 2: HAProxy in front of blue and green, a short load of reads and signatures
/// through it, the cutover, and the load's verdict: no failed read, no nonce twice, no gap.
pub(super) async fn phase2(
    blue: &Ctx,
    blue_cluster: &LocalCluster,
    green: &LocalCluster,
    dir: &Path,
    auth: &Authority,
    reader_token: &SecretString,
    chain: &LocalChain,
) -> Result<String> {
    green_whole(blue, green, auth).await?;
    green_refuses_until_the_carry(green, auth).await?;
    let lb = start_balancer(dir, blue_cluster, green).await?;
    let both = ca_bundle(
        dir,
        blue.ca_cert.as_ref().expect("the rehearsal's CA"),
        &green.ca_cert,
    )?;
    // Reads with the Authority's reader token (made before the snapshot, so green holds it too);
    // the root token is revoked by the script itself.
    let through = Addr::parse(&lb.url())?;
    let load = Load::start(
        &through,
        Vault::new(None, Some(reader_token.clone()))?,
        Vault::new(None, Some(auth.signer.clone()))?,
        &auth.contract,
        chain.rpc.clone(),
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let params = cutover_params(dir, blue_cluster, green, &lb);
    let globals = ceremony_globals(&[], &both, blue.transcript.path());
    let dir_owned = dir.to_owned();
    let t0 = Instant::now();
    let outcome = tokio::task::spawn_blocking(move || {
        run_ceremony(&dir_owned, &globals, "blue-green-2", &params, None)
    })
    .await
    .with_kind(Kind::Internal, "the blue-green-2 ceremony's thread")?;
    let took = t0.elapsed();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let seen = load.stop().await?;
    match outcome? {
        0 => {}
        code => return Err(ceremony_failed(dir, "blue-green-2", code)),
    }
    seen.verdict()?;
    let reader = Vault::new(None, Some(reader_token.clone()))?;
    let blocks = chain_followed(chain, auth, &reader, &through, &seen).await?;
    Ok(format!(
        "green, restored from blue's snapshot, refused the signer token at each of its {} nodes' own \
         addresses (503: restored from a snapshot; no nonce used) until the carry; \
         ceremonies/blue-green-2.toml: HAProxy switched blue → green in {:.1} s under load: {} reads and {} sys/health reads, \
         all answered by an active node; a block submitter (submitBlock signed through HAProxy, broadcast to anvil) had \
         {blocks} blocks mined in order with consecutive nonces, nextChildBlock up by 1000 each, the chain's nonce equal to \
         the plugin's, none refused; longest gap between two blocks {:.0} ms; {} answered \"frozen\" (retryable) during the pause",
        green.nodes.len(),
        took.as_secs_f64(),
        seen.reads_ok,
        seen.health_ok,
        seen.longest_gap().as_secs_f64() * 1000.0,
        seen.frozen
    ))
}

/// The chain followed the cutover: `nextChildBlock` counts every block (the authority phase
/// submitted the first), and the chain's nonce for the Authority equals the plugin's next nonce.
/// How many blocks the load submitted.
async fn chain_followed(
    chain: &LocalChain,
    auth: &Authority,
    reader: &Vault,
    through: &Addr,
    seen: &super::load::LoadOutcome,
) -> Result<usize> {
    let blocks = seen.mined_at.len();
    let latest = chain.rpc.block_number().await?;
    let word = chain
        .rpc
        .call_view(&auth.contract, "nextChildBlock()", latest)
        .await?;
    let next_child = word
        .get(24..32)
        .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
        .unwrap_or_default();
    let expected = 2000 + 1000 * blocks as u64;
    if next_child != expected {
        return Err(Error::verification(format!(
            "after {blocks} blocks nextChildBlock is {next_child}, not {expected}"
        )));
    }
    let on_chain = chain.rpc.mined_nonce(&auth.address).await?;
    let plugin = reader
        .signer(MOUNT)
        .next_nonce(through, AUTHORITY)
        .await
        .map_err(|e| {
            crate::flows::node_error("reading the Authority's nonce through the balancer", e)
        })?;
    if on_chain != plugin {
        return Err(Error::verification(format!(
            "the chain's nonce for the Authority is {on_chain}, the plugin's next is {plugin}"
        )));
    }
    Ok(blocks)
}

/// The cutover wants every green peer a Raft voter (autopilot promotes a joined node 10-20 s
/// after it is unsealed).
async fn green_whole(blue: &Ctx, green: &LocalCluster, auth: &Authority) -> Result<()> {
    let green_vault = Vault::new(Some(&green.ca_cert), Some(auth.root.clone()))?;
    let green_active = crate::flows::active_node(&green_vault, &green.addrs()).await?;
    crate::flows::raft_peers::wait_stable_voters(
        &blue.ui,
        &green_vault,
        &green_active,
        Duration::from_secs(90),
        "the cutover needs every green peer a voter",
    )
    .await
}

/// Green, restored from blue's snapshot, refuses the signer token at each of its own nodes'
/// addresses (503: restored from a snapshot), and no nonce is used, until the cutover carries
/// blue's counters.
async fn green_refuses_until_the_carry(green: &LocalCluster, auth: &Authority) -> Result<()> {
    let as_root = Vault::new(Some(&green.ca_cert), Some(auth.root.clone()))?;
    let as_signer = as_root.with_token(Some(auth.signer.clone()));
    let active = crate::flows::active_node(&as_root, &green.addrs()).await?;
    let counter = || async {
        as_root
            .signer(MOUNT)
            .next_nonce(&active, AUTHORITY)
            .await
            .map_err(|e| crate::flows::node_error("reading the Authority's nonce on green", e))
    };
    let before = counter().await?;
    let body = submit_block(&auth.contract, &format!("0xbaa47694{}", "00".repeat(32)));
    for addr in green.addrs() {
        match as_signer
            .signer(MOUNT)
            .sign(&addr, AUTHORITY, Signing::Tx, &body)
            .await
        {
            Err(crate::vault::NodeError::Api {
                status: 503,
                errors,
            }) if errors
                .iter()
                .any(|e| e.contains("restored from a snapshot")) => {}
            other => {
                return Err(Error::verification(format!(
                    "green, restored and not yet carried, did not refuse the signer token at \
                     {addr}: {other:?}"
                )));
            }
        }
    }
    let after = counter().await?;
    if after != before {
        return Err(Error::verification(format!(
            "a refused signature moved green's nonce: {before} → {after}"
        )));
    }
    Ok(())
}

/// HAProxy with blue's nodes in service (blue1, blue2, ...) and green's in maintenance
/// (green1, ...), once it has seen blue's active node UP and each standby DOWN.
async fn start_balancer(
    dir: &Path,
    blue: &LocalCluster,
    green: &LocalCluster,
) -> Result<LocalHaproxy> {
    let servers = |cluster: &LocalCluster, color: &str, disabled: bool| {
        (cluster.nodes.iter().enumerate())
            .map(|(i, n)| LbServer {
                name: format!("{color}{}", i + 1),
                ip: n.host.ip,
                port: n.api_port,
                ca_file: cluster.ca_cert.clone(),
                disabled,
            })
            .collect::<Vec<_>>()
    };
    let mut all = servers(blue, "blue", false);
    all.extend(servers(green, "green", true));
    let lb = LocalHaproxy::start(&dir.join("haproxy"), "vault", &all)?;
    let ha = crate::lb::haproxy::Haproxy::new(&lb.socket);
    // HAProxy starts every enabled server UP, before its first check: a blue standby would get
    // requests (and answer sys/health with 429) until its checks fail. Wait until each blue
    // server is classified, as the cutover waits for green's.
    poll(
        Duration::from_secs(20),
        Duration::from_millis(100),
        || async {
            let servers = ha.servers("vault").map_err(|e| e.to_string())?;
            let blue: Vec<_> = servers
                .values()
                .filter(|s| s.name.starts_with("blue"))
                .collect();
            let up = blue.iter().any(|s| s.status == "UP");
            let unsettled: Vec<String> = blue
                .iter()
                .filter(|s| !s.classified())
                .map(|s| format!("{} {} ({})", s.name, s.status, s.check_status))
                .collect();
            match (up, unsettled.is_empty()) {
                (true, true) => Ok(()),
                (false, _) => Err("no blue server is UP".to_owned()),
                (true, false) => Err(format!("not yet classified: {}", unsettled.join(", "))),
            }
        },
    )
    .await
    .map_err(|why| Error::failed(format!("HAProxy never settled on blue's servers ({why})")))?;
    Ok(lb)
}

/// The parameters of ceremonies/blue-green-2.toml for these clusters and this balancer.
fn cutover_params(
    dir: &Path,
    blue: &LocalCluster,
    green: &LocalCluster,
    lb: &LocalHaproxy,
) -> Vec<(&'static str, String)> {
    let addrs = |c: &LocalCluster| {
        (c.addrs().iter())
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let names = |color: &str, n: usize| {
        (1..=n)
            .map(|i| format!("{color}{i}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    vec![
        ("blue", addrs(blue)),
        ("green", addrs(green)),
        ("lb", format!("haproxy:{}", lb.socket.display())),
        ("lb_backend", "vault".into()),
        ("blue_servers", names("blue", blue.nodes.len())),
        ("green_servers", names("green", green.nodes.len())),
        ("lb_url", lb.url()),
        ("token_file", dir.join("root.token").display().to_string()),
    ]
}
