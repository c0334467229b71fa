//! The command line (clap types only). Flag spellings are contracts: scripts rely on them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "custody",
    version,
    about = "Guides the key ceremonies of an Ethereum Authority key held in Vault or OpenBao",
    long_about = None,
    after_help = "Exit codes: 0 ok, 1 failed, 2 usage, 3 verification failed, 4 precondition not met."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// A node's address, once per node [default: VAULT_ADDR or BAO_ADDR, comma-separated]
    #[arg(long = "addr", value_name = "URL", global = true)]
    pub addr: Vec<String>,
    /// PEM file of the CA that signed the servers' certificates [default: VAULT_CACERT or BAO_CACERT]
    #[arg(long, value_name = "FILE", global = true)]
    pub ca_cert: Option<PathBuf>,
    /// Output for people (text) or for programs (json, on stdout)
    #[arg(long, value_enum, default_value_t = Format::Text, global = true)]
    pub format: Format,
    /// The ceremony record to append to
    #[arg(
        long,
        value_name = "FILE",
        default_value = "custody-transcript.jsonl",
        global = true
    )]
    pub transcript: PathBuf,
    /// Answer yes to every confirmation (never waits for input)
    #[arg(long, global = true)]
    pub yes: bool,
    /// Read the Vault token from FILE [default: VAULT_TOKEN or BAO_TOKEN]
    #[arg(long, value_name = "FILE", global = true)]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Seal state, quorum progress, HA role and version of every node
    Status,
    /// Initialize the cluster with one OpenPGP key per holder (ceremony 1)
    Init(InitArgs),
    /// Submit unseal shares to every node (ceremony 2)
    Unseal(UnsealArgs),
    /// Check the ceremony record
    #[command(subcommand)]
    Transcript(TranscriptCommand),
    /// Run the whole lifecycle on throwaway local clusters and say what it proved
    Rehearse(RehearseArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// A holder's public certificate (armored or binary), once per holder, in order
    #[arg(long = "pgp-key", value_name = "FILE", required = true)]
    pub pgp_keys: Vec<PathBuf>,
    /// How many holders must come together to unseal
    #[arg(long, value_name = "T")]
    pub threshold: u32,
    /// The public certificate the initial root token is encrypted to
    #[arg(long, value_name = "FILE")]
    pub root_token_pgp_key: PathBuf,
    /// Directory for the encrypted shares and root token (created if missing)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct UnsealArgs {
    /// One holder's encrypted share (the .share.asc file written by init)
    #[arg(
        long,
        value_name = "FILE",
        requires = "secret_key",
        conflicts_with = "share_stdin"
    )]
    pub share_file: Option<PathBuf>,
    /// That holder's OpenPGP secret key file
    #[arg(long, value_name = "FILE", requires = "share_file")]
    pub secret_key: Option<PathBuf>,
    /// File holding the secret key's passphrase (prompted for on a terminal when needed)
    #[arg(long, value_name = "FILE", requires = "secret_key")]
    pub passphrase_file: Option<PathBuf>,
    /// Read plaintext shares from stdin, one line per holder (as `gpg --decrypt` prints them)
    #[arg(long)]
    pub share_stdin: bool,
    /// How long to wait for followers to join and unseal, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub join_timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum TranscriptCommand {
    /// Check the hash chain and print the head hash witnesses write down
    Verify {
        /// The transcript file
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct RehearseArgs {
    /// OpenBao server binary [default: CUSTODY_BAO_BIN, tools/bin/bao, or bao on PATH]
    #[arg(long, value_name = "FILE")]
    pub bao_bin: Option<PathBuf>,
    /// Keep the rehearsal's directory (keys, configs, logs, transcript) instead of deleting it
    #[arg(long)]
    pub keep: bool,
}

#[cfg(test)]
mod tests {
    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
