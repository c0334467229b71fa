//! `custody wallet bind`: the quorum binds an account created without an allow-list (so it signs
//! nothing) to one call of the contract that was deployed with its address, once the chain shows
//! that contract names it, and the call is one of the contract's functions (`bind_call`), and
//! the operator confirmed. Every check is made before anything is written.

use serde_json::json;

use super::bind_call;
use crate::chain::{Rpcs, abi_address, checksum};
use crate::cli::WalletBindArgs;
use crate::error::{Error, Result};
use crate::flows::{Ctx, active_node, audit, node_error};
use crate::transcript::Step;
use crate::vault::NodeError;

pub async fn run(ctx: &Ctx, args: &WalletBindArgs) -> Result<()> {
    ctx.require_token("wallet bind (the quorum's root token)")?;
    let contract = parse_address("--contract", &args.contract)?;
    for (flag, signature) in [
        ("--call", &args.call),
        ("--authority-getter", &args.authority_getter),
    ] {
        check_signature(flag, signature)?;
    }
    let abi = args.abi.as_deref().map(bind_call::read_abi).transpose()?;
    let rpc = crate::flows::rpcs::rpcs(
        ctx,
        crate::flows::rpcs::RpcFlags {
            flag: "--rpc",
            argv: &args.rpc,
            file_flag: "--rpc-file",
            file: args.rpc_file.as_deref(),
            env: true,
        },
    )?
    .ok_or_else(|| {
        Error::usage(
            "wallet bind reads the chain: give --rpc URL (once per provider), --rpc-file FILE \
             or CUSTODY_RPC_URL",
        )
    })?;
    let vault = ctx.vault()?;
    let addr = active_node(&vault, ctx.require_addrs()?).await?;
    let audit = audit::require(&vault, &addr, "wallet bind", args.accept_no_audit).await?;
    let signer = vault.signer(&args.mount);
    let account = match signer.account(&addr, &args.name).await {
        Ok(a) => a,
        Err(NodeError::Api { status: 404, .. }) => {
            return Err(Error::precondition(format!(
                "no account {} at {}/",
                args.name, args.mount
            )));
        }
        Err(e) => return Err(node_error(&format!("reading the account {}", args.name), e)),
    };
    let address = account["address"].as_str().unwrap_or_default().to_owned();
    let config = signer
        .config(&addr)
        .await
        .map_err(|e| node_error(&format!("reading {}/config", args.mount), e))?;
    let seen = on_chain(&rpc, &contract, args, config["chain_id"].as_u64(), &address).await?;
    let target = bind_call::Target {
        name: &args.name,
        address: &address,
        contract: &contract,
        chain_id: seen.chain_id,
        block: seen.block,
        code_hash: &seen.code_hash,
        call: &args.call,
        getter: &args.authority_getter,
    };
    let checked = bind_call::check(&target, &seen.code, abi.as_ref())?;
    let confirmed = bind_call::confirm(ctx, &target, &checked)?;
    let allowed = format!("{contract}:{}", args.call);
    let bound = signer
        .bind(&addr, &args.name, std::slice::from_ref(&allowed))
        .await
        .map_err(|e| node_error(&format!("binding {} to {allowed}", args.name), e))?;
    let facts = json!({
        "account": args.name,
        "address": address,
        "allowed_call": allowed,
        "authority_getter": args.authority_getter,
        "chain_id": seen.chain_id,
        "block_number": seen.block,
        "block_hash": seen.block_hash,
        "code_keccak256": seen.code_hash,
        "rpc": rpc.label(),
        "rpcs": rpc.shown(),
        "already_bound": bound["already_bound"] == true,
        "call_check": checked.facts(confirmed),
        "audit": audit.json(),
    });
    if audit.accepted_no_audit {
        ctx.ui.warn(format!(
            "the cluster has no audit device: nothing records who signs what with {} \
             (accepted with {}, recorded)",
            args.name,
            audit::ACCEPT_FLAG
        ));
    }
    let head =
        ctx.transcript
            .append(Step::new("bind", "wallet-bind", "operator", facts.clone()))?;
    ctx.ui.result(
        &format!(
            "{} ({address}) is bound to {allowed}{}.\n\
             Checked at block {} ({}) of chain {} by {} RPC(s) that agree ({}): code at {contract} \
             (keccak256 {}), and {} returns the account's address.\nAudit devices: {}\n\
             Transcript head: {}",
            args.name,
            if bound["already_bound"] == true {
                " (it already was)"
            } else {
                ""
            },
            seen.block,
            seen.block_hash,
            seen.chain_id,
            rpc.len(),
            rpc.label(),
            seen.code_hash,
            args.authority_getter,
            audit::describe_all(&audit.devices),
            head.head_hash
        ),
        json!({ "bind": facts, "transcript_head": head.head_hash }),
    );
    Ok(())
}

/// What the chain showed, at one block.
struct Seen {
    chain_id: u64,
    block: u64,
    block_hash: String,
    code_hash: String,
    /// The runtime code, for the selector check.
    code: Vec<u8>,
}

/// Every RPC serves the mount's chain, code exists at the contract, and its getter returns the
/// account's address, all read at one block that every RPC has (the lowest latest block), and
/// every RPC says the same of the block's hash, the code and the getter. Any mismatch, or an RPC
/// that fails: exit 3, nothing written.
async fn on_chain(
    rpc: &Rpcs,
    contract: &str,
    args: &WalletBindArgs,
    mount_chain: Option<u64>,
    address: &str,
) -> Result<Seen> {
    let nothing = "nothing was written";
    let chain_id = rpc
        .expect_chain(&args.mount, mount_chain)
        .await
        .map_err(|e| e.hint(nothing))?;
    let block = rpc.common_block().await.map_err(|e| e.hint(nothing))?;
    let at = rpc
        .contract_at(contract, &args.authority_getter, block)
        .await
        .map_err(|e| e.hint(nothing))?;
    let (code, returned) = (&at.code, &at.returned);
    if code.is_empty() {
        return Err(Error::verification(format!(
            "no contract code at {contract} on chain {chain_id} (block {block}); {nothing}"
        )));
    }
    let named = abi_address(returned).ok_or_else(|| {
        Error::verification(format!(
            "{} of {contract} did not return an address (0x{}); {nothing}",
            args.authority_getter,
            hex::encode(returned)
        ))
    })?;
    if !named.eq_ignore_ascii_case(address) {
        return Err(Error::verification(format!(
            "{} of {contract} returns {named}, not {} ({address}); {nothing}",
            args.authority_getter, args.name
        )));
    }
    Ok(Seen {
        chain_id,
        block,
        block_hash: at.block_hash,
        code_hash: at.code_hash,
        code: at.code,
    })
}

/// `0x` and 40 hex digits: the address, checksummed.
fn parse_address(flag: &str, text: &str) -> Result<String> {
    let bytes = text
        .strip_prefix("0x")
        .filter(|h| h.len() == 40)
        .and_then(|h| hex::decode(h).ok())
        .ok_or_else(|| {
            Error::usage(format!(
                "{flag} {:?}: an address is 0x and 40 hex digits",
                crate::ui::escape(text)
            ))
        })?;
    Ok(checksum(&bytes))
}

/// `name(types)`, with no spaces: the text Solidity hashes for a selector.
fn check_signature(flag: &str, text: &str) -> Result<()> {
    let ok = text.split_once('(').is_some_and(|(name, rest)| {
        !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && rest.ends_with(')')
            && !rest.contains(['(', ' '])
    });
    if ok {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "{flag} {:?}: give a function signature such as submitBlock(bytes32)",
            crate::ui::escape(text)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_signatures_are_checked_before_anything() {
        assert_eq!(
            parse_address("--contract", "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed").unwrap(),
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
        );
        for bad in ["5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", "0x12", "0xzz"] {
            assert_eq!(
                parse_address("--contract", bad)
                    .unwrap_err()
                    .kind
                    .exit_code(),
                2
            );
        }
        assert!(check_signature("--call", "submitBlock(bytes32)").is_ok());
        assert!(check_signature("--call", "authority()").is_ok());
        for bad in [
            "submitBlock",
            "submit Block(bytes32)",
            "f(uint256, bytes32)",
            "(x)",
            "1f()",
        ] {
            assert!(check_signature("--call", bad).is_err(), "{bad}");
        }
    }
}
