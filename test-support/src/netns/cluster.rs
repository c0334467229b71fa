//! An OpenBao Raft cluster on the hosts of a [`Net`]: node `i` in namespace `n{i+1}`, HAProxy in
//! `lb`, the test process the client; or on loopback when no namespace could be made (then
//! every partition fault fails with the reason). What it observes: health, the active node,
//! autopilot's failure tolerance, Raft indexes, reachability between hosts.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use custody::localcluster::Host;
use custody::localcluster::haproxy::{LbServer, LocalHaproxy};

use super::net::{Net, NetHost, can_connect};
use super::probe::{Answer, Probe, Request};
use crate::{ClusterSpec, TestCluster, cluster_with};

/// The role of node `i`'s host.
pub fn node_role(i: usize) -> String {
    format!("n{}", i + 1)
}
/// The role of the balancer's host.
pub const BALANCER: &str = "lb";
/// How long a TCP connect may take before a host counts as unreachable.
pub const CONNECT_BOUND: Duration = Duration::from_secs(1);

/// Where a connection starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The test process (custody run by the test), on the bridge's own address.
    Client,
    Node(usize),
    Balancer,
}

pub struct NetCluster {
    /// HAProxy in front of every node (only the active one passes its check), in `lb`.
    pub lb: LocalHaproxy,
    pub cluster: TestCluster,
    pub(super) probe: Probe,
    pub(super) tables: AtomicU32,
    /// The hosts, or why there are none (the cluster runs on loopback then).
    pub(super) net: Result<Net, String>,
}

impl NetCluster {
    /// `spec`'s nodes (and a balancer) each on its own host; on loopback, with the reason
    /// printed and kept, when namespaces cannot be made here. `spec.hosts` is filled in.
    pub fn start(spec: ClusterSpec) -> NetCluster {
        let mut roles: Vec<String> = (0..spec.nodes).map(node_role).collect();
        roles.push(BALANCER.to_owned());
        let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
        let net = Net::create(super::names::Prefix::next(), &roles);
        if let Err(reason) = &net {
            eprintln!(
                "netns: no network namespaces here ({reason}): the cluster runs on loopback, \
                 and every partition fault fails with this reason"
            );
        }
        Self::on(spec, net)
    }

    /// The loopback fallback itself, for `reason`.
    pub fn loopback(spec: ClusterSpec, reason: &str) -> NetCluster {
        Self::on(spec, Err(reason.to_owned()))
    }

    fn on(mut spec: ClusterSpec, net: Result<Net, String>) -> NetCluster {
        if let Ok(net) = &net {
            spec.hosts = (0..spec.nodes).map(|i| net.host(&node_role(i))).collect();
        }
        let lb_host = net
            .as_ref()
            .map(|n| n.host(BALANCER))
            .unwrap_or_else(|_| Host::loopback());
        let cluster = cluster_with(spec);
        let servers: Vec<LbServer> = (cluster.nodes.iter())
            .map(|n| LbServer {
                name: n.id.clone(),
                ip: n.host.ip,
                port: n.api_port,
                ca_file: cluster.ca_cert.clone(),
                disabled: false,
            })
            .collect();
        let lb = LocalHaproxy::start_on(&lb_host, &cluster.dir().join("lb"), "vault", &servers)
            .unwrap_or_else(|e| panic!("starting HAProxy on {}: {e}", lb_host.ip));
        NetCluster {
            probe: Probe::new(&cluster.ca_cert),
            lb,
            cluster,
            tables: AtomicU32::new(0),
            net,
        }
    }

    /// Why the cluster runs on loopback (`None`: each node on its own host).
    pub fn fallback_reason(&self) -> Option<&str> {
        self.net.as_ref().err().map(String::as_str)
    }

    /// The hosts; a test of a partition fails here, with the reason, on the loopback fallback.
    #[track_caller]
    pub fn net(&self) -> &Net {
        match &self.net {
            Ok(n) => n,
            Err(reason) => panic!(
                "this fault needs network namespaces, which could not be made here: {reason}"
            ),
        }
    }

    /// Every name the harness made on the machine (empty on loopback).
    pub fn names(&self) -> Vec<String> {
        self.net.as_ref().map(Net::names).unwrap_or_default()
    }

    pub(super) fn node_host(&self, i: usize) -> &NetHost {
        self.net().get(&node_role(i))
    }

    pub fn base(&self, i: usize) -> String {
        self.cluster.nodes[i].addr().to_string()
    }

    /// One request to node `i`, with `token`.
    pub fn call(
        &self,
        i: usize,
        method: &'static str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        self.probe.call(Request {
            base: self.base(i),
            method,
            path: path.to_owned(),
            token: token.map(str::to_owned),
            body,
        })
    }

    /// A GET through the balancer.
    pub fn through_balancer(&self, path: &str, token: Option<&str>) -> Answer {
        self.probe.call(Request {
            token: token.map(str::to_owned),
            ..Request::get(self.lb.url(), path)
        })
    }

    /// `sys/health`'s status from every node at once (200 active, 429 standby, 503 sealed).
    pub fn health(&self) -> Vec<Result<u16, String>> {
        let reqs = (0..self.cluster.nodes.len())
            .map(|i| Request::get(self.base(i), "sys/health"))
            .collect();
        (self.probe.all(reqs).into_iter())
            .map(|a| a.map(|(s, _)| s))
            .collect()
    }

    /// The nodes that answer `sys/health` as active (two while a deposed leader still
    /// believes it leads).
    pub fn active_nodes(&self) -> Vec<usize> {
        (self.health().into_iter().enumerate())
            .filter(|(_, h)| *h == Ok(200))
            .map(|(i, _)| i)
            .collect()
    }

    /// The one node that answers as active, if exactly one does.
    pub fn active_node(&self) -> Option<usize> {
        match self.active_nodes()[..] {
            [one] => Some(one),
            _ => None,
        }
    }

    /// Waits until exactly one node answers as active, and it is not `not`; that node.
    #[track_caller]
    pub fn wait_active(&self, bound: Duration, not: Option<usize>) -> usize {
        let mut last = Vec::new();
        wait(bound, || {
            last = self.active_nodes();
            matches!(last[..], [a] if Some(a) != not)
        })
        .unwrap_or_else(|_| {
            panic!("no single active node other than {not:?} within {bound:?}; active: {last:?}")
        });
        last[0]
    }

    /// autopilot's state (`sys/storage/raft/autopilot/state`), asked of the active node.
    pub fn autopilot(&self, root: &str) -> Result<Value, String> {
        let a = self.active_node().ok_or("no single active node")?;
        match self.call(
            a,
            "GET",
            "sys/storage/raft/autopilot/state",
            Some(root),
            None,
        )? {
            (200, v) => Ok(v["data"].clone()),
            (s, v) => Err(format!("autopilot state: HTTP {s}: {v}")),
        }
    }

    /// Waits, as an operator would before a fault, until autopilot says the cluster is healthy
    /// and survives losing a node (`failure_tolerance` ≥ 1).
    #[track_caller]
    pub fn wait_failure_tolerant(&self, root: &str, bound: Duration) {
        let mut last = Err(String::new());
        let ok = wait(bound, || {
            last = self.autopilot(root);
            last.as_ref().is_ok_and(|s| {
                s["healthy"] == json!(true) && s["failure_tolerance"].as_u64() >= Some(1)
            })
        });
        if ok.is_err() {
            panic!("the cluster did not become failure tolerant within {bound:?}: {last:?}");
        }
    }

    /// Node `i`'s own Raft applied index (`sys/leader`, answered by the node itself).
    pub fn applied_index(&self, i: usize) -> Result<u64, String> {
        match self.call(i, "GET", "sys/leader", None, None)? {
            (200, v) => v["raft_applied_index"]
                .as_u64()
                .ok_or_else(|| format!("sys/leader without raft_applied_index: {v}")),
            (s, v) => Err(format!("sys/leader: HTTP {s}: {v}")),
        }
    }

    /// Unseals node `i` with `keys` and waits until it says it is unsealed.
    #[track_caller]
    pub fn unseal_node(&self, i: usize, keys: &[String], bound: Duration) {
        // A node that joins through `retry_join` takes keys only once it found its leader
        // (until then it says it is not initialized).
        let mut last = Err(String::new());
        wait(bound, || {
            last = self.call(i, "GET", "sys/seal-status", None, None);
            match &last {
                Ok((200, v)) if v["sealed"] == json!(false) => return true,
                Ok((200, v)) if v["initialized"] == json!(false) => return false,
                _ => {}
            }
            for k in keys {
                last = self.call(i, "POST", "sys/unseal", None, Some(json!({ "key": k })));
                if matches!(&last, Ok((200, v)) if v["sealed"] == json!(false)) {
                    break;
                }
            }
            false
        })
        .unwrap_or_else(|_| panic!("node {i} not unsealed within {bound:?}: {last:?}"));
    }

    /// The address `side` connects from's namespace (`None`: the test process's own).
    fn netns_of(&self, side: Side) -> Option<String> {
        match side {
            Side::Client => None,
            Side::Node(i) => Some(self.node_host(i).netns.clone()),
            Side::Balancer => Some(self.net().get(BALANCER).netns.clone()),
        }
    }

    /// Whether a TCP connection from `side` to `to` opens (within [`CONNECT_BOUND`]).
    #[track_caller]
    pub fn reaches(&self, side: Side, to: SocketAddr) -> bool {
        can_connect(self.netns_of(side).as_deref(), to, CONNECT_BOUND)
            .unwrap_or_else(|e| panic!("connecting from {side:?} to {to}: {e}"))
    }

    /// Node `i`'s API and Raft cluster addresses.
    pub fn node_ports(&self, i: usize) -> [SocketAddr; 2] {
        let n = &self.cluster.nodes[i];
        [n.api_socket(), n.cluster_socket()]
    }

    /// Node `i`'s address.
    pub fn node_ip(&self, i: usize) -> IpAddr {
        self.cluster.nodes[i].host.ip
    }
}

/// A [`wait`] whose condition did not hold within its bound.
#[derive(Debug)]
pub struct TimedOut(pub Duration);

/// Polls `done` every 200 ms until it holds (`Ok`) or `bound` passes (`Err`).
pub fn wait(bound: Duration, mut done: impl FnMut() -> bool) -> Result<(), TimedOut> {
    let deadline = Instant::now() + bound;
    loop {
        if done() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(TimedOut(bound));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
