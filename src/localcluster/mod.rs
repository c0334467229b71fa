//! Throwaway OpenBao Raft clusters on 127.0.0.1 (or each node on its own [`Host`]: an address
//! in a network namespace) with TLS, free ports and a private directory: the one implementation
//! behind `custody rehearse` and the test harness.

pub mod anvil;
mod config;
pub mod haproxy;
mod host;
pub mod known_bao;
pub mod owned_dir;
mod process;
mod tls;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::error::{Context, Error, Result};
use crate::vault::Addr;

pub use host::Host;
pub use process::children_of;

/// How long a server gets to stop after SIGTERM before SIGKILL.
const STOP_BOUND: Duration = Duration::from_secs(10);
/// How long a server gets to open its API port.
const START_BOUND: Duration = Duration::from_secs(30);

/// Finds OpenBao's `bao`: the given path, `CUSTODY_BAO_BIN`, `tools/bin/bao` above the running
/// executable (the project's set-up script puts it there), or `bao` on PATH; never the current
/// directory. The restore test pins what it finds ([`known_bao::pin`]); this is the rehearsal's.
pub fn find_bao(explicit: Option<&Path>) -> Result<PathBuf> {
    find_binary(
        "OpenBao server binary",
        explicit
            .map(Path::to_path_buf)
            .or_else(crate::config::bao_bin_env),
        "tools/bin/bao",
        Some("bao"),
        "run scripts/setup (it installs OpenBao 2.7.2 into tools/bin/bao), or give --bao-bin FILE",
    )
}

/// Finds anvil, the rehearsal's throwaway chain: the given path, `CUSTODY_ANVIL_BIN`,
/// `tools/bin/anvil` above the running executable, or `anvil` on PATH.
pub fn find_anvil(explicit: Option<&Path>) -> Result<PathBuf> {
    find_binary(
        "anvil (Foundry's local Ethereum node)",
        explicit
            .map(Path::to_path_buf)
            .or_else(crate::config::anvil_bin_env),
        "tools/bin/anvil",
        Some("anvil"),
        "run scripts/setup (it installs anvil into tools/bin/anvil), or give --anvil-bin FILE",
    )
}

/// The older OpenBao the rehearsal's blue runs, to upgrade from: the given path,
/// `CUSTODY_BLUE_BAO_BIN`, or `tools/openbao-2.6.2/bao` above the running executable
/// (never PATH: a `bao` there is no particular version).
pub fn find_blue_bao(explicit: Option<&Path>) -> Result<PathBuf> {
    find_binary(
        "OpenBao 2.6.2, blue's server binary in the rehearsal,",
        explicit
            .map(Path::to_path_buf)
            .or_else(crate::config::blue_bao_bin_env),
        "tools/openbao-2.6.2/bao",
        None,
        "run scripts/setup (it installs OpenBao 2.6.2 into tools/openbao-2.6.2/bao), or \
         give --blue-bao-bin FILE (the same binary as green rehearses without an upgrade)",
    )
}

/// What `BAO version` says of itself: "2.7.2" from "OpenBao v2.7.2 (...)". It runs with an
/// empty environment (no token of custody's reaches it).
pub fn bao_version(bao: &Path) -> Result<String> {
    let out = Command::new(bao)
        .env_clear()
        .arg("version")
        .output()
        .context(format!("running {} version", bao.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find_map(|w| w.strip_prefix('v'))
        .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()))
        .map(str::to_owned)
        .ok_or_else(|| {
            Error::failed(format!(
                "{} version said {:?}, no version number",
                bao.display(),
                crate::ui::escape(text.trim())
            ))
        })
}

/// A binary: `explicit` when given (it must exist), else `project_path` above the running
/// executable, else `on_path` in an absolute PATH entry; canonicalized. Never the current
/// directory: a `tools/bin/...` beside whatever the operator works on is no one's choice.
fn find_binary(
    what: &str,
    explicit: Option<PathBuf>,
    project_path: &str,
    on_path: Option<&str>,
    hint: &str,
) -> Result<PathBuf> {
    if let Some(p) = explicit {
        if p.is_file() {
            return std::fs::canonicalize(&p).context(format!("resolving {}", p.display()));
        }
        return Err(Error::precondition(format!("{what} {} not found", p.display())).hint(hint));
    }
    let mut candidates = above_custody(project_path);
    if let (Some(name), Some(path)) = (on_path, std::env::var_os("PATH")) {
        candidates.extend(
            std::env::split_paths(&path)
                .filter(|d| d.is_absolute())
                .map(|d| d.join(name)),
        );
    }
    let found = candidates
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| Error::precondition(format!("{what} was not found")).hint(hint))?;
    // The servers run in their own directory, so a relative path would not resolve there.
    std::fs::canonicalize(&found).context(format!("resolving {}", found.display()))
}

/// `relative` in each directory above the running executable, nearest first.
fn above_custody(relative: &str) -> Vec<PathBuf> {
    std::env::current_exe()
        .map(|exe| exe.ancestors().skip(1).map(|d| d.join(relative)).collect())
        .unwrap_or_default()
}

pub struct ClusterSpec {
    pub name: String,
    pub nodes: usize,
    pub bao_bin: PathBuf,
    /// A directory to hold everything; a private temporary one when `None`.
    pub dir: Option<PathBuf>,
    /// Files copied into the shared `plugin_directory` before the servers start.
    pub plugins: Vec<PathBuf>,
    /// A single `-dev` server (in-memory storage, plain http on loopback, already unsealed,
    /// every file of the plugin directory registered) instead of a TLS Raft cluster.
    pub dev: bool,
    /// The servers are killed (SIGKILL) when the thread that started them ends, custody killed
    /// included (`PR_SET_PDEATHSIG`): for a cluster started and stopped on the command's own
    /// thread, as the restore test's is; never from a short-lived (`spawn_blocking`) thread.
    pub die_with_parent: bool,
    /// The audit stanza every node declares ([`AUDIT_STANZA`] unless a test wants another, or
    /// none): the same on every node, so a relative `file_path` resolves in each node's own
    /// directory.
    pub audit: Option<String>,
    /// Where each node runs, in order (its address, its network namespace); empty: every node
    /// on 127.0.0.1 in custody's own namespace.
    pub hosts: Vec<Host>,
}

/// The audit device every cluster custody starts declares on each node. OpenBao refuses to
/// enable one through the API; and a node whose stanza differs from the one in storage (another
/// `file_path`, a missing device) fails its post-unseal setup, so the stanza is the same on
/// every node of blue and green. The relative path resolves against the server's working
/// directory, which is each node's own.
pub const AUDIT_STANZA: &str = r#"audit "file" "file" {
  options {
    file_path = "audit.log"
  }
}
"#;

/// The audit log each node writes (relative to its directory), per [`AUDIT_STANZA`].
pub const AUDIT_LOG: &str = "audit.log";

impl ClusterSpec {
    pub fn raft(name: &str, nodes: usize, bao_bin: PathBuf) -> ClusterSpec {
        ClusterSpec {
            name: name.into(),
            nodes,
            bao_bin,
            dir: None,
            plugins: Vec::new(),
            dev: false,
            die_with_parent: false,
            audit: Some(AUDIT_STANZA.to_owned()),
            hosts: Vec::new(),
        }
    }
}

pub struct Node {
    pub id: String,
    pub scheme: &'static str,
    /// Where it runs: its address and network namespace.
    pub host: Host,
    pub api_port: u16,
    pub cluster_port: u16,
    pub config: PathBuf,
    pub log: PathBuf,
    /// The node's own directory: its working directory, data and audit log.
    pub dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    pub fn addr(&self) -> Addr {
        Addr::parse(&format!("{}://{}", self.scheme, self.api_socket()))
            .expect("an IP address and port")
    }
    /// The address its API listens on.
    pub fn api_socket(&self) -> SocketAddr {
        SocketAddr::new(self.host.ip, self.api_port)
    }
    /// The address its Raft cluster port listens on.
    pub fn cluster_socket(&self) -> SocketAddr {
        SocketAddr::new(self.host.ip, self.cluster_port)
    }
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
    /// The audit log this node writes when its cluster declares [`AUDIT_STANZA`] (relative
    /// paths resolve in the node's directory).
    pub fn audit_log(&self) -> PathBuf {
        self.dir.join(AUDIT_LOG)
    }
}

pub struct LocalCluster {
    pub name: String,
    pub nodes: Vec<Node>,
    pub ca_cert: PathBuf,
    pub plugin_dir: PathBuf,
    bao_bin: PathBuf,
    dir: PathBuf,
    _tempdir: Option<tempfile::TempDir>,
    keep: bool,
    die_with_parent: bool,
    /// The dev server's root token (dev mode only).
    dev_root_token: Option<crate::secret::SecretString>,
}

impl LocalCluster {
    /// Writes the TLS files and configs and starts every node. The nodes are not initialized;
    /// the followers join node 0 through `retry_join` once it is unsealed.
    pub fn start(spec: ClusterSpec) -> Result<LocalCluster> {
        if spec.nodes == 0 || (spec.dev && spec.nodes != 1) {
            return Err(Error::usage(
                "a cluster needs at least one node; a dev server is exactly one",
            ));
        }
        if !spec.hosts.is_empty() && (spec.dev || spec.hosts.len() != spec.nodes) {
            return Err(Error::usage(
                "hosts are given for every node of a Raft cluster, or for none",
            ));
        }
        let hosts: Vec<Host> = match spec.hosts.is_empty() {
            true => vec![Host::loopback(); spec.nodes],
            false => spec.hosts.clone(),
        };
        let (tempdir, dir) = match spec.dir {
            Some(d) => {
                std::fs::create_dir_all(&d).context(format!("creating {}", d.display()))?;
                (None, d)
            }
            None => {
                use std::os::unix::fs::PermissionsExt;
                // Private (TLS key, data): tempfile's default is 0777 less the umask.
                let t = tempfile::Builder::new()
                    .prefix(&format!("custody-{}-", spec.name))
                    .permissions(std::fs::Permissions::from_mode(0o700))
                    .tempdir()
                    .context("making a temporary directory")?;
                let d = t.path().to_owned();
                (Some(t), d)
            }
        };
        let ips: Vec<std::net::IpAddr> = hosts.iter().map(|h| h.ip).collect();
        let tls = tls::make_tls(&dir, &ips)?;
        let plugin_dir = dir.join("plugins");
        std::fs::create_dir_all(&plugin_dir)
            .context(format!("creating {}", plugin_dir.display()))?;
        for p in &spec.plugins {
            let name = p
                .file_name()
                .ok_or_else(|| Error::usage(format!("{}: not a file", p.display())))?;
            std::fs::copy(p, plugin_dir.join(name)).context(format!("copying {}", p.display()))?;
        }

        // Hold every listener until all ports are chosen, so no two nodes get the same one.
        let listeners: Vec<TcpListener> = (0..spec.nodes * 2)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<std::io::Result<_>>()
            .context("finding free loopback ports")?;
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()).unwrap_or(0))
            .collect();
        drop(listeners);

        let mut nodes = Vec::new();
        for i in 0..spec.nodes {
            let id = format!("node{}", i + 1);
            let node_dir = dir.join(&id);
            std::fs::create_dir_all(node_dir.join("data"))
                .context(format!("creating {}", node_dir.display()))?;
            let (api_port, cluster_port) = (ports[2 * i], ports[2 * i + 1]);
            let peers: Vec<SocketAddr> = (0..spec.nodes)
                .filter(|j| *j != i)
                .map(|j| SocketAddr::new(hosts[j].ip, ports[2 * j]))
                .collect();
            let config = node_dir.join("config.hcl");
            let text = config::NodeConfig {
                cluster: &spec.name,
                id: &id,
                dir: &node_dir,
                api: SocketAddr::new(hosts[i].ip, api_port),
                cluster_addr: SocketAddr::new(hosts[i].ip, cluster_port),
                peers: &peers,
                tls: &tls,
                plugin_dir: &plugin_dir,
                dev: spec.dev,
                audit: spec.audit.as_deref().unwrap_or_default(),
            }
            .render();
            std::fs::write(&config, text).context(format!("writing {}", config.display()))?;
            nodes.push(Node {
                id,
                scheme: if spec.dev { "http" } else { "https" },
                host: hosts[i].clone(),
                api_port,
                cluster_port,
                config,
                log: node_dir.join("server.log"),
                dir: node_dir,
                child: None,
            });
        }
        let mut cluster = LocalCluster {
            name: spec.name,
            nodes,
            ca_cert: tls.ca_cert,
            plugin_dir,
            bao_bin: spec.bao_bin,
            dir,
            _tempdir: tempdir,
            keep: false,
            die_with_parent: spec.die_with_parent,
            dev_root_token: spec
                .dev
                .then(|| crate::secret::SecretString::new(random_token())),
        };
        for i in 0..cluster.nodes.len() {
            cluster.spawn_node(i)?;
        }
        for i in 0..cluster.nodes.len() {
            cluster.wait_listening(i)?;
        }
        Ok(cluster)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The dev server's root token (`None` for a Raft cluster, which starts uninitialized).
    pub fn dev_root_token(&self) -> Option<&crate::secret::SecretString> {
        self.dev_root_token.as_ref()
    }

    pub fn addrs(&self) -> Vec<Addr> {
        self.nodes.iter().map(Node::addr).collect()
    }

    /// `--addr` arguments for every node.
    pub fn addr_args(&self) -> Vec<String> {
        self.nodes
            .iter()
            .flat_map(|n| ["--addr".to_owned(), n.addr().to_string()])
            .collect()
    }

    /// `bao operator init -pgp-keys` by OpenBao's own CLI, as clusters are initialized by hand:
    /// `pgp_keys` are files holding base64 of each holder's binary certificate, in order, and
    /// the root token is encrypted to `root_token_pgp_key` (a file of the same form). The CLI's
    /// JSON answer (`unseal_keys_b64`: each share as the CLI prints it, encrypted to its holder).
    pub fn operator_init_pgp(
        &self,
        threshold: u32,
        pgp_keys: &[PathBuf],
        root_token_pgp_key: &Path,
    ) -> Result<serde_json::Value> {
        let list = |files: &[PathBuf]| {
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let out = Command::new(&self.bao_bin)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.dir)
            .current_dir(&self.dir)
            .args(["operator", "init", "-format=json"])
            .arg(format!("-key-shares={}", pgp_keys.len()))
            .arg(format!("-key-threshold={threshold}"))
            .arg(format!("-pgp-keys={}", list(pgp_keys)))
            .arg(format!(
                "-root-token-pgp-key={}",
                root_token_pgp_key.display()
            ))
            .arg(format!("-address={}", self.nodes[0].addr()))
            .arg(format!("-ca-cert={}", self.ca_cert.display()))
            .output()
            .context("running bao operator init")?;
        if !out.status.success() {
            return Err(Error::failed(format!(
                "bao operator init exited {}: {}",
                out.status,
                crate::ui::escape(String::from_utf8_lossy(&out.stderr).trim())
            )));
        }
        serde_json::from_slice(&out.stdout).context("reading bao operator init's JSON")
    }

    fn spawn_node(&mut self, i: usize) -> Result<()> {
        let node = &mut self.nodes[i];
        let mut cmd = Command::new(&self.bao_bin);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.dir)
            .current_dir(&node.dir)
            .arg("server")
            .arg(format!("-config={}", node.config.display()));
        // The token goes through the environment, not argv, even for a throwaway server.
        if let Some(token) = &self.dev_root_token {
            cmd.arg("-dev")
                .arg(format!("-dev-listen-address=127.0.0.1:{}", node.api_port))
                .arg(format!("-dev-plugin-dir={}", self.plugin_dir.display()))
                .arg("-dev-no-store-token")
                .env("BAO_DEV_ROOT_TOKEN_ID", token.expose());
        }
        node.host.enter(&mut cmd)?;
        if self.die_with_parent {
            process::die_with_parent(&mut cmd);
        }
        node.child = Some(process::spawn_logged(&mut cmd, &node.log)?);
        Ok(())
    }

    fn wait_listening(&mut self, i: usize) -> Result<()> {
        let deadline = Instant::now() + START_BOUND;
        let addr = self.nodes[i].api_socket();
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            let node = &mut self.nodes[i];
            if let Some(child) = node.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                node.child = None;
                self.keep = true;
                return Err(Error::failed(format!(
                    "OpenBao {} exited ({status}) before it listened; its log is {}",
                    self.nodes[i].id,
                    self.nodes[i].log.display()
                )));
            }
            if Instant::now() >= deadline {
                self.keep = true;
                return Err(Error::failed(format!(
                    "OpenBao {} did not listen on {} within {:?}; its log is {}",
                    self.nodes[i].id,
                    addr,
                    START_BOUND,
                    self.nodes[i].log.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops one node (plugin children first, SIGKILL after a bound).
    pub fn stop_node(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            process::stop(&mut child, STOP_BOUND);
        }
    }

    pub fn start_node(&mut self, i: usize) -> Result<()> {
        if self.nodes[i].child.is_none() {
            self.spawn_node(i)?;
            self.wait_listening(i)?;
        }
        Ok(())
    }

    /// Stops every node, then starts them again: they come back initialized and sealed.
    pub fn restart(&mut self) -> Result<()> {
        self.stop_all();
        for i in 0..self.nodes.len() {
            self.spawn_node(i)?;
        }
        for i in 0..self.nodes.len() {
            self.wait_listening(i)?;
        }
        Ok(())
    }

    pub fn stop_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop_node(i);
        }
    }

    /// Kills one node at once (SIGKILL, with its plugin children) and reaps it: a crash, not a
    /// shutdown. [`LocalCluster::start_node`] brings it back (sealed).
    pub fn kill_node(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            process::kill_now(&mut child);
        }
    }

    /// Kills every node at once (SIGKILL, with its plugin children) and waits for it: for an
    /// interrupted run, where nothing of the servers' state is wanted.
    pub fn kill_all(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                process::kill_now(&mut child);
            }
        }
    }

    /// Keeps the directory (configs, data, logs) after the cluster is dropped.
    pub fn keep_files(&mut self) {
        self.keep = true;
    }

    /// Every server log, for a failed test's output.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            out.push_str(&format!("==== {} ({}) ====\n", n.id, n.log.display()));
            out.push_str(&std::fs::read_to_string(&n.log).unwrap_or_default());
        }
        out
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop_all();
        if (self.keep || std::thread::panicking())
            && let Some(t) = self._tempdir.take()
        {
            // Kept for whoever investigates: configs, data and server logs.
            let _ = t.keep();
        }
    }
}

fn random_token() -> String {
    let mut bytes = [0u8; 24];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system RNG");
    format!("dev-{}", hex::encode(bytes))
}
