//! `custody plugin install`: registers the signer in the catalog by the sha256 of the binary
//! that sits in every node's plugin_directory, mounts it, checks the mount answers, and tunes it
//! so the audit log shows what accounts for each signature in clear. A cluster without an audit
//! device is refused first (`--accept-no-audit` lets it through, recorded).

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::error::{Context as _, Error, Kind, Result};
use crate::flows::audit::{self, AuditFact};
use crate::flows::{Ctx, active_node, node_error};
use crate::transcript::Step;
use crate::vault::{Addr, NodeError, Vault};

pub struct InstallPlan {
    pub plugin_bin: PathBuf,
    pub name: String,
    pub mount: String,
    pub upgrade: bool,
    pub accept_no_audit: bool,
}

/// What a successful install reports.
#[derive(Debug, serde::Serialize)]
pub struct Installed {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub mount: String,
    pub registered: bool,
    pub mounted: bool,
    pub upgraded: bool,
    /// The cluster's audit devices, read before anything was changed.
    pub audit: AuditFact,
    /// The fields the mount logs in clear (`audit_non_hmac_request_keys`, `…_response_keys`).
    pub audit_clear_keys: Value,
}

async fn catalog_entries(vault: &Vault, addr: &Addr, name: &str) -> Result<Vec<Value>> {
    vault
        .secret_plugin_entries(addr, name)
        .await
        .map_err(|e| node_error("reading the plugin catalog", e))
}

pub async fn install(ctx: &Ctx, plan: &InstallPlan) -> Result<()> {
    let done = install_quiet(ctx, plan).await?;
    let text = format!(
        "Plugin {} {} (sha256 {}) {} and mounted at {}/{}.",
        done.name,
        crate::ui::escape(&done.version),
        done.sha256,
        if done.upgraded {
            "upgraded"
        } else if done.registered {
            "registered"
        } else {
            "already registered"
        },
        done.mount,
        if done.mounted { "" } else { " (already)" },
    );
    let text = format!(
        "{text}\nAudit devices: {}\nIn clear in the audit log: request {}, response {}",
        audit::describe_all(&done.audit.devices),
        keys(&done.audit_clear_keys["request"]),
        keys(&done.audit_clear_keys["response"]),
    );
    if done.audit.accepted_no_audit {
        ctx.ui.warn(format!(
            "the cluster has no audit device: nothing records who signs what with the Authority \
             (accepted with {}, recorded)",
            audit::ACCEPT_FLAG
        ));
    }
    ctx.ui.result(&text, json!({ "plugin": done }));
    Ok(())
}

pub async fn install_quiet(ctx: &Ctx, plan: &InstallPlan) -> Result<Installed> {
    ctx.require_token("plugin install (a root token from the quorum)")?;
    let binary = check_binary(plan)?;
    let vault = ctx.vault()?;
    let addr = active_node(&vault, ctx.require_addrs()?).await?;
    let audit = audit::require(&vault, &addr, "plugin install", plan.accept_no_audit).await?;
    let step = Install {
        vault: &vault,
        addr: &addr,
        plan,
    };
    let registered = step.register(&binary).await?;
    let version = step.registered_version(&binary.sha256).await?;
    let (mounted, upgraded) = step.mount(&binary.sha256, registered, &version).await?;
    // The mount answers through the plugin.
    vault
        .signer(&plan.mount)
        .config(&addr)
        .await
        .map_err(|e| node_error(&format!("the plugin at {}/ does not answer", plan.mount), e))?;
    let audit_clear_keys = tune_audit(&vault, &addr, &plan.mount).await?;

    let done = Installed {
        name: plan.name.clone(),
        version,
        sha256: binary.sha256,
        mount: plan.mount.clone(),
        registered,
        mounted,
        upgraded,
        audit,
        audit_clear_keys,
    };
    ctx.transcript.append(Step::new(
        "configure",
        "plugin-install",
        "operator",
        serde_json::to_value(&done).unwrap_or_default(),
    ))?;
    Ok(done)
}

/// Tunes the mount so the audit log shows in clear what accounts for a signature (the account
/// is in the path; `to`, `nonce`, `chain_id` of the request; `tx_hash`, `nonce`, `from` of the
/// answer), and checks the tuning took: the keys it logs in clear.
async fn tune_audit(vault: &Vault, addr: &Addr, mount: &str) -> Result<Value> {
    vault
        .tune_signer_audit_keys(addr, mount)
        .await
        .map_err(|e| {
            node_error(
                &format!("tuning {mount}/ to log the signatures' accounting fields in clear"),
                e,
            )
        })?;
    let tune = vault
        .mount_tune(addr, mount)
        .await
        .map_err(|e| node_error(&format!("reading {mount}/'s tuning back"), e))?;
    let hashed = crate::vault::audit::signer_keys_hashed(&tune);
    if !hashed.is_empty() {
        return Err(Error::failed(format!(
            "{mount}/ still hashes {} in the audit log after it was tuned",
            hashed.join(", ")
        )));
    }
    Ok(json!({
        "request": tune["audit_non_hmac_request_keys"],
        "response": tune["audit_non_hmac_response_keys"],
    }))
}

fn keys(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(crate::ui::escape)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// The binary the nodes will run, as the catalog names it: its file name and sha256.
struct Binary {
    command: String,
    sha256: String,
}

/// The names are path segments, and the binary is an executable file custody can hash.
fn check_binary(plan: &InstallPlan) -> Result<Binary> {
    for (flag, value) in [("--name", &plan.name), ("--mount", &plan.mount)] {
        if !crate::vault::valid_path_segment(value) {
            return Err(Error::usage(format!(
                "{flag} {value:?}: letters, digits, - and _ only"
            )));
        }
    }
    let shown = plan.plugin_bin.display();
    let command = plan
        .plugin_bin
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::usage(format!("--plugin-bin {shown}: not a file name")))?
        .to_owned();
    let unreadable = format!("--plugin-bin {shown}: cannot read it");
    let mode = std::fs::metadata(&plan.plugin_bin)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()))
        .with_kind(Kind::Usage, &unreadable)?;
    if mode & 0o111 == 0 {
        return Err(Error::precondition(format!(
            "--plugin-bin {shown}: not executable (mode {:o}); the server could not run it. \
             Install it with mode 0755 in every node's plugin_directory",
            mode & 0o7777
        )));
    }
    let sha256 = crate::digest::sha256_file(&plan.plugin_bin).with_kind(Kind::Usage, unreadable)?;
    Ok(Binary { command, sha256 })
}

/// The install's steps on the active node.
struct Install<'a> {
    vault: &'a Vault,
    addr: &'a Addr,
    plan: &'a InstallPlan,
}

impl Install<'_> {
    /// Registers the binary unless the catalog has it; another binary under the name needs
    /// --upgrade. Whether it registered.
    async fn register(&self, binary: &Binary) -> Result<bool> {
        let (plan, sha256) = (self.plan, &binary.sha256);
        let existing = catalog_entries(self.vault, self.addr, &plan.name).await?;
        if existing.iter().any(|e| e["sha256"] == sha256.as_str()) {
            return Ok(false);
        }
        if let Some(o) = existing.first()
            && !plan.upgrade
        {
            return Err(Error::precondition(format!(
                "{} is registered with another binary (version {}, sha256 {}); this one has sha256 {sha256}. \
                 Nothing was changed: give --upgrade to replace it and reload the mount",
                plan.name,
                o["version"].as_str().unwrap_or("-"),
                o["sha256"].as_str().unwrap_or("-")
            )));
        }
        self.vault
            .register_secret_plugin(self.addr, &plan.name, sha256, &binary.command)
            .await
            .map_err(|e| {
                node_error(
                    "registering the plugin (is the binary in every node's plugin_directory?)",
                    e,
                )
            })?;
        Ok(true)
    }

    /// The version the catalog lists for the binary.
    async fn registered_version(&self, sha256: &str) -> Result<String> {
        catalog_entries(self.vault, self.addr, &self.plan.name)
            .await?
            .iter()
            .find(|e| e["sha256"] == sha256)
            .and_then(|e| e["version"].as_str().map(str::to_owned))
            .ok_or_else(|| Error::failed("the catalog does not list the binary just registered"))
    }

    /// Mounts the plugin, or (with --upgrade) points an existing mount at the binary and
    /// reloads it. (mounted, upgraded).
    async fn mount(&self, sha256: &str, registered: bool, version: &str) -> Result<(bool, bool)> {
        let (vault, addr, plan) = (self.vault, self.addr, self.plan);
        let data = match vault.mount_info(addr, &plan.mount).await {
            Ok(data) => data,
            Err(NodeError::Api {
                status: 400 | 404, ..
            }) => {
                vault
                    .enable_mount(addr, &plan.mount, &plan.name, version)
                    .await
                    .map_err(|e| {
                        node_error(&format!("mounting {} at {}/", plan.name, plan.mount), e)
                    })?;
                return Ok((true, false));
            }
            Err(e) => return Err(node_error("reading the mount", e)),
        };
        if data["type"] != plan.name.as_str() {
            return Err(Error::precondition(format!(
                "{}/ is already a mount of type {}, not {}",
                plan.mount, data["type"], plan.name
            )));
        }
        let running = data["running_sha256"].as_str().unwrap_or("");
        let upgraded = (registered && plan.upgrade) || (!running.is_empty() && running != sha256);
        if !upgraded {
            return Ok((false, false));
        }
        if !plan.upgrade {
            return Err(Error::precondition(format!(
                "{}/ runs a binary with sha256 {running}; give --upgrade to reload it with {sha256}",
                plan.mount
            )));
        }
        let configured = data["plugin_version"].as_str().unwrap_or("");
        if !version.is_empty() && version != configured {
            vault
                .tune_plugin_version(addr, &plan.mount, version)
                .await
                .map_err(|e| {
                    node_error(
                        &format!("pointing the mount at version {version:?} (was {configured:?})"),
                        e,
                    )
                })?;
        }
        vault
            .reload_mount(addr, &plan.mount)
            .await
            .map_err(|e| node_error("reloading the mount", e))?;
        Ok((false, true))
    }
}
