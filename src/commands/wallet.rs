//! `custody wallet create | show`: the Authority account, created exactly once inside the
//! plugin, its two policies, and a response-wrapped signer token; then its public face.

use serde_json::{Value, json};

use crate::chain::{Rpcs, Standing, standing};
use crate::cli::WalletCreateArgs;
use crate::error::{Error, Result};
use crate::flows::audit;
use crate::flows::freeze::Signing;
use crate::flows::{Ctx, active_node, node_error};
use crate::fsutil::{refuse_existing, write_private};
use crate::transcript::Step;
use crate::vault::{Addr, NodeError, OrphanToken, SignerMount, Vault, WrapInfo};

/// How long the wrapped signer token can wait to be unwrapped.
pub const WRAP_TTL: &str = "300s";

pub fn signer_policy(mount: &str, name: &str) -> String {
    format!(
        "# custody: the signer of account {name} may only ask for signatures.\n\
         path \"{mount}/accounts/{name}/sign-tx\" {{\n  capabilities = [\"update\"]\n}}\n\
         path \"{mount}/accounts/{name}/sign-message\" {{\n  capabilities = [\"update\"]\n}}\n\
         path \"{mount}/accounts/{name}/sign-typed-data\" {{\n  capabilities = [\"update\"]\n}}\n"
    )
}

pub fn reader_policy(mount: &str, name: &str) -> String {
    format!(
        "# custody: the reader of account {name} may see its address, constraints and nonce.\n\
         path \"{mount}/accounts/{name}\" {{\n  capabilities = [\"read\"]\n}}\n\
         path \"{mount}/accounts/{name}/nonce\" {{\n  capabilities = [\"read\"]\n}}\n"
    )
}

fn parse_chain_id(s: &str) -> Result<u64> {
    let bad = || {
        Error::usage(format!(
            "--chain-id {s:?}: a chain id is a positive decimal number"
        ))
    };
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match s.parse::<u64>() {
        Ok(0) | Err(_) => Err(bad()),
        Ok(n) => Ok(n),
    }
}

/// What `wallet create` will do, every input checked before anything is sent.
struct Plan<'a> {
    name: &'a str,
    mount: &'a str,
    chain_id: u64,
    /// The account's rules as the plugin takes them; it checks every one before it makes a key.
    body: Value,
    inert: bool,
}

fn plan(args: &WalletCreateArgs) -> Result<Plan<'_>> {
    let chain_id = parse_chain_id(&args.chain_id)?;
    if !crate::vault::valid_path_segment(&args.mount) {
        return Err(Error::usage(format!(
            "--mount {:?}: letters, digits, - and _ only",
            args.mount
        )));
    }
    let name = &args.name;
    if !crate::vault::valid_path_segment(name)
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err(Error::usage(format!(
            "{name:?} is not an account name: letters, digits, - and _"
        )));
    }
    refuse_existing(&args.signer_token_out)?;
    let mut body = json!({
        "allowed_to": args.allowed_to,
        "allowed_calls": args.allowed_calls,
        "unrestricted": args.unrestricted,
        "allow_sign_message": args.allow_sign_message,
        "allow_sign_typed_data": args.allow_sign_typed_data,
    });
    for (field, value) in [
        ("max_value_wei", &args.max_value_wei),
        ("max_fee_per_gas_wei", &args.max_fee_per_gas_wei),
        ("max_gas", &args.max_gas),
    ] {
        if let Some(v) = value {
            body[field] = json!(v);
        }
    }
    Ok(Plan {
        name,
        mount: &args.mount,
        chain_id,
        body,
        inert: !args.unrestricted && args.allowed_to.is_empty() && args.allowed_calls.is_empty(),
    })
}

/// The account must not exist yet, and the mount signs for this chain or none yet; returns the
/// chain the mount already pins.
async fn check_fresh(
    signer: &SignerMount<'_>,
    addr: &Addr,
    plan: &Plan<'_>,
) -> Result<Option<u64>> {
    let (name, mount) = (plan.name, plan.mount);
    match signer.account(addr, name).await {
        Ok(_) => {
            return Err(Error::precondition(format!(
                "account {name} already exists at {mount}/: the Authority is created exactly once; nothing was changed"
            )));
        }
        Err(NodeError::Api { status: 404, .. }) => {}
        Err(e) => {
            return Err(node_error(
                &format!("reading {mount}/accounts/{name} (is the plugin installed?)"),
                e,
            ));
        }
    }
    let config = signer
        .config(addr)
        .await
        .map_err(|e| node_error("reading the mount's config", e))?;
    let pinned = config["chain_id"].as_u64();
    if let Some(p) = pinned
        && p != plan.chain_id
    {
        return Err(Error::precondition(format!(
            "{mount}/ signs for chain {p}, not --chain-id {}; nothing was changed",
            plan.chain_id
        )));
    }
    Ok(pinned)
}

/// The account's two policies, and a response-wrapped token of its signer policy.
struct Access {
    signer_name: String,
    reader_name: String,
    policy_sha256: Value,
    wrap: WrapInfo,
}

async fn signer_access(vault: &Vault, addr: &Addr, plan: &Plan<'_>) -> Result<Access> {
    let (name, mount) = (plan.name, plan.mount);
    let signer_name = format!("custody-{name}-signer");
    let reader_name = format!("custody-{name}-reader");
    let signer_text = signer_policy(mount, name);
    let reader_text = reader_policy(mount, name);
    for (policy, text) in [(&signer_name, &signer_text), (&reader_name, &reader_text)] {
        vault
            .put_policy(addr, policy, text)
            .await
            .map_err(|e| node_error(&format!("writing policy {policy}"), e))?;
    }
    let wrap = vault
        .create_orphan_token_wrapped(
            addr,
            &OrphanToken {
                policies: std::slice::from_ref(&signer_name),
                period: Some("768h"),
                display_name: &signer_name,
            },
            WRAP_TTL,
        )
        .await
        .map_err(|e| node_error("creating the signer token", e))?;
    Ok(Access {
        policy_sha256: json!({
            signer_name.clone(): crate::digest::sha256_hex(signer_text.as_bytes()),
            reader_name.clone(): crate::digest::sha256_hex(reader_text.as_bytes()),
        }),
        signer_name,
        reader_name,
        wrap,
    })
}

pub async fn create(ctx: &Ctx, args: &WalletCreateArgs) -> Result<()> {
    ctx.require_token("wallet create (a root token from the quorum)")?;
    let plan = plan(args)?;
    let (name, mount, chain_id) = (plan.name, plan.mount, plan.chain_id);
    let vault = ctx.vault()?;
    let addr = active_node(&vault, ctx.require_addrs()?).await?;
    let signer = vault.signer(mount);
    let pinned = check_fresh(&signer, &addr, &plan).await?;
    let audit = audit::require(&vault, &addr, "wallet create", args.accept_no_audit).await?;

    let account = signer
        .create_account(&addr, name, &plan.body)
        .await
        .map_err(|e| node_error(&format!("creating account {name}; nothing was changed"), e))?;
    if pinned.is_none() {
        signer
            .pin_chain_id(&addr, chain_id)
            .await
            .map_err(|e| node_error("pinning the chain id", e))?;
    }
    let access = signer_access(&vault, &addr, &plan).await?;
    let token_file = zeroize::Zeroizing::new(format!("{}\n", access.wrap.token.expose()));
    write_private(&args.signer_token_out, token_file.as_bytes(), false)?;

    let plugin_sha = vault.running_sha256(&addr, mount).await.unwrap_or_default();
    let address = account["address"].as_str().unwrap_or_default().to_owned();
    let wrap = &access.wrap;
    let facts = json!({
        "account": name,
        "mount": mount,
        "address": address,
        "chain_id": chain_id,
        "allowed_to": account["allowed_to"],
        "allowed_calls": account["allowed_calls"],
        "unrestricted": account["unrestricted"],
        "allow_sign_message": account["allow_sign_message"],
        "allow_sign_typed_data": account["allow_sign_typed_data"],
        "max_value_wei": account["max_value_wei"],
        "max_fee_per_gas_wei": account["max_fee_per_gas_wei"],
        "max_gas": account["max_gas"],
        "policies": access.policy_sha256,
        "plugin_sha256": plugin_sha,
        "signer_token_wrap": { "accessor": wrap.accessor, "ttl": wrap.ttl, "creation_path": wrap.creation_path },
        "audit": audit.json(),
    });
    let head = ctx.transcript.append(
        Step::new("configure", "wallet-create", "operator", facts.clone()).file(
            &args.signer_token_out,
            &crate::digest::sha256_hex(token_file.as_bytes()),
        ),
    )?;
    if audit.accepted_no_audit {
        ctx.ui.warn(format!(
            "the cluster has no audit device: nothing records who signs what with {name} \
             (accepted with {}, recorded)",
            audit::ACCEPT_FLAG
        ));
    }
    let signs = if plan.inert {
        "Transactions: none until it is bound to its contract (no allow-list; --unrestricted was not asked for)\n"
    } else {
        ""
    };
    ctx.ui.result(
        &format!(
            "Account {name} created inside the plugin.\nAddress: {address}\nChain id: {chain_id}\n{signs}\
             Audit devices: {}\n\
             Policies: {}, {}\n\
             Signer token: response-wrapped in {} (single use, valid {WRAP_TTL}); the signing service \
             unwraps it with `VAULT_TOKEN=$(cat FILE) bao unwrap`.\nTranscript head: {}",
            audit::describe_all(&audit.devices),
            access.signer_name,
            access.reader_name,
            args.signer_token_out.display(),
            head.head_hash
        ),
        json!({ "wallet": facts, "transcript_head": head.head_hash }),
    );
    Ok(())
}

pub async fn show(
    ctx: &Ctx,
    name: &str,
    mount: &str,
    rpc: &[String],
    rpc_file: Option<&std::path::Path>,
) -> Result<()> {
    ctx.require_token("wallet show (a reader token or better)")?;
    let rpc = crate::flows::rpcs::rpcs(
        ctx,
        crate::flows::rpcs::RpcFlags {
            flag: "--rpc",
            argv: rpc,
            file_flag: "--rpc-file",
            file: rpc_file,
            env: true,
        },
    )?;
    let vault = ctx.vault()?;
    let mut last = None;
    for addr in ctx.require_addrs()? {
        match vault.signer(mount).account(addr, name).await {
            Ok(a) => {
                let chain = match &rpc {
                    Some(rpc) => Some(chain_view(&vault, addr, mount, &a, rpc).await?),
                    None => None,
                };
                // The sha256 of the binary the mount runs, the one a holder rebuilds with
                // scripts/release (README, "Verify the binaries"). Reading sys/mounts needs more
                // than the reader policy: without it the line says so and the JSON has null.
                let plugin_sha = vault
                    .running_sha256(addr, mount)
                    .await
                    .ok()
                    .filter(|s| !s.is_empty());
                let signing = signing_of(&vault, addr, mount).await;
                let mut text = show_text(&a);
                text.push('\n');
                text.push_str(&plugin_sha_line(plugin_sha.as_deref(), mount));
                text.push('\n');
                text.push_str(&signing.text(mount));
                if let Some(c) = &chain {
                    text.push('\n');
                    text.push_str(&c.text());
                }
                ctx.ui.result(
                    &text,
                    json!({
                        "account": a,
                        "addr": addr.to_string(),
                        "plugin_sha256": plugin_sha,
                        "signing": signing.state.as_ref().map(|(s, _)| s.word()),
                        "config": signing.state.as_ref().map(|(_, c)| c),
                        "restore_fences": signing.fences,
                        "chain": chain.as_ref().map(ChainView::json),
                    }),
                );
                return match chain.map(|c| c.standing) {
                    Some(Standing::Behind(by)) => Err(Error::verification(format!(
                        "the plugin is {by} behind the chain: its next nonce for {name} is one the chain already has; \
                         raise it (cutover rollback --nonce-floor-from-rpc, or the nonce path) before it signs"
                    ))),
                    Some(Standing::Ahead(by)) => {
                        ctx.ui.warn(format!(
                            "{by} transaction(s) {name} signed are not on the chain (mined or pending)"
                        ));
                        Ok(())
                    }
                    _ => Ok(()),
                };
            }
            Err(NodeError::Api { status: 404, .. }) => {
                return Err(Error::precondition(format!(
                    "no account {name} at {mount}/"
                )));
            }
            Err(e) => last = Some((addr.clone(), e)),
        }
    }
    let (addr, e) = last.expect("at least one address");
    Err(node_error(
        &format!("reading {mount}/accounts/{name} (last tried {addr})"),
        e,
    ))
}

/// Whether the mount signs, as far as the token may read its config (a reader's may not), and
/// the restore fences left in its storage.
struct SigningView {
    state: Option<(Signing, Value)>,
    fences: Vec<String>,
}

async fn signing_of(vault: &Vault, addr: &Addr, mount: &str) -> SigningView {
    let state = vault
        .signer(mount)
        .config(addr)
        .await
        .ok()
        .map(|c| (Signing::of_config(&c), c));
    let fences = vault.signer(mount).fences(addr).await.unwrap_or_default();
    SigningView { state, fences }
}

impl SigningView {
    fn text(&self, mount: &str) -> String {
        let mut text = match &self.state {
            Some((s, _)) => format!("{:<16}{}", "Signing:", s.describe(mount)),
            None => format!(
                "{:<16}- (this token may not read {}/config; an operator's token shows whether \
                 the mount is frozen)",
                "Signing:",
                crate::ui::escape(mount)
            ),
        };
        if let Some(line) = crate::flows::freeze::leftover_fences(mount, &self.fences) {
            text.push('\n');
            text.push_str(&format!("{:<16}{line}", "Restore fence:"));
        }
        text
    }
}

/// The chain's view of an account beside the plugin's.
struct ChainView {
    /// The RPCs read, redacted.
    rpcs: Vec<String>,
    chain_id: u64,
    /// The block the mined nonce and the balance were read at (every RPC has it).
    block: u64,
    /// The mount's chain id, when the token may read the mount's config.
    mount_chain_id: Option<u64>,
    mined: u64,
    pending: u64,
    balance_wei: String,
    plugin_next: u64,
    standing: Standing,
}

impl ChainView {
    fn text(&self) -> String {
        let standing = match self.standing {
            Standing::Even => "even: the plugin signs the nonce the chain expects next".to_owned(),
            Standing::Behind(by) => {
                format!("BEHIND by {by}: the plugin would sign a nonce the chain has")
            }
            Standing::Ahead(by) => format!("ahead by {by}: signed, not on the chain"),
        };
        [
            ("RPC", self.rpcs.join(", ")),
            ("Chain", self.chain_id.to_string()),
            ("At block", self.block.to_string()),
            ("Mined nonce", self.mined.to_string()),
            ("Pending nonce", self.pending.to_string()),
            ("Balance wei", self.balance_wei.clone()),
            ("Plugin vs chain", standing),
        ]
        .iter()
        .map(|(k, v)| format!("{:<16}{v}", format!("{k}:")))
        .collect::<Vec<_>>()
        .join("\n")
    }

    fn json(&self) -> Value {
        let (standing, by) = match self.standing {
            Standing::Even => ("even", 0),
            Standing::Behind(by) => ("behind", by),
            Standing::Ahead(by) => ("ahead", by),
        };
        json!({
            "rpc": self.rpcs,
            "chain_id": self.chain_id,
            "block_number": self.block,
            "mount_chain_id": self.mount_chain_id,
            "mined_nonce": self.mined,
            "pending_nonce": self.pending,
            "balance_wei": self.balance_wei,
            "plugin_next_nonce": self.plugin_next,
            "standing": standing,
            "by": by,
        })
    }
}

/// Reads the chain's nonces and balance for the account, the same at every RPC (the mined
/// nonce and the balance at their common block; the highest pending nonce); a chain other than
/// the mount's (when the token may read the mount's config) is exit 3.
async fn chain_view(
    vault: &Vault,
    addr: &Addr,
    mount: &str,
    account: &Value,
    rpc: &Rpcs,
) -> Result<ChainView> {
    let address = account["address"].as_str().unwrap_or_default();
    // A reader token may not read the mount's config: then the chain id is shown, not checked.
    let mount_chain_id = vault
        .signer(mount)
        .config(addr)
        .await
        .ok()
        .and_then(|c| c["chain_id"].as_u64());
    let chain_id = match mount_chain_id {
        Some(_) => rpc.expect_chain(mount, mount_chain_id).await?,
        None => rpc.chain_id().await?,
    };
    let plugin_next = account["next_nonce"].as_u64().unwrap_or_default();
    let nonces = rpc.nonces(address).await?;
    Ok(ChainView {
        rpcs: rpc.shown(),
        chain_id,
        block: nonces.block,
        mount_chain_id,
        mined: nonces.mined,
        pending: nonces.pending,
        balance_wei: rpc.balance_at(address, nonces.block).await?,
        plugin_next,
        standing: standing(plugin_next, nonces.pending),
    })
}

/// `wallet show`'s line for the plugin binary's sha256, or why it is not shown.
fn plugin_sha_line(sha: Option<&str>, mount: &str) -> String {
    match sha {
        Some(sha) => format!("{:<16}{}", "Plugin sha256:", crate::ui::escape(sha)),
        None => format!(
            "{:<16}- (this token may not read sys/mounts/{}; an operator's token shows it)",
            "Plugin sha256:",
            crate::ui::escape(mount)
        ),
    }
}

fn show_text(a: &Value) -> String {
    let list = |v: &Value| {
        v.as_array()
            .map(|x| {
                x.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "-".into())
    };
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    let has = |k: &str| a[k].as_array().is_some_and(|x| !x.is_empty());
    let transactions = if a["unrestricted"] == true {
        "any (unrestricted)"
    } else if has("allowed_to") || has("allowed_calls") {
        "its allow-list only"
    } else {
        "none (no allow-list: bind it to its contract)"
    };
    [
        ("Account", text(&a["name"])),
        ("Address", text(&a["address"])),
        ("Next nonce", text(&a["next_nonce"])),
        ("Transactions", transactions.to_owned()),
        ("Allowed to", list(&a["allowed_to"])),
        ("Allowed calls", list(&a["allowed_calls"])),
        ("Max value wei", text(&a["max_value_wei"])),
        ("Max fee per gas", text(&a["max_fee_per_gas_wei"])),
        ("Max gas", text(&a["max_gas"])),
        ("Sign message", text(&a["allow_sign_message"])),
        ("Sign typed data", text(&a["allow_sign_typed_data"])),
        ("Deletable", text(&a["deletable"])),
    ]
    .iter()
    .map(|(k, v)| format!("{:<16}{}", format!("{k}:"), crate::ui::escape(v)))
    .collect::<Vec<_>>()
    .join("\n")
}

#[cfg(test)]
mod tests {
    use super::plugin_sha_line;

    #[test]
    fn the_plugin_sha_line_names_the_binary_or_says_why_not() {
        let sha = "ab".repeat(32);
        assert_eq!(
            plugin_sha_line(Some(&sha), "ethereum"),
            format!("Plugin sha256:  {sha}")
        );
        let none = plugin_sha_line(None, "ethereum");
        assert!(none.starts_with("Plugin sha256:  - "), "{none}");
        assert!(none.contains("sys/mounts/ethereum"), "{none}");
    }
}
