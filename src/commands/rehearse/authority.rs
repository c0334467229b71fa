//! Ceremony 4 in the rehearsal: the Authority, and what its signer token may and may not do.

use super::*;
use crate::localcluster::anvil::LocalChain;

/// Ceremony 4: the ceremony token, no standing root, the quorum's root token, the plugin, the
/// Authority created with no allow-list; then the contract deployed with its address on the
/// rehearsal's chain and the Authority bound to it; a signature by its signer token, mined.
pub(super) async fn authority(
    inner: &Ctx,
    dir: &Path,
    out: &Path,
    holders: &[Holder],
    operator: &Holder,
    plugin: &Path,
    chain: &LocalChain,
) -> Result<Authority> {
    // The operator decrypts each token into a 0600 file when the script says so; the script
    // stops where a file it needs is missing, and resumes once it is there.
    let init_root = decrypt_token(
        &crate::flows::files::root_token_path(out, &operator.fingerprint),
        &operator.secret,
    )?;
    let init_root_file = dir.join("init-root.token");
    write_private(&init_root_file, init_root.expose().as_bytes(), false)?;
    let ceremony_file = dir.join("ceremony.token");
    let root_file = dir.join("root.token");
    let globals = ceremony_globals(
        &inner.addrs,
        inner.ca_cert.as_deref().expect("the rehearsal's CA"),
        inner.transcript.path(),
    );
    let params = [
        ("operator_key", operator.public.display().to_string()),
        ("init_root_token_file", init_root_file.display().to_string()),
        ("ceremony_token_file", ceremony_file.display().to_string()),
        ("root_token_file", root_file.display().to_string()),
        ("plugin_bin", plugin.display().to_string()),
        ("chain_id", CHAIN_ID.to_string()),
    ];
    let quorum = pick(holders, &[1, 3, 4]);
    let shares = share_lines(&decrypt_shares(inner, out, &quorum)?);
    // The plug pulled right after a step: the reruns resume, repeating nothing (revoking the
    // init root token twice would fail: it is revoked).
    let killed = run_ceremony_killed_after(
        dir,
        &globals,
        "authority",
        &params,
        inner.transcript.path(),
        "revoke-init-root",
    )?;
    let runs = run_until_done(dir, &globals, &params, &shares, operator)?;
    each_step_once(inner.transcript.path())?;
    let root = decrypt_token(&dir.join("root-token.quorum.asc"), &operator.secret)?;
    let as_root = as_token(inner, Some(root.clone()));
    let (address, signer) = unwrapped_signer(&as_root, dir).await?;
    let contract = bind(
        &as_root, dir, &globals, chain, &address, &signer, &root_file,
    )
    .await?;
    signing_service(&as_root, &signer, &address, &contract, chain).await?;
    let summary = format!(
        "ceremonies/authority.toml in {} runs ({}it resumed after each token the operator decrypted): ceremony token, \
         init root revoked, root from holders 2, 4, 5, plugin mounted, Authority {address} created signing nothing; \
         ceremonies/bind-authority.toml bound it to submitBlock on {contract}, deployed with its address on anvil; \
         its unwrapped signer token's submitBlock was mined (nextChildBlock 2000), and it was refused a message, \
         typed data and a fee above the cap (no nonce used)",
        runs + 1,
        if killed {
            "SIGKILLed right after revoke-init-root, "
        } else {
            ""
        }
    );
    Ok(Authority {
        summary,
        root,
        address,
        signer,
        contract,
    })
}

/// Every step of the authority ceremony is in the transcript exactly once, and the mount holds
/// one account: nothing was repeated after the kill.
fn each_step_once(transcript: &Path) -> Result<()> {
    let text = std::fs::read_to_string(transcript).context("reading the transcript")?;
    for step in [
        "ceremony-token",
        "revoke-init-root",
        "decrypt-ceremony-token",
        "root-generate",
        "decrypt-root-token",
        "plugin-install",
        "wallet-create",
    ] {
        let needle = format!("\"step\":\"{step}\"");
        let n = text
            .lines()
            .filter(|l| l.contains("\"ceremony\":\"authority\"") && l.contains(&needle))
            .count();
        if n != 1 {
            return Err(Error::verification(format!(
                "the authority ceremony recorded step {step} {n} times"
            )));
        }
    }
    Ok(())
}

/// Runs the script until it finishes: each time it stops for a token file, the operator
/// decrypts that token into it (0600) and runs it again. How many runs it took.
fn run_until_done(
    dir: &Path,
    globals: &[String],
    params: &[(&'static str, String)],
    shares: &[u8],
    operator: &Holder,
) -> Result<u32> {
    let waiting_for = [
        (dir.join("ceremony-token.asc"), dir.join("ceremony.token")),
        (dir.join("root-token.quorum.asc"), dir.join("root.token")),
    ];
    let mut runs = 0;
    loop {
        runs += 1;
        let code = run_ceremony(dir, globals, "authority", params, Some(shares))?;
        if code == 0 {
            return Ok(runs);
        }
        match waiting_for
            .iter()
            .find(|(asc, file)| asc.is_file() && !file.exists())
        {
            Some((asc, file)) if runs < 4 => write_private(
                file,
                decrypt_token(asc, &operator.secret)?.expose().as_bytes(),
                false,
            )?,
            _ => return Err(ceremony_failed(dir, "authority", code)),
        }
    }
}

/// The signer token, unwrapped once from the file `wallet create` wrote, and the Authority's
/// address; the mount holds the one Authority.
async fn unwrapped_signer(as_root: &Ctx, dir: &Path) -> Result<(String, SecretString)> {
    let vault = as_root.vault()?;
    let addr = crate::flows::active_node(&vault, &as_root.addrs).await?;
    let account = vault
        .signer(MOUNT)
        .account(&addr, AUTHORITY)
        .await
        .map_err(|e| crate::flows::node_error("reading the Authority", e))?;
    let address = account["address"].as_str().unwrap_or_default().to_owned();
    let names = vault
        .signer(MOUNT)
        .account_names(&addr)
        .await
        .map_err(|e| crate::flows::node_error("listing the accounts", e))?;
    if names != [AUTHORITY] {
        return Err(Error::verification(format!(
            "the mount holds {names:?}, not the one Authority"
        )));
    }
    let wrapping =
        crate::flows::files::read_token(&dir.join("authority-signer.wrap"), "the wrapping token")?;
    let (signer, _) = vault
        .with_token(Some(wrapping))
        .unwrap_token(&addr)
        .await
        .map_err(|e| crate::flows::node_error("unwrapping the signer token", e))?;
    Ok((address, signer))
}

/// Unbound, the Authority signs nothing; the contract is deployed with its address and the
/// quorum binds it by the bind-authority ceremony: the contract's address.
async fn bind(
    as_root: &Ctx,
    dir: &Path,
    globals: &[String],
    chain: &LocalChain,
    address: &str,
    signer: &SecretString,
    root_file: &Path,
) -> Result<String> {
    let vault = as_root.vault()?;
    let addr = crate::flows::active_node(&vault, &as_root.addrs).await?;
    let call = format!("0xbaa47694{}", "00".repeat(32));
    let anywhere = submit_block("0x1111111111111111111111111111111111111111", &call);
    match vault
        .with_token(Some(signer.clone()))
        .signer(MOUNT)
        .sign(&addr, AUTHORITY, Signing::Tx, &anywhere)
        .await
    {
        Err(crate::vault::NodeError::Api { status: 403, .. }) => {}
        other => {
            return Err(Error::verification(format!(
                "the unbound Authority was not refused a transaction: {other:?}"
            )));
        }
    }
    let contract = chain.deploy_plasma_authority(address).await?;
    // The way the README asks for a provider's URL: in a file, out of argv.
    let rpc_file = dir.join("rpc-urls");
    std::fs::write(&rpc_file, format!("{}\n", chain.url))
        .context(format!("writing {}", rpc_file.display()))?;
    expect_ceremony(
        dir,
        globals,
        "bind-authority",
        &[
            ("rpc_file", rpc_file.display().to_string()),
            ("contract", contract.clone()),
            ("root_token_file", root_file.display().to_string()),
        ],
        None,
    )?;
    Ok(contract)
}

/// The signing service's side: sign submitBlock on the bound contract (the chain mines it and
/// the contract counts the block), be refused the mount's config and everything the rules
/// forbid.
async fn signing_service(
    as_root: &Ctx,
    signer: &SecretString,
    address: &str,
    contract: &str,
    chain: &LocalChain,
) -> Result<()> {
    let vault = as_root.vault()?;
    let addr = crate::flows::active_node(&vault, &as_root.addrs).await?;
    let as_signer = vault.with_token(Some(signer.clone()));
    let call = format!("0xbaa47694{}", "00".repeat(32));
    let tx = as_signer
        .signer(MOUNT)
        .sign(
            &addr,
            AUTHORITY,
            Signing::Tx,
            &submit_block(contract, &call),
        )
        .await
        .map_err(|e| crate::flows::node_error("signing submitBlock with the signer token", e))?;
    if tx["from"] != address {
        return Err(Error::verification(
            "the signature does not come from the Authority",
        ));
    }
    chain.fund(address).await?;
    chain.send_raw(&tx["signed_tx"]).await?;
    let next = chain
        .rpc
        .call_view(
            contract,
            "nextChildBlock()",
            chain.rpc.block_number().await?,
        )
        .await?;
    if next.last() != Some(&0xd0) || next.get(30) != Some(&0x07) {
        return Err(Error::verification(format!(
            "after one submitBlock the contract's nextChildBlock is 0x{}, not 2000",
            hex::encode(&next)
        )));
    }
    if as_signer
        .signer(MOUNT)
        .set_frozen(&addr, true)
        .await
        .is_ok()
    {
        return Err(Error::verification(
            "the signer token could change the mount's config",
        ));
    }
    signer_rules_hold(&as_signer, &vault, &addr, contract, &tx).await
}

/// What a stolen signer token would try, refused by the Authority's rules (403), with no nonce
/// used: a message, an ERC-2612-style permit, and a submitBlock above the script's fee cap.
pub(super) async fn signer_rules_hold(
    as_signer: &Vault,
    as_root: &Vault,
    addr: &crate::vault::Addr,
    contract: &str,
    signed: &serde_json::Value,
) -> Result<()> {
    let call = format!("0xbaa47694{}", "00".repeat(32));
    let permit = json!({
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}],
            "Permit": [{"name": "spender", "type": "address"}, {"name": "value", "type": "uint256"}]
        },
        "primaryType": "Permit",
        "domain": {"name": "Token", "chainId": signed["chain_id"], "verifyingContract": contract},
        "message": {"spender": contract, "value": "1"}
    });
    let mut above_cap = submit_block(contract, &call);
    above_cap["max_fee_per_gas"] = json!("1000000000000");
    let attempts = [
        (Signing::Message, json!({ "message": "permit me" })),
        (Signing::TypedData, json!({ "typed_data": permit })),
        (Signing::Tx, above_cap),
    ];
    for (what, body) in attempts {
        let path = what.leaf();
        match as_signer
            .signer(MOUNT)
            .sign(addr, AUTHORITY, what, &body)
            .await
        {
            Err(crate::vault::NodeError::Api { status: 403, .. }) => {}
            other => {
                return Err(Error::verification(format!(
                    "the Authority's rules did not refuse {path} by its signer token: {other:?}"
                )));
            }
        }
    }
    let next = as_root
        .signer(MOUNT)
        .next_nonce(addr, AUTHORITY)
        .await
        .map_err(|e| crate::flows::node_error("reading the Authority's nonce", e))?;
    let used = signed["nonce"].as_u64();
    if used.map(|n| n + 1) != Some(next) {
        return Err(Error::verification(format!(
            "a refused signature moved the Authority's nonce: {next} after nonce {used:?} was signed"
        )));
    }
    Ok(())
}

/// The Authority's one allowed call, with fees under the ceremony script's caps.
pub(super) fn submit_block(contract: &str, call: &str) -> serde_json::Value {
    json!({ "to": contract, "data": call, "gas": 100000, "max_fee_per_gas": "2000000000", "max_priority_fee_per_gas": "1000000000" })
}

pub(super) struct Authority {
    pub(super) summary: String,
    pub(super) root: SecretString,
    pub(super) address: String,
    pub(super) signer: SecretString,
    /// The contract it is bound to, on the rehearsal's chain.
    pub(super) contract: String,
}
