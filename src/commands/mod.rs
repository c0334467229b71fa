//! One module per command. Each validates its whole plan before any side effect.

pub mod adopt;
pub mod bind;
mod bind_call;
pub mod ceremony;
pub mod completions;
pub mod cutover;
pub mod holders;
pub mod init;
pub mod man;
pub mod plugin;
pub mod reconcile;
pub mod rehearse;
pub mod root;
pub mod rotate_shares;
pub mod snapshot;
pub mod status;
pub mod transcript;
pub mod unfreeze;
pub mod unseal;
pub mod wallet;

use crate::cli::{
    CeremonyCommand, Cli, Command, PluginCommand, RootCommand, SnapshotCommand, TranscriptCommand,
    WalletCommand,
};
use std::time::Duration;

use crate::error::Result;
pub use crate::flows::Ctx;

pub async fn run(cli: Cli) -> Result<()> {
    let ctx = Ctx::from_global(&cli.global)?;
    match cli.command {
        Command::Status => status::run(&ctx).await,
        Command::Init(args) => init::run(&ctx, &args).await,
        Command::Adopt(args) => adopt::run(&ctx, &args).await,
        Command::Unseal(args) => unseal::run(&ctx, &args).await,
        Command::RotateShares(args) => rotate_shares::run(&ctx, &args).await,
        Command::Holders(args) => holders::run(&ctx, &args),
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
            accept_no_audit,
        }) => {
            plugin::install(
                &ctx,
                &plugin::InstallPlan {
                    plugin_bin,
                    name,
                    mount,
                    upgrade,
                    accept_no_audit,
                },
            )
            .await
        }
        Command::Wallet(WalletCommand::Create(args)) => wallet::create(&ctx, &args).await,
        Command::Wallet(WalletCommand::Bind(args)) => bind::run(&ctx, &args).await,
        Command::Wallet(WalletCommand::Unfreeze(args)) => unfreeze::run(&ctx, &args).await,
        Command::Wallet(WalletCommand::Show {
            name,
            mount,
            rpc,
            rpc_file,
        }) => wallet::show(&ctx, &name, &mount, &rpc, rpc_file.as_deref()).await,
        Command::Snapshot(SnapshotCommand::Save { out, mount }) => {
            snapshot::save(&ctx, &out, &mount).await
        }
        Command::Snapshot(SnapshotCommand::Verify(args)) => snapshot::verify(&ctx, &args).await,
        Command::Snapshot(SnapshotCommand::Restore {
            file,
            force,
            allow_older,
            verify,
            peer_wait,
        }) => {
            snapshot::restore(
                &ctx,
                &snapshot::RestorePlan {
                    file: &file,
                    force,
                    allow_older,
                    verify,
                    peer_wait: Duration::from_secs(peer_wait),
                },
            )
            .await
        }
        Command::Cutover(args) => cutover::run(&ctx, &args).await,
        Command::Ceremony(CeremonyCommand::List) => ceremony::list(&ctx),
        Command::Ceremony(CeremonyCommand::Show { name }) => ceremony::show(&ctx, &name),
        Command::Ceremony(CeremonyCommand::Run {
            name,
            params,
            dry_run,
            state,
            allow_exec,
        }) => ceremony::run(
            &ctx,
            &cli.global,
            &name,
            &params,
            ceremony::RunOptions {
                dry_run,
                state: state.as_deref(),
                allow_exec,
            },
        ),
        Command::Transcript(TranscriptCommand::Verify {
            file,
            certs,
            require_signatures,
        }) => transcript::verify(&ctx, &file, certs.as_deref(), require_signatures),
        Command::Transcript(TranscriptCommand::Report { file, out, certs }) => {
            transcript::report(&ctx, &file, &out, certs.as_deref())
        }
        Command::Transcript(TranscriptCommand::Show { file, certs }) => {
            transcript::show(&ctx, &file, certs.as_deref())
        }
        Command::Transcript(TranscriptCommand::Sign {
            secret_key,
            passphrase_file,
        }) => transcript::sign(&ctx, &secret_key, passphrase_file.as_deref()),
        Command::Man { out } => {
            let names = man::write_man(&out)?;
            ctx.ui.result(
                &format!("{} man pages written to {}", names.len(), out.display()),
                serde_json::json!({ "pages": names }),
            );
            Ok(())
        }
        Command::Completions { shell } => ctx.ui.raw(&completions::completions(shell)),
        Command::Rehearse(args) => rehearse::run(&ctx, &args).await,
        Command::Reconcile(args) => reconcile::run(&ctx, &args).await,
    }
}
