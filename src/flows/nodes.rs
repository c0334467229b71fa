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

/// The nodes that answer as active (by index). More than one: a deposed leader still answers.
pub fn claiming_active(nodes: &[NodeStatus]) -> Vec<usize> {
    nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.ha_role == Some(HaRole::Active))
        .map(|(i, _)| i)
        .collect()
}

pub async fn all_status(vault: &Vault, addrs: &[Addr]) -> Vec<NodeStatus> {
    let v = vault.clone();
    on_each_node(addrs, move |a| {
        let v = v.clone();
        async move { node_status(&v, &a).await }
    })
    .await
}

/// The nodes are one cluster as far as they show it: every initialized node split the same way
/// (shares and threshold; a sealed node shows no more), and every node that shows a cluster id
/// shows the same one. Else a precondition error naming the odd ones: no share may go to a node
/// of another cluster.
pub fn one_cluster(nodes: &[NodeStatus]) -> crate::error::Result<()> {
    let shown = |n: &NodeStatus| n.reachable && n.initialized;
    let mut differ = Vec::new();
    if let Some(first) = nodes.iter().find(|n| shown(n)) {
        for n in nodes.iter().filter(|n| shown(n)) {
            if (n.shares, n.threshold) != (first.shares, first.threshold) {
                differ.push(format!(
                    "{} is split {} of {}, {} {} of {}",
                    n.addr, n.threshold, n.shares, first.addr, first.threshold, first.shares
                ));
            }
        }
    }
    let ids = nodes
        .iter()
        .filter(|n| shown(n) && !n.cluster_id.is_empty());
    if let Some(first) = ids.clone().next() {
        for n in ids.filter(|n| n.cluster_id != first.cluster_id) {
            differ.push(format!(
                "{} belongs to cluster {}, {} to {}",
                n.addr,
                crate::ui::escape(&n.cluster_id),
                first.addr,
                crate::ui::escape(&first.cluster_id)
            ));
        }
    }
    if differ.is_empty() {
        return Ok(());
    }
    Err(crate::error::Error::precondition(format!(
        "the --addr nodes are not one cluster: {}; no share was sent",
        differ.join("; ")
    ))
    .hint("give the nodes of one cluster only (custody status shows each node's cluster)"))
}

/// The nodes as a table; what the servers said (versions, cluster ids, errors) shown escaped.
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
            crate::ui::escape(&n.version),
            if n.cluster_id.is_empty() {
                "-".into()
            } else {
                crate::ui::escape(&n.cluster_id)
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
            crate::ui::escape(n.error.as_deref().unwrap_or(""))
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(addr: &str, shape: (u32, u32), cluster_id: &str) -> NodeStatus {
        NodeStatus {
            addr: addr.into(),
            reachable: true,
            error: None,
            initialized: shape.0 > 0,
            sealed: cluster_id.is_empty(),
            threshold: shape.1,
            shares: shape.0,
            progress: 0,
            ha_role: None,
            version: String::new(),
            cluster_id: cluster_id.into(),
            cluster_name: String::new(),
        }
    }

    #[test]
    fn a_deposed_leader_still_answering_is_a_second_claimant() {
        let mut nodes = vec![
            node("a", (5, 3), "c1"),
            node("b", (5, 3), "c1"),
            node("c", (5, 3), "c1"),
        ];
        nodes[1].ha_role = Some(HaRole::Active);
        nodes[2].ha_role = Some(HaRole::Standby);
        assert_eq!(claiming_active(&nodes), vec![1]);
        nodes[0].ha_role = Some(HaRole::Active);
        assert_eq!(claiming_active(&nodes), vec![0, 1]);
    }

    #[test]
    fn nodes_of_two_clusters_are_told_apart() {
        let a = node("a", (5, 3), "c1");
        assert!(one_cluster(&[a.clone(), node("b", (5, 3), ""), node("c", (0, 0), "")]).is_ok());
        let shape = one_cluster(&[a.clone(), node("b", (3, 2), "")]).unwrap_err();
        assert!(shape.message.contains("b is split 2 of 3"), "{shape}");
        assert_eq!(shape.kind.exit_code(), 4);
        let id = one_cluster(&[a, node("b", (5, 3), "c2")]).unwrap_err();
        assert!(id.message.contains("b belongs to cluster c2"), "{id}");
    }
}
