//! Waiting for a cluster's Raft peers to be healthy voters, as autopilot sees them.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::ui::Ui;
use crate::vault::{Addr, AutopilotState, Vault};

/// Waits up to `bound` (zero: checks once) until every Raft peer known to `addr` (the active
/// node) is a voter that autopilot counts healthy. On timeout: exit 4 naming the peers, then
/// `advice`.
///
/// A restore needs this: a follower still catching up when the restore lands receives the
/// restored data as a plain snapshot install, stays unsealed with the target's old keys and
/// never rejoins (seen on OpenBao 2.7.2 with a follower that had joined a second before).
/// A cutover needs it too: a non-voter does not count towards green's quorum, and an unhealthy
/// peer is not serving.
pub async fn wait_stable_voters(
    ui: &Ui,
    vault: &Vault,
    addr: &Addr,
    bound: Duration,
    advice: &str,
) -> Result<()> {
    let deadline = Instant::now() + bound;
    let mut told = false;
    loop {
        let state = vault.autopilot_state(addr).await.map_err(|e| {
            super::node_error(
                &format!(
                    "reading the Raft peers' health from {addr} (sys/storage/raft/autopilot/state)"
                ),
                e,
            )
        })?;
        let waiting = unstable_peers(&state);
        if waiting.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let after = if bound.is_zero() {
                String::new()
            } else {
                format!(" after {} s", bound.as_secs())
            };
            return Err(Error::precondition(format!(
                "not every Raft peer of the target is a healthy voter{after}: {waiting}. {advice}"
            )));
        }
        if !told {
            ui.status(format!(
                "waiting for every Raft peer to be a healthy voter (up to {} s): {waiting}",
                bound.as_secs()
            ));
            told = true;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The peers autopilot does not count as healthy voters, described; empty when all are.
fn unstable_peers(state: &AutopilotState) -> String {
    if state.servers.is_empty() {
        return "autopilot lists no peers yet".to_owned();
    }
    state
        .servers
        .values()
        .filter(|s| !s.is_stable_voter())
        .map(|s| {
            format!(
                "{} ({}) is a {}{}, last contact {}, log index {}",
                s.id,
                s.address,
                s.status,
                if s.healthy { "" } else { " and unhealthy" },
                if s.last_contact.is_empty() {
                    "unknown"
                } else {
                    &s.last_contact
                },
                s.last_index
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::unstable_peers;
    use crate::vault::AutopilotState;

    /// The shape OpenBao 2.7.2 gave when a follower had received a restore while catching up.
    fn state(node3_status: &str, node3_healthy: bool) -> AutopilotState {
        serde_json::from_value(serde_json::json!({
            "healthy": node3_healthy,
            "failure_tolerance": 0,
            "leader": "node1",
            "servers": {
                "node1": { "id": "node1", "address": "127.0.0.1:44955", "status": "leader", "healthy": true, "last_contact": "0s", "last_index": 83 },
                "node2": { "id": "node2", "address": "127.0.0.1:43347", "status": "voter", "healthy": true, "last_contact": "4.1s", "last_index": 83 },
                "node3": { "id": "node3", "address": "127.0.0.1:46065", "status": node3_status, "healthy": node3_healthy, "last_contact": "1m30s", "last_index": 0 }
            }
        }))
        .unwrap()
    }

    #[test]
    fn only_healthy_voters_let_a_restore_go_ahead() {
        assert_eq!(unstable_peers(&state("voter", true)), "");
        let waiting = unstable_peers(&state("non-voter", false));
        assert!(
            waiting.starts_with("node3 (127.0.0.1:46065) is a non-voter and unhealthy"),
            "{waiting}"
        );
        assert!(!waiting.contains("node1") && !waiting.contains("node2"));
        // A voter that lost contact holds the restore back too.
        assert!(unstable_peers(&state("voter", false)).contains("voter and unhealthy"));
        assert_eq!(
            unstable_peers(&AutopilotState::default()),
            "autopilot lists no peers yet"
        );
    }
}
