//! Shares go only to the nodes of the cluster they belong to. Every `--addr` of a command that
//! sends shares (unseal, root generate, rotate-shares) must be a node the transcript records for
//! its cluster ([`Record`]: init's or the adoption's nodes, a snapshot restore's target, a node
//! vouched for earlier), or be vouched for now with `--new-node`, which is recorded just before
//! the first share is sent. Addresses compare in their canonical form (`vault::Addr`: scheme and
//! host in lower case, no default port, no trailing slash).

use serde_json::{Value, json};

use super::context::Ctx;
use super::recorded::{NODES, Record, STEP_NEW_NODE};
use crate::error::{Error, Result};
use crate::transcript::Step;
use crate::vault::Addr;

/// The transcript's record, read once, after every `--addr` passed the check.
pub struct Checked {
    pub record: Record,
    /// The transcript's lines, as checked.
    pub lines: Vec<Value>,
    /// The `--new-node` nodes the transcript does not record yet.
    new: Vec<Addr>,
}

/// Refuses (exit 4, naming them) the `--addr` nodes the transcript does not record for its
/// cluster and `--new-node` does not vouch for; `command` names the command in messages.
pub fn check(ctx: &Ctx, addrs: &[Addr], new_nodes: &[String], command: &str) -> Result<Checked> {
    let mut new: Vec<Addr> = Vec::new();
    for raw in new_nodes {
        let a = Addr::parse(raw).map_err(|e| e.doing("--new-node"))?;
        if !addrs.contains(&a) {
            return Err(Error::usage(format!(
                "--new-node {a} is not one of the nodes given with --addr: --new-node says which \
                 of them joined the cluster later; give it as --addr too"
            )));
        }
        if !new.contains(&a) {
            new.push(a);
        }
    }
    let lines = ctx.recorded_lines()?;
    let record = Record::read(&lines);
    let unknown: Vec<&Addr> = addrs
        .iter()
        .filter(|a| record.node(a).is_none() && !new.contains(a))
        .collect();
    if !unknown.is_empty() {
        return Err(refusal(ctx, &record, &unknown, command));
    }
    new.retain(|a| record.node(a).is_none());
    Ok(Checked { record, lines, new })
}

fn refusal(ctx: &Ctx, record: &Record, unknown: &[&Addr], command: &str) -> Error {
    let path = ctx.transcript.path().display();
    let names = unknown
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let vouch = format!(
        "if {} joined the cluster after its init, say so: --new-node URL for each (recorded in \
         the transcript before any share is sent)",
        if unknown.len() == 1 { "it" } else { "they" }
    );
    if record.nodes.is_empty() {
        let why = if ctx.transcript.path().exists() {
            "records no init, adoption or snapshot restore of a cluster"
        } else {
            "does not exist"
        };
        return Error::precondition(format!(
            "{command}: the transcript {path} {why}, so custody cannot tell whether {names} \
             belong to the cluster the shares open; nothing was sent"
        ))
        .hint(format!(
            "give the transcript of the cluster's init with --transcript FILE; a cluster \
             initialized without custody is recorded by `custody adopt`; {vouch}"
        ));
    }
    let recorded = record
        .nodes
        .iter()
        .map(|n| format!("{} ({}, line {})", n.addr, n.how, n.line))
        .collect::<Vec<_>>()
        .join(", ");
    Error::precondition(format!(
        "{command}: {names} {} not a node the transcript {path} records for this cluster; it \
         records {recorded}. A share sent to another cluster's node is given away, and can \
         poison that node's progress; nothing was sent",
        if unknown.len() == 1 { "is" } else { "are" }
    ))
    .hint(format!("check the address; {vouch}"))
}

impl Checked {
    /// Records the nodes `--new-node` vouched for that the transcript did not know (a line of
    /// their own), just before the first share is sent to them.
    pub fn record_new_nodes(&self, ctx: &Ctx, command: &str) -> Result<()> {
        if self.new.is_empty() {
            return Ok(());
        }
        let nodes: Vec<String> = self.new.iter().map(|a| a.to_string()).collect();
        ctx.transcript.append(Step::new(
            NODES,
            STEP_NEW_NODE,
            "operator",
            json!({ "nodes": nodes, "command": command }),
        ))?;
        ctx.ui.status(format!(
            "Recorded {} as {} of this cluster that joined after its init (--new-node).",
            nodes.join(", "),
            if nodes.len() == 1 { "a node" } else { "nodes" }
        ));
        Ok(())
    }
}
