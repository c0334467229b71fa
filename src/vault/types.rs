//! Typed requests and responses of the Vault/OpenBao endpoints custody uses. Every field has a
//! default, so a server that leaves one out (Vault and OpenBao differ a little) still decodes.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct SealStatus {
    #[serde(rename = "type")]
    pub seal_type: String,
    pub initialized: bool,
    pub sealed: bool,
    /// Threshold.
    pub t: u32,
    /// Number of shares.
    pub n: u32,
    pub progress: u32,
    pub nonce: String,
    pub version: String,
    pub build_date: String,
    pub migration: bool,
    pub cluster_name: String,
    pub cluster_id: String,
    pub recovery_seal: bool,
    pub storage_type: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct Health {
    pub initialized: bool,
    pub sealed: bool,
    pub standby: bool,
    pub performance_standby: bool,
    pub server_time_utc: i64,
    pub version: String,
    pub cluster_name: String,
    pub cluster_id: String,
}

/// What `sys/health`'s status code says about a node's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HaRole {
    Active,
    Standby,
    PerfStandby,
    Sealed,
    Uninitialized,
    Other,
}

impl HaRole {
    pub fn from_health_code(code: u16) -> HaRole {
        match code {
            200 => HaRole::Active,
            429 => HaRole::Standby,
            472 | 473 => HaRole::PerfStandby,
            501 => HaRole::Uninitialized,
            503 => HaRole::Sealed,
            _ => HaRole::Other,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            HaRole::Active => "active",
            HaRole::Standby => "standby",
            HaRole::PerfStandby => "perf-standby",
            HaRole::Sealed => "sealed",
            HaRole::Uninitialized => "uninitialized",
            HaRole::Other => "other",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct Leader {
    pub ha_enabled: bool,
    pub is_self: bool,
    pub leader_address: String,
    pub leader_cluster_address: String,
    pub raft_committed_index: u64,
    pub raft_applied_index: u64,
}

#[derive(Debug, Serialize)]
pub struct InitRequest {
    pub secret_shares: u32,
    pub secret_threshold: u32,
    /// base64 of each holder's binary public certificate, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pgp_keys: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub root_token_pgp_key: String,
}

impl InitRequest {
    /// An init without PGP keys: the server returns the shares in the clear. Only for a
    /// throwaway server whose shares never leave custody's memory.
    pub fn plain(shares: u32, threshold: u32) -> InitRequest {
        InitRequest {
            secret_shares: shares,
            secret_threshold: threshold,
            pgp_keys: Vec::new(),
            root_token_pgp_key: String::new(),
        }
    }
}

/// With `pgp_keys`, every field here is ciphertext: `keys_base64[i]` is a binary OpenPGP message
/// to holder i, `root_token` one to the root token's key. Without them (a throwaway server's
/// init) they are the plaintext keys and token: wiped when dropped, never shown by `Debug`.
#[derive(Default, Deserialize)]
pub struct InitResponse {
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default)]
    pub keys_base64: Vec<String>,
    #[serde(default)]
    pub root_token: String,
}

impl Drop for InitResponse {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.keys.zeroize();
        self.keys_base64.zeroize();
        self.root_token.zeroize();
    }
}

impl std::fmt::Debug for InitResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitResponse")
            .field("keys", &format_args!("[{} redacted]", self.keys.len()))
            .field(
                "keys_base64",
                &format_args!("[{} redacted]", self.keys_base64.len()),
            )
            .field("root_token", &"redacted")
            .finish()
    }
}

/// `sys/storage/raft/autopilot/state`: the leader's view of every Raft peer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AutopilotState {
    /// How many voters the cluster can lose and keep its quorum.
    pub failure_tolerance: u32,
    pub healthy: bool,
    pub servers: std::collections::BTreeMap<String, AutopilotServer>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct AutopilotServer {
    pub id: String,
    pub address: String,
    /// "leader", "voter" or "non-voter".
    pub status: String,
    pub healthy: bool,
    pub last_contact: String,
    pub last_index: u64,
}

impl AutopilotServer {
    /// A voter that autopilot counts healthy: caught up and in contact.
    pub fn is_stable_voter(&self) -> bool {
        self.healthy && matches!(self.status.as_str(), "leader" | "voter")
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RaftConfiguration {
    pub servers: Vec<RaftServer>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RaftServer {
    pub node_id: String,
    pub address: String,
    pub leader: bool,
    pub voter: bool,
}

#[cfg(test)]
mod init_response_tests {
    #[test]
    fn debug_never_shows_keys_or_token() {
        let r: super::InitResponse = serde_json::from_str(
            r#"{"keys":["KEY-ONE"],"keys_base64":["KEY-B64"],"root_token":"ROOT-TOKEN"}"#,
        )
        .unwrap();
        let shown = format!("{r:?}");
        for secret in ["KEY-ONE", "KEY-B64", "ROOT-TOKEN"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert_eq!(r.keys, ["KEY-ONE"]);
    }
}
