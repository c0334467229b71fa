//! The server configuration each node of a local cluster runs with: the one place custody writes
//! OpenBao configs (the rehearsal's, the tests' and the network-fault harness's alike).

use std::net::SocketAddr;
use std::path::Path;

use super::tls;

/// What one node's config says about itself and its peers.
pub struct NodeConfig<'a> {
    pub cluster: &'a str,
    pub id: &'a str,
    pub dir: &'a Path,
    /// The API address it listens on and announces (`api_addr`).
    pub api: SocketAddr,
    /// The Raft cluster address it listens on and announces (`cluster_addr`).
    pub cluster_addr: SocketAddr,
    /// The API addresses of the other nodes, each a `retry_join` target.
    pub peers: &'a [SocketAddr],
    pub tls: &'a tls::TlsFiles,
    pub plugin_dir: &'a Path,
    pub dev: bool,
    pub audit: &'a str,
}

impl NodeConfig<'_> {
    pub fn render(&self) -> String {
        if self.dev {
            // The dev server's listener, storage and plugin directory come from its flags.
            return self.audit.to_owned();
        }
        let joins: String = self
            .peers
            .iter()
            .map(|p| {
                format!(
                    "  retry_join {{\n    leader_api_addr = \"https://{p}\"\n    leader_ca_cert_file = \"{}\"\n  }}\n",
                    self.tls.ca_cert.display()
                )
            })
            .collect();
        format!(
            r#"ui = false
cluster_name = "{cluster}"
api_addr = "https://{api}"
cluster_addr = "https://{cluster_addr}"
plugin_directory = "{plugin_dir}"
log_level = "info"

listener "tcp" {{
  address = "{api}"
  cluster_address = "{cluster_addr}"
  tls_cert_file = "{cert}"
  tls_key_file = "{key}"
}}

storage "raft" {{
  path = "{data}"
  node_id = "{id}"
  performance_multiplier = 1
{joins}}}
{audit}"#,
            cluster = self.cluster,
            api = self.api,
            cluster_addr = self.cluster_addr,
            id = self.id,
            audit = self.audit,
            plugin_dir = self.plugin_dir.display(),
            cert = self.tls.server_cert.display(),
            key = self.tls.server_key.display(),
            data = self.dir.join("data").display(),
        )
    }
}
