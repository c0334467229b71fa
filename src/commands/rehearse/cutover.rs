//! Blue-green phase 2 in the rehearsal: HAProxy, the load through it, the cutover.

use super::*;

/// Blue-green phase 2: HAProxy in front of blue and green, a short load of reads and signatures
/// through it, the cutover, and the load's verdict: no failed read, no nonce twice, no gap.
pub(super) async fn phase2(
    blue: &Ctx,
    blue_cluster: &LocalCluster,
    green: &LocalCluster,
    dir: &Path,
    auth: &Authority,
    reader_token: &SecretString,
) -> Result<String> {
    use crate::localcluster::haproxy::{LbServer, LocalHaproxy};
    let mut servers = Vec::new();
    for (i, n) in blue_cluster.nodes.iter().enumerate() {
        servers.push(LbServer {
            name: format!("blue{}", i + 1),
            port: n.api_port,
            ca_file: blue_cluster.ca_cert.clone(),
            disabled: false,
        });
    }
    for (i, n) in green.nodes.iter().enumerate() {
        servers.push(LbServer {
            name: format!("green{}", i + 1),
            port: n.api_port,
            ca_file: green.ca_cert.clone(),
            disabled: true,
        });
    }
    // The cutover wants every green peer a Raft voter (autopilot promotes a joined node 10-20 s
    // after it is unsealed).
    let green_vault = Vault::new(Some(&green.ca_cert), Some(auth.root.clone()))?;
    let green_active = crate::flows::active_node(&green_vault, &green.addrs()).await?;
    crate::flows::raft_peers::wait_stable_voters(
        &blue.ui,
        &green_vault,
        &green_active,
        Duration::from_secs(90),
        "the cutover needs every green peer a voter",
    )
    .await?;
    let lb = LocalHaproxy::start(&dir.join("haproxy"), "vault", &servers)?;
    let ha = crate::lb::haproxy::Haproxy::new(&lb.socket);
    poll(
        Duration::from_secs(20),
        Duration::from_millis(100),
        || async {
            match ha.servers("vault") {
                Ok(servers)
                    if servers
                        .values()
                        .any(|s| s.name.starts_with("blue") && s.status == "UP") =>
                {
                    Ok(())
                }
                Ok(_) => Err("no blue server is UP".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await
    .map_err(|why| Error::failed(format!("HAProxy never saw blue's active node UP ({why})")))?;
    let both = ca_bundle(
        dir,
        blue.ca_cert.as_ref().expect("the rehearsal's CA"),
        &green.ca_cert,
    )?;

    // The load: reads and signatures through the balancer until the cutover is done.
    let lb_addr = crate::vault::Addr::parse(&lb.url())?;
    // Reads with the Authority's reader token (made before the snapshot, so green holds it too);
    // the root token is revoked by the script itself.
    let reader = Vault::new(None, Some(reader_token.clone()))?;
    let signer = Vault::new(None, Some(auth.signer.clone()))?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let read_task = {
        let (stop, v, a) = (stop.clone(), reader.clone(), lb_addr.clone());
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u64, 0u64);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match v.signer(MOUNT).account(&a, AUTHORITY).await {
                    Ok(_) => ok += 1,
                    Err(_) => failed += 1,
                }
            }
            (ok, failed)
        })
    };
    let sign_task = {
        let (stop, v, a) = (stop.clone(), signer.clone(), lb_addr.clone());
        tokio::spawn(async move {
            let (mut nonces, mut frozen, mut failed) = (Vec::new(), 0u64, 0u64);
            let call = format!("0xbaa47694{}", "11".repeat(32));
            let body = submit_block(CONTRACT, &call);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match v
                    .signer(MOUNT)
                    .sign(&a, AUTHORITY, Signing::Tx, &body)
                    .await
                {
                    Ok(r) => nonces.push(r["nonce"].as_u64().unwrap_or(u64::MAX)),
                    Err(e) if e.message_contains("frozen") => frozen += 1,
                    Err(_) => failed += 1,
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (nonces, frozen, failed)
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    let root_file = dir.join("root.token");
    let blue_list = blue_cluster
        .addrs()
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let green_list = green
        .addrs()
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let params: Vec<(&'static str, String)> = vec![
        ("blue", blue_list),
        ("green", green_list),
        ("lb", format!("haproxy:{}", lb.socket.display())),
        ("lb_backend", "vault".into()),
        (
            "blue_servers",
            (1..=blue_cluster.nodes.len())
                .map(|i| format!("blue{i}"))
                .collect::<Vec<_>>()
                .join(","),
        ),
        (
            "green_servers",
            (1..=green.nodes.len())
                .map(|i| format!("green{i}"))
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("lb_url", lb.url()),
        ("token_file", root_file.display().to_string()),
    ];
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
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (reads_ok, reads_failed) = read_task
        .await
        .with_kind(Kind::Internal, "the reads' load task")?;
    let (mut nonces, frozen, sign_failed) = sign_task
        .await
        .with_kind(Kind::Internal, "the signatures' load task")?;
    match outcome? {
        0 => {}
        code => return Err(ceremony_failed(dir, "blue-green-2", code)),
    }
    nonces.sort_unstable();
    let n = nonces.len() as u64;
    if reads_failed > 0 || sign_failed > 0 {
        return Err(Error::verification(format!(
            "under the cutover {reads_failed} reads and {sign_failed} signatures failed"
        )));
    }
    // Consecutive from the first signature of the load (the Authority signed before it began).
    if let Some(&first) = nonces.first()
        && nonces != (first..first + n).collect::<Vec<_>>()
    {
        return Err(Error::verification(format!(
            "the nonces signed under load repeat or leave a gap: {nonces:?}"
        )));
    }
    Ok(format!(
        "ceremonies/blue-green-2.toml: HAProxy switched blue → green in {:.1} s under load: {reads_ok} reads, 0 failed; {n} signatures with consecutive nonces, \
         {frozen} answered \"frozen\" (retryable) during the pause",
        took.as_secs_f64()
    ))
}
