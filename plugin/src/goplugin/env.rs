//! What the server tells the plugin through its environment (OpenBao sets `BAO_` and `VAULT_`
//! names; HashiCorp Vault only `VAULT_`).

pub const MAGIC_COOKIE_KEY: &str = "VAULT_BACKEND_PLUGIN";
pub const MAGIC_COOKIE_VALUE: &str = "6669da05-b1c8-4f49-97d9-c8e5bed98e20";
/// The go-plugin application protocol this plugin speaks: v5 with AutoMTLS.
pub const APP_PROTOCOL: u32 = 5;

pub struct LaunchEnv {
    pub cookie_ok: bool,
    pub offered_versions: Vec<u32>,
    /// PEM of the server's one-off client certificate.
    pub client_cert_pem: Option<String>,
    pub automtls: bool,
    pub metadata_mode: bool,
    pub socket_dir: Option<std::path::PathBuf>,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn bao_or_vault(suffix: &str) -> Option<String> {
    var(&format!("BAO_{suffix}")).or_else(|| var(&format!("VAULT_{suffix}")))
}

impl LaunchEnv {
    pub fn read() -> LaunchEnv {
        LaunchEnv {
            cookie_ok: var(MAGIC_COOKIE_KEY).as_deref() == Some(MAGIC_COOKIE_VALUE),
            offered_versions: var("PLUGIN_PROTOCOL_VERSIONS")
                .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
                .unwrap_or_default(),
            client_cert_pem: var("PLUGIN_CLIENT_CERT"),
            automtls: bao_or_vault("PLUGIN_AUTOMTLS_ENABLED").as_deref() == Some("true"),
            metadata_mode: bao_or_vault("PLUGIN_METADATA_MODE").as_deref() == Some("true"),
            socket_dir: var("PLUGIN_UNIX_SOCKET_DIR").map(Into::into),
        }
    }
}

/// The line go-plugin reads from stdout: `CORE|APP|NETWORK|ADDRESS|PROTOCOL|CERT`, the
/// certificate as base64 of its DER without padding.
pub fn handshake_line(socket: &std::path::Path, cert_der: &[u8]) -> String {
    use base64::Engine as _;
    format!(
        "1|{APP_PROTOCOL}|unix|{}|grpc|{}",
        socket.display(),
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(cert_der)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn handshake_line_has_unpadded_base64() {
        let line = super::handshake_line(std::path::Path::new("/tmp/p.sock"), &[1, 2, 3, 4]);
        assert_eq!(line, "1|5|unix|/tmp/p.sock|grpc|AQIDBA");
    }
}
