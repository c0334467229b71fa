//! `custody plugin install`: registers the signer in the catalog by the sha256 of the binary
//! that sits in every node's plugin_directory, mounts it, and checks the mount answers.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::flows::{Ctx, active_node, node_error};
use crate::transcript::Step;
use crate::vault::{Addr, NodeError, Vault};

pub struct InstallPlan {
    pub plugin_bin: PathBuf,
    pub name: String,
    pub mount: String,
    pub upgrade: bool,
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
        done.version,
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
    ctx.ui.result(&text, json!({ "plugin": done }));
    Ok(())
}

pub async fn install_quiet(ctx: &Ctx, plan: &InstallPlan) -> Result<Installed> {
    ctx.require_token("plugin install (a root token from the quorum)")?;
    if !crate::vault::valid_path_segment(&plan.name) {
        return Err(Error::usage(format!(
            "--name {:?}: letters, digits, - and _ only",
            plan.name
        )));
    }
    if !crate::vault::valid_path_segment(&plan.mount) {
        return Err(Error::usage(format!(
            "--mount {:?}: letters, digits, - and _ only",
            plan.mount
        )));
    }
    let command = plan
        .plugin_bin
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| {
            Error::usage(format!(
                "--plugin-bin {}: not a file name",
                plan.plugin_bin.display()
            ))
        })?
        .to_owned();
    let mode = std::fs::metadata(&plan.plugin_bin)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()))
        .map_err(|e| {
            Error::usage(format!(
                "--plugin-bin {}: cannot read it: {e}",
                plan.plugin_bin.display()
            ))
        })?;
    if mode & 0o111 == 0 {
        return Err(Error::precondition(format!(
            "--plugin-bin {}: not executable (mode {:o}); the server could not run it. \
             Install it with mode 0755 in every node's plugin_directory",
            plan.plugin_bin.display(),
            mode & 0o7777
        )));
    }
    let sha256 = crate::digest::sha256_file(&plan.plugin_bin).map_err(|e| {
        Error::usage(format!(
            "--plugin-bin {}: cannot read it: {e}",
            plan.plugin_bin.display()
        ))
    })?;
    let vault = ctx.vault()?;
    let addr = active_node(&vault, ctx.require_addrs()?).await?;

    let existing = catalog_entries(&vault, &addr, &plan.name).await?;
    let same = existing.iter().any(|e| e["sha256"] == sha256.as_str());
    let others: Vec<&Value> = existing
        .iter()
        .filter(|e| e["sha256"] != sha256.as_str())
        .collect();
    if !same && !others.is_empty() && !plan.upgrade {
        let o = others[0];
        return Err(Error::precondition(format!(
            "{} is registered with another binary (version {}, sha256 {}); this one has sha256 {sha256}. \
             Nothing was changed: give --upgrade to replace it and reload the mount",
            plan.name,
            o["version"].as_str().unwrap_or("-"),
            o["sha256"].as_str().unwrap_or("-")
        )));
    }
    let mut registered = false;
    if !same {
        vault
            .register_secret_plugin(&addr, &plan.name, &sha256, &command)
            .await
            .map_err(|e| {
                node_error(
                    "registering the plugin (is the binary in every node's plugin_directory?)",
                    e,
                )
            })?;
        registered = true;
    }
    let version = catalog_entries(&vault, &addr, &plan.name)
        .await?
        .iter()
        .find(|e| e["sha256"] == sha256.as_str())
        .and_then(|e| e["version"].as_str().map(str::to_owned))
        .ok_or_else(|| Error::failed("the catalog does not list the binary just registered"))?;

    let (mounted, upgraded) = match vault.mount_info(&addr, &plan.mount).await {
        Ok(data) => {
            if data["type"] != plan.name.as_str() {
                return Err(Error::precondition(format!(
                    "{}/ is already a mount of type {}, not {}",
                    plan.mount, data["type"], plan.name
                )));
            }
            let running = data["running_sha256"].as_str().unwrap_or("");
            let upgraded = registered && plan.upgrade;
            if upgraded || (!running.is_empty() && running != sha256) {
                if !plan.upgrade {
                    return Err(Error::precondition(format!(
                        "{}/ runs a binary with sha256 {running}; give --upgrade to reload it with {sha256}",
                        plan.mount
                    )));
                }
                let configured = data["plugin_version"].as_str().unwrap_or("");
                if !version.is_empty() && version != configured {
                    vault
                        .tune_plugin_version(&addr, &plan.mount, &version)
                        .await
                        .map_err(|e| {
                            node_error(
                                &format!(
                                    "pointing the mount at version {version:?} (was {configured:?})"
                                ),
                                e,
                            )
                        })?;
                }
                vault
                    .reload_mount(&addr, &plan.mount)
                    .await
                    .map_err(|e| node_error("reloading the mount", e))?;
            }
            (
                false,
                upgraded || (!running.is_empty() && running != sha256),
            )
        }
        Err(NodeError::Api {
            status: 400 | 404, ..
        }) => {
            vault
                .enable_mount(&addr, &plan.mount, &plan.name, &version)
                .await
                .map_err(|e| {
                    node_error(&format!("mounting {} at {}/", plan.name, plan.mount), e)
                })?;
            (true, false)
        }
        Err(e) => return Err(node_error("reading the mount", e)),
    };
    // The mount answers through the plugin.
    vault
        .signer(&plan.mount)
        .config(&addr)
        .await
        .map_err(|e| node_error(&format!("the plugin at {}/ does not answer", plan.mount), e))?;

    let done = Installed {
        name: plan.name.clone(),
        version,
        sha256,
        mount: plan.mount.clone(),
        registered,
        mounted,
        upgraded,
    };
    ctx.transcript.append(Step::new(
        "configure",
        "plugin-install",
        "operator",
        serde_json::to_value(&done).unwrap_or_default(),
    ))?;
    Ok(done)
}
