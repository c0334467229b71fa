//! What every node says about itself: seal state, quorum progress, HA role, version.

use serde::Serialize;

use super::context::on_each_node;
use crate::vault::{Addr, HaRole, Vault};

#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub addr: String,
    pub reachable: bool,
    pub error: Option<String>,
    pub initialized: bool,
    pub sealed: bool,
    pub threshold: u32,
    pub shares: u32,
    pub progress: u32,
    pub ha_role: Option<HaRole>,
    pub version: String,
    pub cluster_id: String,
    pub cluster_name: String,
}

pub async fn node_status(vault: &Vault, addr: &Addr) -> NodeStatus {
    let mut s = NodeStatus {
        addr: addr.to_string(),
        reachable: false,
        error: None,
        initialized: false,
        sealed: true,
        threshold: 0,
        shares: 0,
        progress: 0,
        ha_role: None,
        version: String::new(),
        cluster_id: String::new(),
        cluster_name: String::new(),
    };
    match vault.seal_status(addr).await {
        Ok(ss) => {
            s.reachable = true;
            s.initialized = ss.initialized;
            s.sealed = ss.sealed;
            s.threshold = ss.t;
            s.shares = ss.n;
            s.progress = ss.progress;
            s.version = ss.version;
            s.cluster_id = ss.cluster_id;
            s.cluster_name = ss.cluster_name;
        }
        Err(e) => {
            s.error = Some(e.to_string());
            return s;
        }
    }
    match vault.health(addr).await {
        Ok((role, h)) => {
            s.ha_role = Some(role);
            if s.cluster_id.is_empty() {
                s.cluster_id = h.cluster_id;
            }
            if s.cluster_name.is_empty() {
                s.cluster_name = h.cluster_name;
            }
        }
        Err(e) => s.error = Some(format!("health: {e}")),
    }
    s
}

pub async fn all_status(vault: &Vault, addrs: &[Addr]) -> Vec<NodeStatus> {
    let v = vault.clone();
    on_each_node(addrs, move |a| {
        let v = v.clone();
        async move { node_status(&v, &a).await }
    })
    .await
}

pub fn table(nodes: &[NodeStatus]) -> String {
    let mut rows = vec![[
        "NODE".to_owned(),
        "REACHABLE".to_owned(),
        "INIT".to_owned(),
        "SEALED".to_owned(),
        "QUORUM".to_owned(),
        "ROLE".to_owned(),
        "VERSION".to_owned(),
        "CLUSTER ID".to_owned(),
    ]];
    for n in nodes {
        let yn = |b: bool| if b { "yes" } else { "no" }.to_owned();
        if !n.reachable {
            rows.push([
                n.addr.clone(),
                "no".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
            continue;
        }
        let quorum = if n.initialized {
            format!("{}/{} of {}", n.progress, n.threshold, n.shares)
        } else {
            "-".into()
        };
        rows.push([
            n.addr.clone(),
            "yes".into(),
            yn(n.initialized),
            yn(n.sealed),
            quorum,
            n.ha_role.map(HaRole::as_str).unwrap_or("?").to_owned(),
            n.version.clone(),
            if n.cluster_id.is_empty() {
                "-".into()
            } else {
                n.cluster_id.clone()
            },
        ]);
    }
    let widths: Vec<usize> = (0..8)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    for n in nodes.iter().filter(|n| n.error.is_some()) {
        out.push_str(&format!(
            "{}: {}\n",
            n.addr,
            n.error.as_deref().unwrap_or("")
        ));
    }
    out
}
