//! What every command and flow works with: the context (terminal, nodes, trust anchor, record,
//! token), the active node, running on every node at once, and a server refusal as custody's
//! error.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::GlobalArgs;
use crate::error::{Error, Result};
use crate::secret::SecretString;
use crate::transcript::Transcript;
use crate::ui::Ui;
use crate::vault::{Addr, Vault};

/// What every command gets: the terminal, the nodes, the trust anchor, the record, the token.
pub struct Ctx {
    pub ui: Ui,
    pub addrs: Vec<Addr>,
    pub ca_cert: Option<PathBuf>,
    pub transcript: Transcript,
    pub token: Option<SecretString>,
}

impl Ctx {
    pub fn from_global(g: &GlobalArgs) -> Result<Ctx> {
        let ui = Ui::new(g.format, g.yes);
        let raw = if g.addr.is_empty() {
            crate::config::default_addrs()?
        } else {
            g.addr.clone()
        };
        let addrs = parse_addrs(&raw)?;
        let ca_cert = match &g.ca_cert {
            Some(p) => Some(p.clone()),
            None => crate::config::default_ca_cert()?,
        };
        let token = match &g.token_file {
            Some(p) => Some(super::files::read_token(p, "--token-file")?),
            None => crate::config::env_token()?,
        };
        Ok(Ctx {
            ui,
            addrs,
            ca_cert,
            transcript: Transcript::at(&g.transcript),
            token,
        })
    }

    pub fn require_addrs(&self) -> Result<&[Addr]> {
        if self.addrs.is_empty() {
            return Err(Error::usage(
                "no node address: pass --addr URL (once per node) or set VAULT_ADDR/BAO_ADDR",
            ));
        }
        Ok(&self.addrs)
    }

    pub fn vault(&self) -> Result<Vault> {
        Vault::new(self.ca_cert.as_deref(), self.token.clone())
    }
}

pub fn parse_addrs(raw: &[String]) -> Result<Vec<Addr>> {
    let mut addrs: Vec<Addr> = Vec::new();
    for a in raw {
        let addr = Addr::parse(a)?;
        if addrs.contains(&addr) {
            return Err(Error::usage(format!("--addr {addr} is given twice")));
        }
        addrs.push(addr);
    }
    Ok(addrs)
}

/// Runs `f` against every node at once; results come back in the nodes' order.
pub async fn on_each_node<T, F, Fut>(addrs: &[Addr], f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(Addr) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for (i, a) in addrs.iter().enumerate() {
        let fut = f(a.clone());
        set.spawn(async move { (i, fut.await) });
    }
    let mut out: Vec<(usize, T)> = Vec::with_capacity(addrs.len());
    while let Some(r) = set.join_next().await {
        if let Ok(pair) = r {
            out.push(pair);
        }
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, t)| t).collect()
}

pub fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

impl Ctx {
    /// The token for commands that need one; a clear refusal naming where it comes from.
    pub fn require_token(&self, what: &str) -> Result<()> {
        if self.token.is_none() {
            return Err(Error::usage(format!(
                "{what} needs a token: set VAULT_TOKEN (or BAO_TOKEN), or give --token-file FILE"
            )));
        }
        Ok(())
    }

    /// The lines of this run's transcript, after checking its chain (none when it does not
    /// exist yet).
    pub fn recorded_lines(&self) -> Result<Vec<serde_json::Value>> {
        if !self.transcript.path().exists() {
            return Ok(Vec::new());
        }
        Ok(crate::transcript::read_verified(self.transcript.path())?.1)
    }
}

/// The node to send writes to: the active one, or else any unsealed standby (it forwards).
/// Refused (exit 4) while two nodes answer as active: one is a deposed leader, and what it
/// answers may be stale.
pub async fn active_node(vault: &Vault, addrs: &[Addr]) -> Result<Addr> {
    let nodes = super::nodes::all_status(vault, addrs).await;
    let claiming = super::nodes::claiming_active(&nodes);
    if claiming.len() > 1 {
        return Err(two_actives(vault, addrs, &claiming).await);
    }
    let pick = claiming.first().copied().or_else(|| {
        nodes
            .iter()
            .position(|n| n.reachable && n.initialized && !n.sealed)
    });
    match pick {
        Some(i) => Ok(addrs[i].clone()),
        None => Err(Error::precondition(format!(
            "no node is unsealed and reachable ({}); run custody status",
            nodes
                .iter()
                .map(|n| n.addr.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Two or more nodes answer `sys/health` as active: say what each node names as the leader.
async fn two_actives(vault: &Vault, addrs: &[Addr], claiming: &[usize]) -> Error {
    let mut views = Vec::new();
    for a in addrs {
        views.push(match vault.leader(a).await {
            Ok(l) if l.is_self => format!("{a} names itself"),
            Ok(l) => format!("{a} names {}", crate::ui::escape(&l.leader_address)),
            Err(e) => format!("{a}: {}", crate::ui::escape(&e.to_string())),
        });
    }
    let names: Vec<String> = claiming.iter().map(|i| addrs[*i].to_string()).collect();
    Error::precondition(format!(
        "{} all answer as the active node: all but one are leaders deposed by a partition or a \
         pause that have not stepped down (OpenBao 2.7.2 was seen doing so after such a fault \
         healed), and what a deposed leader answers may be stale, so custody sends nothing. \
         The leader each node names (sys/leader): {}",
        names.join(" and "),
        views.join("; ")
    ))
    .hint(
        "restart the node the others do not name (it comes back sealed: unseal it with the \
         quorum's shares), then run custody status until one node alone is active",
    )
}

/// A server refusal, as custody's error: 400 → usage (the input), 403 → precondition (the
/// token may not), other → failed.
pub fn node_error(what: &str, e: crate::vault::NodeError) -> Error {
    use crate::vault::NodeError;
    let kind = match &e {
        NodeError::Api { status: 400, .. } => crate::error::Kind::Usage,
        NodeError::Api { status: 403, .. } => crate::error::Kind::Precondition,
        NodeError::Unreachable(_) => crate::error::Kind::Precondition,
        _ => crate::error::Kind::Failed,
    };
    Error::new(kind, what).caused_by(e)
}
