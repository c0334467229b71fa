//! One module per command. Each validates its whole plan before any side effect.

pub mod ceremony;
pub mod cutover;
pub mod docs;
pub mod init;
pub mod plugin;
mod raft_peers;
pub mod rehearse;
pub mod root;
pub mod snapshot;
pub mod status;
pub mod transcript;
pub mod unseal;
pub mod wallet;

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{
    CeremonyCommand, Cli, Command, GlobalArgs, PluginCommand, RootCommand, SnapshotCommand,
    TranscriptCommand, WalletCommand,
};
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
            Some(p) => Some(read_token_file(p)?),
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

fn read_token_file(path: &std::path::Path) -> Result<SecretString> {
    let meta = std::fs::metadata(path).map_err(|e| {
        Error::usage(format!(
            "--token-file {}: cannot read it: {e}",
            path.display()
        ))
    })?;
    if meta.len() > 16 * 1024 {
        return Err(Error::usage(format!(
            "--token-file {}: too large for a token",
            path.display()
        )));
    }
    let raw = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        Error::usage(format!(
            "--token-file {}: cannot read it: {e}",
            path.display()
        ))
    })?);
    let token = raw.trim();
    if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::usage(format!(
            "--token-file {}: does not hold one token",
            path.display()
        )));
    }
    Ok(SecretString::new(token.to_owned()))
}

pub async fn run(cli: Cli) -> Result<()> {
    let ctx = Ctx::from_global(&cli.global)?;
    match cli.command {
        Command::Status => status::run(&ctx).await,
        Command::Init(args) => init::run(&ctx, &args).await,
        Command::Unseal(args) => unseal::run(&ctx, &args).await,
        Command::Root(RootCommand::CeremonyToken { pgp_key, out }) => {
            root::ceremony_token(&ctx, &pgp_key, &out).await
        }
        Command::Root(RootCommand::Generate(args)) => root::generate(&ctx, &args).await,
        Command::Root(RootCommand::Revoke) => root::revoke(&ctx).await,
        Command::Plugin(PluginCommand::Install {
            plugin_bin,
            name,
            mount,
            upgrade,
        }) => {
            plugin::install(
                &ctx,
                &plugin::InstallPlan {
                    plugin_bin,
                    name,
                    mount,
                    upgrade,
                },
            )
            .await
        }
        Command::Wallet(WalletCommand::Create(args)) => wallet::create(&ctx, &args).await,
        Command::Wallet(WalletCommand::Show { name, mount }) => {
            wallet::show(&ctx, &name, &mount).await
        }
        Command::Snapshot(SnapshotCommand::Save { out, mount }) => {
            snapshot::save(&ctx, &out, &mount).await
        }
        Command::Snapshot(SnapshotCommand::Verify(args)) => snapshot::verify(&ctx, &args).await,
        Command::Snapshot(SnapshotCommand::Restore {
            file,
            force,
            peer_wait,
        }) => snapshot::restore(&ctx, &file, force, Duration::from_secs(peer_wait)).await,
        Command::Cutover(args) => cutover::run(&ctx, &args).await,
        Command::Ceremony(CeremonyCommand::List) => ceremony::list(&ctx),
        Command::Ceremony(CeremonyCommand::Show { name }) => ceremony::show(&ctx, &name),
        Command::Ceremony(CeremonyCommand::Run {
            name,
            params,
            dry_run,
            state,
        }) => ceremony::run(&ctx, &cli.global, &name, &params, dry_run, state.as_deref()),
        Command::Transcript(TranscriptCommand::Verify { file, certs }) => {
            transcript::verify(&ctx, &file, certs.as_deref())
        }
        Command::Transcript(TranscriptCommand::Sign {
            secret_key,
            passphrase_file,
        }) => transcript::sign(&ctx, &secret_key, passphrase_file.as_deref()),
        Command::Man { out } => {
            let names = docs::write_man(&out)?;
            ctx.ui.result(
                &format!("{} man pages written to {}", names.len(), out.display()),
                serde_json::json!({ "pages": names }),
            );
            Ok(())
        }
        Command::Completions { shell } => {
            use std::io::Write;
            std::io::stdout()
                .write_all(&docs::completions(shell))
                .map_err(|e| Error::failed(e.to_string()))
        }
        Command::Rehearse(args) => rehearse::run(&ctx, &args).await,
    }
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
}

/// The node to send writes to: the active one, or else any unsealed standby (it forwards).
pub async fn active_node(vault: &Vault, addrs: &[Addr]) -> Result<Addr> {
    let nodes = status::all_status(vault, addrs).await;
    let pick = nodes
        .iter()
        .position(|n| n.ha_role == Some(crate::vault::HaRole::Active))
        .or_else(|| {
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
    Error::new(kind, format!("{what}: {e}"))
}
