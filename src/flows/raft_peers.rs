//! Waiting for a cluster's Raft peers (its Raft configuration) to be healthy voters, as
//! autopilot sees them.

use std::time::Duration;

use crate::poll::{Check, Stopped, wait_for};

use crate::error::{Error, Result};
use crate::ui::Ui;
use crate::vault::{Addr, AutopilotState, RaftConfiguration, Vault};

/// Waits up to `bound` (zero: checks once) until every peer in the Raft configuration of
/// `addr` (the active node) is a voter that autopilot counts healthy. The configuration is the
/// membership: autopilot's state can lag it by seconds and not yet list a peer that has just
/// joined. On timeout: exit 4 naming the peers, then
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
    let told = std::cell::Cell::new(false);
    let outcome = wait_for(bound, Duration::from_secs(1), || async {
        let config = vault.raft_configuration(addr).await.map_err(|e| {
            super::node_error(
                &format!("reading the Raft peers from {addr} (sys/storage/raft/configuration)"),
                e,
            )
        })?;
        let state = vault.autopilot_state(addr).await.map_err(|e| {
            super::node_error(
                &format!(
                    "reading the Raft peers' health from {addr} (sys/storage/raft/autopilot/state)"
                ),
                e,
            )
        })?;
        let waiting = unstable_peers(&config, &state);
        if waiting.is_empty() {
            return Ok(Check::Ready(()));
        }
        if !bound.is_zero() && !told.replace(true) {
            ui.status(format!(
                "waiting for every Raft peer to be a healthy voter (up to {} s): {waiting}",
                bound.as_secs()
            ));
        }
        Ok::<_, Error>(Check::NotYet(waiting))
    })
    .await;
    match outcome {
        Ok(()) => Ok(()),
        Err(Stopped::Failed(e)) => Err(e),
        Err(Stopped::TimedOut(waiting)) => {
            let after = if bound.is_zero() {
                String::new()
            } else {
                format!(" after {} s", bound.as_secs())
            };
            Err(Error::precondition(format!(
                "not every Raft peer of the target is a healthy voter{after}: {waiting}. {advice}"
            )))
        }
    }
}

/// The Raft picture of a cluster as autopilot keeps it (read with a token on the active node):
/// each peer's role and health, and how many voters the cluster can lose.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RaftHealth {
    pub failure_tolerance: u32,
    pub healthy: bool,
    pub peers: Vec<crate::vault::AutopilotServer>,
}

impl RaftHealth {
    /// Whether the cluster survives losing a node.
    pub fn tolerates_a_failure(&self) -> bool {
        self.failure_tolerance >= 1
    }

    /// One line per peer and a verdict, for people.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for p in &self.peers {
            out.push_str(&format!(
                "  {} ({}): {}, {}\n",
                crate::ui::escape(&p.id),
                crate::ui::escape(&p.address),
                crate::ui::escape(&p.status),
                if p.healthy { "healthy" } else { "NOT healthy" }
            ));
        }
        if self.tolerates_a_failure() {
            out.push_str(&format!(
                "The cluster survives losing {} node{} (autopilot's failure tolerance).",
                self.failure_tolerance,
                if self.failure_tolerance == 1 { "" } else { "s" }
            ));
        } else if self.peers.len() > 1 {
            out.push_str(
                "The cluster cannot yet survive losing a node: autopilot has not made enough \
                 healthy voters (it promotes a joined node some 10-20 s after its unseal).",
            );
        } else {
            out.push_str("A single node: the cluster cannot survive losing it.");
        }
        out
    }
}

/// Autopilot's view of the cluster, from its active node.
pub async fn raft_health(vault: &Vault, active: &Addr) -> Result<RaftHealth> {
    let state = vault.autopilot_state(active).await.map_err(|e| {
        super::node_error(
            &format!("reading autopilot's state from {active} (sys/storage/raft/autopilot/state)"),
            e,
        )
    })?;
    Ok(RaftHealth {
        failure_tolerance: state.failure_tolerance,
        healthy: state.healthy,
        peers: state.servers.into_values().collect(),
    })
}

/// Waits up to `bound` until the cluster survives losing a node: how long it took, or `None`
/// with the last picture (or the last reason there was none) when it did not within the bound.
/// Each look finds the active node again: just after an unseal the leadership may still move,
/// and autopilot may answer 500 for a moment. A token that may not read autopilot's state ends
/// the wait at once.
pub async fn wait_failure_tolerant(
    vault: &Vault,
    addrs: &[Addr],
    bound: Duration,
) -> Result<(Option<Duration>, std::result::Result<RaftHealth, String>)> {
    let started = std::time::Instant::now();
    let last = std::cell::RefCell::new(Err("no look yet".to_owned()));
    let outcome = wait_for(bound, Duration::from_secs(1), || async {
        let look = async {
            let active = match super::active_node(vault, addrs).await {
                Ok(a) => a,
                Err(e) => return Ok(Err(e.to_string())),
            };
            match vault.autopilot_state(&active).await {
                Ok(state) => Ok(Ok(RaftHealth {
                    failure_tolerance: state.failure_tolerance,
                    healthy: state.healthy,
                    peers: state.servers.into_values().collect(),
                })),
                Err(e @ crate::vault::NodeError::Api { status: 403, .. }) => Err(
                    super::node_error(&format!("reading autopilot's state from {active}"), e),
                ),
                Err(e) => Ok(Err(format!("{active}: {e}"))),
            }
        };
        match look.await? {
            Ok(health) => {
                let ready = health.tolerates_a_failure();
                *last.borrow_mut() = Ok(health);
                Ok::<_, Error>(if ready {
                    Check::Ready(())
                } else {
                    Check::NotYet(String::new())
                })
            }
            Err(why) => {
                *last.borrow_mut() = Err(why.clone());
                Ok(Check::NotYet(why))
            }
        }
    })
    .await;
    match outcome {
        Ok(()) => Ok((Some(started.elapsed()), last.into_inner())),
        Err(Stopped::TimedOut(_)) => Ok((None, last.into_inner())),
        Err(Stopped::Failed(e)) => Err(e),
    }
}

/// The configured peers autopilot does not count as healthy voters, described; empty when
/// every one is.
fn unstable_peers(config: &RaftConfiguration, state: &AutopilotState) -> String {
    if config.servers.is_empty() {
        return "the Raft configuration lists no peers yet".to_owned();
    }
    config
        .servers
        .iter()
        .filter_map(|peer| match state.servers.get(&peer.node_id) {
            None => Some(format!(
                "{} ({}) is not in autopilot's state yet ({})",
                peer.node_id,
                peer.address,
                if peer.voter { "a voter" } else { "a non-voter" }
            )),
            Some(s) if s.is_stable_voter() => None,
            Some(s) => Some(format!(
                "{} ({}) is a {}{}, last contact {}, log index {}",
                peer.node_id,
                peer.address,
                s.status,
                if s.healthy { "" } else { " and unhealthy" },
                if s.last_contact.is_empty() {
                    "unknown"
                } else {
                    &s.last_contact
                },
                s.last_index
            )),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::unstable_peers;
    use crate::vault::{AutopilotState, RaftConfiguration};

    fn config(ids: &[&str]) -> RaftConfiguration {
        serde_json::from_value(serde_json::json!({
            "servers": ids.iter().enumerate().map(|(i, id)| serde_json::json!({
                "node_id": id, "address": format!("127.0.0.1:{}", 44955 + i), "leader": i == 0, "voter": i == 0
            })).collect::<Vec<_>>()
        }))
        .unwrap()
    }

    /// The shape OpenBao 2.7.2 gave when a follower had received a restore while catching up.
    fn state(node3_status: &str, node3_healthy: bool) -> AutopilotState {
        serde_json::from_value(serde_json::json!({
            "healthy": node3_healthy,
            "failure_tolerance": 0,
            "leader": "node1",
            "servers": {
                "node1": { "id": "node1", "address": "127.0.0.1:44955", "status": "leader", "healthy": true, "last_contact": "0s", "last_index": 83 },
                "node2": { "id": "node2", "address": "127.0.0.1:44956", "status": "voter", "healthy": true, "last_contact": "4.1s", "last_index": 83 },
                "node3": { "id": "node3", "address": "127.0.0.1:44957", "status": node3_status, "healthy": node3_healthy, "last_contact": "1m30s", "last_index": 0 }
            }
        }))
        .unwrap()
    }

    #[test]
    fn only_healthy_voters_let_a_restore_go_ahead() {
        let all = config(&["node1", "node2", "node3"]);
        assert_eq!(unstable_peers(&all, &state("voter", true)), "");
        let waiting = unstable_peers(&all, &state("non-voter", false));
        assert!(
            waiting.starts_with("node3 (127.0.0.1:44957) is a non-voter and unhealthy"),
            "{waiting}"
        );
        assert!(!waiting.contains("node1") && !waiting.contains("node2"));
        // A voter that lost contact holds the restore back too.
        assert!(unstable_peers(&all, &state("voter", false)).contains("voter and unhealthy"));
        assert_eq!(
            unstable_peers(&RaftConfiguration::default(), &state("voter", true)),
            "the Raft configuration lists no peers yet"
        );
    }

    /// Seen in the rehearsal: a second after two followers joined, autopilot still listed only
    /// the leader, and a check of autopilot's list alone let the restore go ahead.
    #[test]
    fn a_peer_autopilot_does_not_list_yet_holds_the_restore_back() {
        let joined = config(&["node1", "node2", "node3"]);
        let leader_only: AutopilotState = serde_json::from_value(serde_json::json!({
            "servers": { "node1": { "id": "node1", "status": "leader", "healthy": true } }
        }))
        .unwrap();
        let waiting = unstable_peers(&joined, &leader_only);
        assert!(
            waiting
                .contains("node2 (127.0.0.1:44956) is not in autopilot's state yet (a non-voter)")
                && waiting.contains("node3 (127.0.0.1:44957) is not in autopilot's state yet"),
            "{waiting}"
        );
        assert_eq!(unstable_peers(&config(&["node1"]), &leader_only), "");
    }
}
