//! Ceremony 5 and blue-green phase 1 in the rehearsal: snapshot, verify, green restored.

use super::*;
use crate::vault::Addr;

/// Ceremony 5 and blue-green phase 1: save blue, verify it (offline and by a restore test
/// under the ceremony token), build green, restore blue into it, unseal green with the
/// original quorum, and find the same Authority on both.
pub(super) async fn snapshots(
    blue: &Ctx,
    dir: &Path,
    bao: &Path,
    plugin: &Path,
    out: &Path,
    holders: &[Holder],
    auth: &Authority,
) -> Result<(String, LocalCluster, SecretString, SecretString)> {
    let as_root = as_token(blue, Some(auth.root.clone()));
    let vault = as_root.vault()?;
    let addr = crate::flows::active_node(&vault, &blue.addrs).await?;
    let reader = reader_token(&vault, &addr).await?;
    let witness = super::reconcile::witness_token(&vault, &addr).await?;
    let quorum = pick(holders, &[0, 2, 4]);
    let quorum_shares = share_lines(&decrypt_shares(blue, out, &quorum)?);
    save_and_verify(blue, dir, plugin, auth, &quorum_shares)?;
    let (green, green_ctx) = fresh_green(blue, dir, bao, plugin).await?;
    let green_vault = green_ctx.vault()?;
    // Blue-green phase 1 by its script: restore, then the original quorum unseals green.
    let blue_ca = blue.ca_cert.clone().expect("the rehearsal's CA");
    let both = ca_bundle(dir, &blue_ca, &green.ca_cert)?;
    let green_token_file = dir.join("green-root.token");
    write_private(
        &green_token_file,
        green_ctx
            .token
            .as_ref()
            .expect("green's root")
            .expose()
            .as_bytes(),
        false,
    )?;
    expect_ceremony(
        dir,
        &ceremony_globals(&blue.addrs, &both, blue.transcript.path()),
        "blue-green-1",
        &[
            ("file", "blue.snap".to_owned()),
            (
                "green_addr",
                (green.addrs().iter())
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("green_token_file", green_token_file.display().to_string()),
        ],
        Some(&quorum_shares),
    )?;
    wait_roles(&green_vault, &green_ctx, Duration::from_secs(60)).await?;
    let blue_reader = vault.with_token(Some(reader.clone()));
    let green_reader = green_vault.with_token(Some(reader.clone()));
    same_authority(auth, (&blue_reader, &addr), (&green_reader, &green.addrs())).await?;
    Ok((
        format!(
            "ceremonies/snapshot.toml: blue saved, verified offline and by a restore test unsealed by holders 1, 3, 5; \
             ceremonies/blue-green-1.toml: green restored and unsealed by the same quorum; Authority {} on both",
            auth.address
        ),
        green,
        reader,
        witness,
    ))
}

/// A token of the Authority's reader policy, made before the snapshot so green holds it too.
async fn reader_token(vault: &Vault, addr: &Addr) -> Result<SecretString> {
    let (reader, _) = vault
        .create_orphan_token(
            addr,
            &crate::vault::OrphanToken {
                policies: &["custody-authority-reader".to_owned()],
                period: None,
                display_name: "custody-rehearsal-reader",
            },
        )
        .await
        .map_err(|e| crate::flows::node_error("creating a reader token", e))?;
    Ok(reader)
}

/// Ceremony 5 by its script: blue saved to blue.snap and verified (a restore test unsealed by
/// the quorum); the manifest records the Authority's address.
fn save_and_verify(
    blue: &Ctx,
    dir: &Path,
    plugin: &Path,
    auth: &Authority,
    quorum_shares: &[u8],
) -> Result<()> {
    let blue_ca = blue.ca_cert.clone().expect("the rehearsal's CA");
    expect_ceremony(
        dir,
        &ceremony_globals(&blue.addrs, &blue_ca, blue.transcript.path()),
        "snapshot",
        &[
            (
                "root_token_file",
                dir.join("root.token").display().to_string(),
            ),
            (
                "ceremony_token_file",
                dir.join("ceremony.token").display().to_string(),
            ),
            ("plugin_bin", plugin.display().to_string()),
            ("file", "blue.snap".to_owned()),
        ],
        Some(quorum_shares),
    )?;
    let manifest = crate::snapshot::manifest::read(&dir.join("blue.snap"))?
        .ok_or_else(|| Error::failed("the snapshot has no manifest"))?;
    if manifest.accounts.get("authority") != Some(&auth.address) {
        return Err(Error::verification(
            "the manifest does not record the Authority's address",
        ));
    }
    Ok(())
}

/// Green: built, initialized with its own throwaway keys (held in memory) and unsealed by them;
/// its context holds green's root token.
async fn fresh_green(
    blue: &Ctx,
    dir: &Path,
    bao: &Path,
    plugin: &Path,
) -> Result<(LocalCluster, Ctx)> {
    let green = LocalCluster::start(ClusterSpec {
        dir: Some(dir.join("green")),
        plugins: vec![plugin.to_owned()],
        ..ClusterSpec::raft("rehearsal-green", 3, bao.to_owned())
    })?;
    let green_vault = Vault::new(Some(&green.ca_cert), None)?;
    let g_addrs = green.addrs();
    let init = green_vault
        .init(
            &g_addrs[0],
            &crate::vault::InitRequest::plain(HOLDERS as u32, THRESHOLD),
        )
        .await
        .map_err(|e| crate::flows::node_error("initializing green", e))?;
    let own: Vec<crate::shamir::Share> = init
        .keys
        .iter()
        .take(THRESHOLD as usize)
        .enumerate()
        .map(|(i, k)| {
            shamir::parse_share(
                &SecretString::new(k.clone()),
                &format!("green key {}", i + 1),
            )
            .map_err(Error::failed)
        })
        .collect::<Result<_>>()?;
    let green_ctx = Ctx {
        ui: Ui::silent(),
        addrs: g_addrs.clone(),
        ca_cert: Some(green.ca_cert.clone()),
        transcript: Transcript::at(blue.transcript.path()),
        token: Some(SecretString::new(init.root_token.clone())),
    };
    let report = unseal_with(
        &green_ctx,
        &green_vault,
        &g_addrs,
        &Shares {
            shares: own,
            holders: Vec::new(),
        },
        JOIN_TIMEOUT,
    )
    .await?;
    expect_all_unsealed(&report, &green)?;
    wait_roles(&green_vault, &green_ctx, Duration::from_secs(30)).await?;
    Ok((green, green_ctx))
}

/// The reader token finds the created Authority's address on blue and on green (green's active
/// node may take a moment to serve after its unseal).
async fn same_authority(
    auth: &Authority,
    (blue, blue_addr): (&Vault, &Addr),
    (green, green_addrs): (&Vault, &[Addr]),
) -> Result<()> {
    let read = |v: &Vault, a: &Addr| {
        let (v, a) = (v.clone(), a.clone());
        async move {
            v.signer(MOUNT)
                .account(&a, AUTHORITY)
                .await
                .map(|x| x["address"].as_str().unwrap_or_default().to_owned())
        }
    };
    let on_blue = read(blue, blue_addr)
        .await
        .map_err(|e| crate::flows::node_error("reading the Authority on blue", e))?;
    let green_active = crate::flows::active_node(green, green_addrs).await?;
    let on_green = poll(Duration::from_secs(30), Duration::from_millis(300), || {
        let attempt = read(green, &green_active);
        async move { attempt.await.map_err(|e| e.to_string()) }
    })
    .await
    .map_err(|why| Error::failed(format!("reading the Authority on green: {why}")))?;
    if on_blue != auth.address || on_green != auth.address {
        return Err(Error::verification(format!(
            "the Authority differs: blue {on_blue}, green {on_green}, created {}",
            auth.address
        )));
    }
    Ok(())
}
