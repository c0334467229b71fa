//! The command line (clap types only). Flag spellings are contracts: scripts rely on them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "custody",
    version,
    about = "Guides the key ceremonies of an Ethereum Authority key held in Vault or OpenBao",
    long_about = None,
    after_help = "Exit codes: 0 ok, 1 failed, 2 usage, 3 verification failed, 4 precondition not met, 70 internal error (a bug)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
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

impl GlobalArgs {
    /// The global flags as a command line that parses back to the same values: what a child
    /// custody process (a ceremony step, the rehearsal's ceremonies) is given.
    pub fn to_argv(&self) -> Vec<String> {
        let mut a: Vec<String> = self
            .addr
            .iter()
            .flat_map(|x| ["--addr".to_owned(), x.clone()])
            .collect();
        if let Some(ca) = &self.ca_cert {
            a.extend(["--ca-cert".into(), ca.display().to_string()]);
        }
        if self.format == Format::Json {
            a.extend(["--format".into(), "json".into()]);
        }
        a.extend(["--transcript".into(), self.transcript.display().to_string()]);
        if self.yes {
            a.push("--yes".into());
        }
        if let Some(t) = &self.token_file {
            a.extend(["--token-file".into(), t.display().to_string()]);
        }
        a
    }
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
    /// Record the holders of a cluster initialized without custody (`bao operator init
    /// -pgp-keys`), as init would have, and prove their shares where the cluster allows
    Adopt(AdoptArgs),
    /// Submit unseal shares to every node (ceremony 2)
    Unseal(UnsealArgs),
    /// Rotate the unseal shares to a new set of holders; the new holders prove them (--verify)
    RotateShares(RotateSharesArgs),
    /// Each holder of the current share set: when and how they last proved their share
    Holders(HoldersArgs),
    /// Root tokens only through the quorum: ceremony token, generate, revoke (ceremony 4)
    #[command(subcommand)]
    Root(RootCommand),
    /// Install the signer plugin
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// The Authority wallet: create it once, show it
    #[command(subcommand)]
    Wallet(WalletCommand),
    /// Raft snapshots: save with a manifest, verify (offline, or by a restore test), restore
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Blue-green phase 2: move the load balancer from blue to green, no outage, no nonce twice
    Cutover(CutoverArgs),
    /// Scripted ceremonies: list them, show a plan, run one (resumable)
    #[command(subcommand)]
    Ceremony(CeremonyCommand),
    /// Check the ceremony record
    #[command(subcommand)]
    Transcript(TranscriptCommand),
    /// Write the man pages (custody.1 and one per subcommand) into DIR
    Man {
        /// Where the pages go
        #[arg(long, value_name = "DIR", default_value = "man")]
        out: PathBuf,
    },
    /// Print the shell completion script for SHELL
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Run the whole lifecycle on throwaway local clusters and say what it proved
    Rehearse(RehearseArgs),
    /// Was every transaction the account sent signed through the plugin? The chain's nonces
    /// against the audit logs' signatures (exit 3: a nonce no signature explains, or two
    /// payloads signed at one nonce)
    Reconcile(ReconcileArgs),
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
pub struct AdoptArgs {
    /// A holder's public certificate (armored or binary), once per holder, in the order given
    /// to `operator init -pgp-keys`
    #[arg(long = "pgp-key", value_name = "FILE", required = true)]
    pub pgp_keys: Vec<PathBuf>,
    /// How many holders unseal; must be the server's (taken from the server when not given)
    #[arg(long, value_name = "T")]
    pub threshold: Option<u32>,
    /// Holders' share files with their secret keys: each must open with a --pgp-key holder's
    /// key; on a sealed cluster a quorum of them unseals it, which proves them
    #[command(flatten)]
    pub shares: ShareArgs,
}

/// One holder's share (or the quorum's): the same three inputs wherever a share is needed.
#[derive(Debug, Args)]
pub struct ShareArgs {
    /// A holder's encrypted share: the .share.asc file init or rotate-shares wrote, a binary
    /// OpenPGP message, or the base64 line `operator init -pgp-keys` printed; repeat it, with
    /// one --secret-key each in the same order, for several holders at one sitting
    #[arg(
        long,
        value_name = "FILE",
        requires = "secret_key",
        conflicts_with = "share_stdin"
    )]
    pub share_file: Vec<PathBuf>,
    /// That holder's OpenPGP secret key file (one per --share-file, in the same order)
    #[arg(long, value_name = "FILE", requires = "share_file")]
    pub secret_key: Vec<PathBuf>,
    /// File holding a secret key's passphrase (prompted for on a terminal when needed); several
    /// are taken in order by the keys that need one
    #[arg(long, value_name = "FILE", requires = "secret_key")]
    pub passphrase_file: Vec<PathBuf>,
    /// Read plaintext shares from stdin, one line per holder (as `gpg --decrypt` prints them)
    #[arg(long)]
    pub share_stdin: bool,
}

impl ShareArgs {
    /// Neither a file nor stdin: the shares are typed at hidden prompts.
    pub fn uses_prompts(&self) -> bool {
        self.share_file.is_empty() && !self.share_stdin
    }
}

/// Which of the `--addr` nodes joined the cluster after its init, for the commands that send
/// shares: every other `--addr` must be a node the transcript records for this cluster.
#[derive(Debug, Args)]
pub struct NewNodeArgs {
    /// One of the --addr nodes that joined the cluster after its init (repeat for each): its
    /// address is recorded in the transcript before any share is sent to it
    #[arg(long = "new-node", value_name = "URL")]
    pub new_node: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RotateSharesArgs {
    /// A new holder's OpenPGP public key (repeat, in holder order); starts a rotation
    #[arg(long = "pgp-key", value_name = "FILE", required_unless_present_any = ["verify", "cancel"])]
    pub pgp_keys: Vec<PathBuf>,
    /// How many of the new shares unseal
    #[arg(long, value_name = "T", required_unless_present_any = ["verify", "cancel"])]
    pub threshold: Option<u32>,
    /// Where the new encrypted shares go, one DIR/<FPR>.share.asc per new holder
    #[arg(long, value_name = "DIR", required_unless_present_any = ["verify", "cancel"])]
    pub out: Option<PathBuf>,
    /// Ask the server to keep a backup of the new encrypted shares (OpenBao sys/rotate/root/backup)
    #[arg(long)]
    pub backup: bool,
    /// The new holders prove their new shares; the rotation takes effect when a quorum has
    #[arg(long, conflicts_with_all = ["pgp_keys", "threshold", "out", "backup", "cancel"])]
    pub verify: bool,
    /// Cancel the rotation in progress; the old shares stay in force
    #[arg(long, conflicts_with_all = ["pgp_keys", "threshold", "out", "backup", "share_file", "share_stdin"])]
    pub cancel: bool,
    #[command(flatten)]
    pub shares: ShareArgs,
    #[command(flatten)]
    pub nodes: NewNodeArgs,
}

#[derive(Debug, Args)]
pub struct HoldersArgs {
    /// Transcripts to read (default: the --transcript file)
    #[arg(value_name = "TRANSCRIPT")]
    pub transcripts: Vec<PathBuf>,
    /// Exit 3 when a holder of the current share set has not proven their share within DAYS
    #[arg(long, value_name = "DAYS")]
    pub stale_after: Option<u64>,
    /// A directory of the holders' public certificates, to check the transcripts' signatures
    /// by: a proof from a line no good holder signature covers is shown unsigned
    #[arg(long, value_name = "DIR")]
    pub certs: Option<PathBuf>,
    /// Exit 3 unless, in each transcript, at least N distinct holders recorded at init signed a
    /// head that covers every line (needs --certs)
    #[arg(
        long,
        value_name = "N",
        requires = "certs",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub require_signatures: Option<u32>,
}

#[derive(Debug, Args)]
pub struct UnsealArgs {
    #[command(flatten)]
    pub shares: ShareArgs,
    #[command(flatten)]
    pub nodes: NewNodeArgs,
    /// How long to wait for followers to join and unseal, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub join_timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum RootCommand {
    /// Make the narrow token that can only start a quorum root generation (run with the init root token)
    CeremonyToken {
        /// The certificate the ceremony token is encrypted to
        #[arg(long, value_name = "FILE")]
        pgp_key: PathBuf,
        /// Where the encrypted ceremony token is written (ASCII armor, 0600, never overwritten)
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Generate a root token from the holders' quorum, one holder per run
    Generate(RootGenerateArgs),
    /// Revoke the token given (VAULT_TOKEN or --token-file) and check it no longer works
    Revoke,
}

#[derive(Debug, Args)]
pub struct RootGenerateArgs {
    /// The certificate the new root token is encrypted to
    #[arg(long, value_name = "FILE", required_unless_present = "cancel")]
    pub pgp_key: Option<PathBuf>,
    /// Where the encrypted root token is written when the quorum completes
    #[arg(long, value_name = "FILE", required_unless_present = "cancel")]
    pub out: Option<PathBuf>,
    /// Cancel the attempt in progress
    #[arg(long, conflicts_with_all = ["share_file", "share_stdin"])]
    pub cancel: bool,
    #[command(flatten)]
    pub shares: ShareArgs,
    #[command(flatten)]
    pub nodes: NewNodeArgs,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Register the signer plugin by sha256 and mount it (idempotent)
    Install {
        /// The plugin binary, the same file that sits in every node's plugin_directory
        #[arg(long, value_name = "FILE")]
        plugin_bin: PathBuf,
        /// The catalog name
        #[arg(long, default_value = "custody-signer")]
        name: String,
        /// Where the plugin is mounted
        #[arg(long, default_value = "ethereum")]
        mount: String,
        /// Replace a registered binary with a different sha256 and reload the mount
        #[arg(long)]
        upgrade: bool,
        /// Go on although the cluster has no enabled audit device (recorded, and shown red in
        /// the report): nothing would record who signed what
        #[arg(long)]
        accept_no_audit: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum WalletCommand {
    /// Create the account (key generated inside the plugin), its policies and a wrapped signer token
    Create(WalletCreateArgs),
    /// Bind an account created without an allow-list to one call of its contract, once the
    /// chain shows the contract names it and its code has the call, and the operator confirms
    /// (a quorum step)
    Bind(WalletBindArgs),
    /// Lift the freeze of a mount restored from a snapshot: every account's counter raised to
    /// at least the chain's pending nonce (or N), then signing unfrozen (recorded)
    Unfreeze(WalletUnfreezeArgs),
    /// Address, next nonce and constraints of an account; with --rpc, the chain's view of it
    Show {
        /// The account name
        name: String,
        /// Where the plugin is mounted
        #[arg(long, default_value = "ethereum")]
        mount: String,
        /// An Ethereum node's JSON-RPC, once per provider (https://, or http:// to a loopback
        /// address): compare the plugin's next nonce with the chain's (exit 3 when the plugin is
        /// behind: it would sign a nonce the chain already has) [default: CUSTODY_RPC_URL]
        #[arg(long, value_name = "URL")]
        rpc: Vec<String>,
        /// A file of JSON-RPC URLs, one a line (keeps an API key out of argv)
        #[arg(long, value_name = "FILE")]
        rpc_file: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// An audit log the file device wrote (one JSON object a line), once per file: every
    /// node's, and both clusters' after a cutover
    #[arg(long = "audit-log", value_name = "FILE", required = true)]
    pub audit_log: Vec<PathBuf>,
    /// The chain's JSON-RPC (https://, or http:// to a loopback address) [default:
    /// CUSTODY_RPC_URL]
    #[arg(long, value_name = "URL")]
    pub rpc: Vec<String>,
    /// A file holding the JSON-RPC URL (keeps an API key out of argv)
    #[arg(long, value_name = "FILE")]
    pub rpc_file: Option<PathBuf>,
    /// The account whose transactions are reconciled
    #[arg(long, value_name = "NAME")]
    pub account: String,
    /// Where the plugin is mounted
    #[arg(long, default_value = "ethereum")]
    pub mount: String,
    /// Reconcile the nonces from N on (the ones before were reconciled already)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub since_nonce: u64,
    /// The audit device that wrote the logs: with a token, each explaining line is proven the
    /// server's own by its sys/audit-hash
    #[arg(long, value_name = "PATH", default_value = "file")]
    pub audit_device: String,
}

#[derive(Debug, Args)]
pub struct WalletUnfreezeArgs {
    /// Where the plugin is mounted
    #[arg(long, default_value = "ethereum")]
    pub mount: String,
    /// An Ethereum node's JSON-RPC on the mount's chain: each account's counter is raised to at
    /// least its pending nonce there (eth_getTransactionCount ADDRESS pending). Once per
    /// provider: they must agree
    #[arg(long, value_name = "URL")]
    pub nonce_floor_from_rpc: Vec<String>,
    /// A file of --nonce-floor-from-rpc URLs, one a line (keeps an API key out of argv)
    #[arg(long, value_name = "FILE")]
    pub nonce_floor_from_rpc_file: Option<PathBuf>,
    /// Raise the counter to at least N (a mount with one account), or NAME=N for each account
    #[arg(long, value_name = "N|NAME=N")]
    pub nonce_floor: Vec<String>,
    /// A floor more than this above an account's counter needs a confirmation (--yes)
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_nonce_jump: u64,
}

#[derive(Debug, Args)]
pub struct WalletBindArgs {
    /// The account name (for example authority)
    pub name: String,
    /// An Ethereum node's JSON-RPC on the chain the mount signs for, once per provider
    /// (https://, or http:// to a loopback address): every one must agree on the chain, the
    /// block, the code and the getter's answer [default: CUSTODY_RPC_URL]
    #[arg(long, value_name = "URL")]
    pub rpc: Vec<String>,
    /// A file of JSON-RPC URLs, one a line (keeps an API key out of argv)
    #[arg(long, value_name = "FILE")]
    pub rpc_file: Option<PathBuf>,
    /// The contract the account may call (deployed with the account's address)
    #[arg(long, value_name = "ADDRESS")]
    pub contract: String,
    /// The one function the account may call on it
    #[arg(long, value_name = "SIGNATURE", default_value = "submitBlock(bytes32)")]
    pub call: String,
    /// The contract's getter that must return the account's address
    #[arg(long, value_name = "SIGNATURE", default_value = "authority()")]
    pub authority_getter: String,
    /// The contract's JSON ABI (solc's --abi, or an artifact with an "abi" key): it must hold
    /// --call, and then the call is bound even where the code does not push its selector (a proxy)
    #[arg(long, value_name = "FILE")]
    pub abi: Option<std::path::PathBuf>,
    /// Where the plugin is mounted
    #[arg(long, default_value = "ethereum")]
    pub mount: String,
    /// Go on although the cluster has no enabled audit device (recorded, and shown red in the
    /// report): nothing would record who signed what
    #[arg(long)]
    pub accept_no_audit: bool,
}

#[derive(Debug, Args)]
pub struct WalletCreateArgs {
    /// The account name (for example authority)
    pub name: String,
    /// The chain every signature is pinned to
    #[arg(long, value_name = "N")]
    pub chain_id: String,
    /// A contract call the account may sign: 0xCONTRACT:submitBlock(bytes32) or 0xCONTRACT:0xSELECTOR
    #[arg(long = "allowed-call", value_name = "ADDR:SIGNATURE")]
    pub allowed_calls: Vec<String>,
    /// An address the account may send to
    #[arg(long = "allowed-to", value_name = "ADDR")]
    pub allowed_to: Vec<String>,
    /// Sign transactions to any address (only without an allow-list; never the default)
    #[arg(long, conflicts_with_all = ["allowed_calls", "allowed_to"])]
    pub unrestricted: bool,
    /// Let the account sign EIP-191 messages (off by default)
    #[arg(long)]
    pub allow_sign_message: bool,
    /// Let the account sign EIP-712 typed data, for this chain and its allow-list's contracts only (off by default)
    #[arg(long)]
    pub allow_sign_typed_data: bool,
    /// The largest value (wei) one transaction may carry
    #[arg(
        long = "max-value",
        visible_alias = "max-value-wei",
        value_name = "WEI"
    )]
    pub max_value_wei: Option<String>,
    /// The most the account pays per gas, in every transaction type (gas_price, max_fee_per_gas)
    #[arg(long = "max-fee-per-gas", value_name = "WEI")]
    pub max_fee_per_gas_wei: Option<String>,
    /// The largest gas limit one transaction may have
    #[arg(long, value_name = "N")]
    pub max_gas: Option<String>,
    /// Where the response-wrapped signer token is written (0600, never overwritten)
    #[arg(long, value_name = "FILE")]
    pub signer_token_out: PathBuf,
    /// Where the plugin is mounted
    #[arg(long, default_value = "ethereum")]
    pub mount: String,
    /// Go on although the cluster has no enabled audit device (recorded, and shown red in the
    /// report): nothing would record who signed what
    #[arg(long)]
    pub accept_no_audit: bool,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Stream a Raft snapshot to FILE, hashing it on the way, and write FILE.manifest.json
    Save {
        /// The snapshot file (0600, never overwritten)
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Where the signer plugin is mounted (its accounts go into the manifest)
        #[arg(long, default_value = "ethereum")]
        mount: String,
    },
    /// Check a snapshot offline; with --restore-test, restore it into a throwaway server too
    Verify(SnapshotVerifyArgs),
    /// Restore a snapshot into the target cluster (--addr); it then needs the source's quorum
    Restore {
        /// The snapshot file
        file: PathBuf,
        /// Restore even over the cluster the snapshot came from, or without a manifest
        #[arg(long)]
        force: bool,
        /// Restore a snapshot that is not the newest save of its cluster the transcript
        /// records (or one it records no save of); recorded, with the newer save passed over
        #[arg(long)]
        allow_older: bool,
        /// Run `snapshot verify`'s offline checks first and record them; without it the
        /// transcript must record a passed `snapshot verify` of these bytes
        #[arg(long)]
        verify: bool,
        /// How long to wait for every Raft peer of the target to be a healthy voter first
        #[arg(long, value_name = "SECONDS", default_value_t = 120)]
        peer_wait: u64,
    },
}

#[derive(Debug, Args)]
pub struct SnapshotVerifyArgs {
    /// The snapshot file
    pub file: PathBuf,
    /// Accept a snapshot without its manifest (FILE.manifest.json): only the archive's internal
    /// consistency is then checked, not that it is the snapshot that was saved. A manifest that
    /// is there is still checked
    #[arg(long, conflicts_with = "restore_test")]
    pub no_manifest: bool,
    /// Accept a snapshot that is not the newest save of its cluster the transcript records (or
    /// one it records no save of); recorded, with the newer save passed over
    #[arg(long)]
    pub allow_older: bool,
    /// Restore into a throwaway local OpenBao, unseal it with the quorum, compare the Authority
    #[arg(long, requires = "plugin_bin")]
    pub restore_test: bool,
    /// The signer plugin binary (the one the source cluster runs)
    #[arg(long, value_name = "FILE")]
    pub plugin_bin: Option<PathBuf>,
    /// OpenBao server binary for the throwaway server; it must be one custody knows by sha256
    /// (the ones scripts/setup installs) unless --bao-sha256 names it [default:
    /// CUSTODY_BAO_BIN, tools/bin/bao above the custody executable, bao on PATH; never the
    /// current directory]
    #[arg(long, value_name = "FILE")]
    pub bao_bin: Option<PathBuf>,
    /// The sha256 of --bao-bin FILE, to run an OpenBao binary custody does not know on purpose
    #[arg(long, value_name = "HEX", requires = "bao_bin")]
    pub bao_sha256: Option<String>,
    /// The account whose address must survive
    #[arg(long, default_value = "authority")]
    pub account: String,
    /// Where the signer plugin is mounted
    #[arg(long, default_value = "ethereum")]
    pub mount: String,
    #[command(flatten)]
    pub shares: ShareArgs,
}

#[derive(Debug, Subcommand)]
pub enum CeremonyCommand {
    /// The ceremonies custody carries
    List,
    /// The plan of a ceremony, for each participant
    Show {
        /// A ceremony name (see `ceremony list`) or a script file
        name: String,
    },
    /// Walk a ceremony step by step; an interrupted run resumes at its first unfinished step
    Run {
        /// A ceremony name (see `ceremony list`) or a script file
        name: String,
        /// A parameter of the script, KEY=VALUE (repeatable)
        #[arg(long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// Say what would happen, touch nothing
        #[arg(long)]
        dry_run: bool,
        /// Where the run keeps its progress [default: custody-ceremony-NAME.state.json]
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// Let a step run an exec:COMMAND balancer (a script may name one only with this)
        #[arg(long)]
        allow_exec: bool,
    },
}

#[derive(Debug, Args)]
pub struct CutoverArgs {
    /// `rollback` puts blue back in front (blue ready and unfrozen, green drained and frozen)
    #[arg(value_parser = ["rollback"])]
    pub action: Option<String>,
    /// A blue node (the cluster in service), once per node
    #[arg(long = "from", value_name = "URL", required = true)]
    pub from: Vec<String>,
    /// A green node (the cluster taking over), once per node
    #[arg(long = "to", value_name = "URL", required = true)]
    pub to: Vec<String>,
    /// The balancer: haproxy:SOCKET (its runtime API) or exec:COMMAND
    #[arg(long, value_name = "DRIVER")]
    pub lb: String,
    /// The HAProxy backend holding both clusters' servers
    #[arg(long, value_name = "NAME", default_value = "vault")]
    pub lb_backend: String,
    /// A blue server's name in the balancer, once per server
    #[arg(long = "blue-server", value_name = "NAME")]
    pub blue_servers: Vec<String>,
    /// A green server's name in the balancer, once per server
    #[arg(long = "green-server", value_name = "NAME")]
    pub green_servers: Vec<String>,
    /// The balancer's own address, to check where requests land
    #[arg(long, value_name = "URL")]
    pub lb_url: String,
    /// How long blue's sessions may take to drain (e.g. 30s, 500ms, 2m)
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub drain_timeout: String,
    /// Where the signer plugin is mounted
    #[arg(long, default_value = "ethereum")]
    pub mount: String,
    /// On a rollback, raise blue's counters to at least each account's pending nonce on the
    /// chain (eth_getTransactionCount ADDRESS pending) before blue signs again; needed when
    /// green's counters cannot be read. Once per provider: they must agree
    #[arg(long, value_name = "URL")]
    pub nonce_floor_from_rpc: Vec<String>,
    /// A file of --nonce-floor-from-rpc URLs, one a line (keeps an API key out of argv)
    #[arg(long, value_name = "FILE")]
    pub nonce_floor_from_rpc_file: Option<PathBuf>,
    /// On a rollback, how far above blue's counter a floor may raise it without a confirmation
    /// (--yes): a lying RPC must not exhaust the Authority's nonces
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_nonce_jump: u64,
    /// Run the exec:COMMAND balancer through /bin/sh -c (by default its words are run directly)
    #[arg(long)]
    pub lb_shell: bool,
    /// An Ethereum node's JSON-RPC, once per provider: the pre-flight refuses when green's
    /// counters (after the carry) are behind the chain's pending nonce, and the switch checks
    /// them again [default: CUSTODY_RPC_URL]
    #[arg(long, value_name = "URL")]
    pub rpc: Vec<String>,
    /// A file of --rpc URLs, one a line (keeps an API key out of argv)
    #[arg(long, value_name = "FILE")]
    pub rpc_file: Option<PathBuf>,
    /// Cut over even when green runs an older OpenBao than blue
    #[arg(long)]
    pub allow_downgrade: bool,
}

#[derive(Debug, Subcommand)]
pub enum TranscriptCommand {
    /// Check the hash chain (and, with --certs, every holder's signature) and print the head hash
    Verify {
        /// The transcript file
        file: PathBuf,
        /// A directory of the holders' public certificates, to check the signatures by
        #[arg(long, value_name = "DIR")]
        certs: Option<PathBuf>,
        /// Exit 3 unless at least N distinct holders recorded at init signed a head that covers
        /// every line (needs --certs)
        #[arg(
            long,
            value_name = "N",
            requires = "certs",
            value_parser = clap::value_parser!(u32).range(1..)
        )]
        require_signatures: Option<u32>,
    },
    /// Write the transcript as one self-contained HTML page: the verdict, the signatures, the
    /// ceremonies' timeline, the checks, the Authority and the quorum (it opens offline)
    Report {
        /// The transcript file
        file: PathBuf,
        /// The HTML file to create (never overwritten)
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// A directory of the holders' public certificates, to check the signatures by
        #[arg(long, value_name = "DIR")]
        certs: Option<PathBuf>,
    },
    /// Show the report's verdict and timeline in the terminal (--format json: the whole report)
    Show {
        /// The transcript file
        file: PathBuf,
        /// A directory of the holders' public certificates, to check the signatures by
        #[arg(long, value_name = "DIR")]
        certs: Option<PathBuf>,
    },
    /// Add your OpenPGP signature over the transcript's current head hash (--transcript)
    Sign {
        /// Your OpenPGP secret key file
        #[arg(long, value_name = "FILE")]
        secret_key: PathBuf,
        /// File holding the secret key's passphrase
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct RehearseArgs {
    /// Green's OpenBao server binary, the version upgraded to, also the restore test's
    /// [default: CUSTODY_BAO_BIN, tools/bin/bao, or bao on PATH]
    #[arg(long, value_name = "FILE", visible_alias = "green-bao-bin")]
    pub bao_bin: Option<PathBuf>,
    /// Blue's OpenBao server binary, the version upgraded from
    /// [default: CUSTODY_BLUE_BAO_BIN or tools/openbao-2.6.2/bao]
    #[arg(long, value_name = "FILE")]
    pub blue_bao_bin: Option<PathBuf>,
    /// anvil, the throwaway chain [default: CUSTODY_ANVIL_BIN, tools/bin/anvil, or anvil on PATH]
    #[arg(long, value_name = "FILE")]
    pub anvil_bin: Option<PathBuf>,
    /// Keep the rehearsal's directory (keys, configs, logs, transcript) instead of deleting it
    #[arg(long)]
    pub keep: bool,
    /// The signer plugin binary [default: custody-signer beside the custody executable]
    #[arg(long, value_name = "FILE")]
    pub plugin_bin: Option<PathBuf>,
    /// Where to write the report of the rehearsal's transcript (replaced if it exists)
    #[arg(
        long,
        value_name = "FILE",
        default_value = "custody-rehearsal-report.html"
    )]
    pub report: PathBuf,
}

#[cfg(test)]
mod tests {
    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}

#[cfg(test)]
mod argv_tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn global_flags_round_trip_through_their_command_line() {
        let global = GlobalArgs {
            addr: vec![
                "https://127.0.0.1:8200".into(),
                "https://127.0.0.1:8202".into(),
            ],
            ca_cert: Some("ca dir/ca.pem".into()),
            format: Format::Json,
            transcript: "t.jsonl".into(),
            yes: true,
            token_file: Some("root.token".into()),
        };
        let argv = std::iter::once("custody".to_owned())
            .chain(global.to_argv())
            .chain(["status".to_owned()]);
        let parsed = Cli::try_parse_from(argv).unwrap().global;
        assert_eq!(parsed.addr, global.addr);
        assert_eq!(parsed.ca_cert, global.ca_cert);
        assert_eq!(parsed.format, global.format);
        assert_eq!(parsed.transcript, global.transcript);
        assert_eq!(parsed.yes, global.yes);
        assert_eq!(parsed.token_file, global.token_file);
    }
}
