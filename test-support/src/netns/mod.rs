//! Faults on a real network: each OpenBao node of a Raft cluster and the HAProxy balancer on a
//! host of its own, and the faults that hosts suffer (partitions, isolation, pauses, crashes,
//! a leader step-down), each bounded in time and healed by a guard.
//!
//! # The hosts
//!
//! One Linux bridge; one network namespace per node (`n1`, `n2`, …) and one for the balancer
//! (`lb`), each joined to the bridge by a veth pair and given its own address on a private
//! `10.X.Y.0/24` ([`subnet`] picks one no address or route on the machine covers, under a lock,
//! so parallel tests never share one). The **client is the test process itself**: the bridge
//! carries its address (`.1`), so the tests and the custody they run reach every node's and the
//! balancer's address directly, with no wrapper. Every fault is an nftables table inside the
//! namespace of the host that suffers it, dropping that host's packets to and from the given
//! peers (or everything on its interface, client included, for an isolation); deleting the
//! table heals it. `tc netem` is not available, so there are no latency faults.
//!
//! The servers are started by `localcluster` itself (the one place configs are written): each
//! node's [`custody::localcluster::Host`] gives the address it binds and announces (`api_addr`,
//! `cluster_addr`, the others' `retry_join`), the certificate covers every address, and its
//! process enters the namespace (`setns` before exec) when spawned.
//!
//! # Names and cleanup
//!
//! Everything made on the machine carries a prefix unique to the harness instance
//! ([`names`]: `cnx`, the pid in base 36, an instance digit) and is removed by name when the
//! harness drops, also while a failed test unwinds; [`sweep`] (run by every new harness)
//! removes what harnesses of dead processes left, killing by pid what still runs in their
//! namespaces.
//!
//! # Where namespaces cannot be made
//!
//! A missing `ip` or `nft` fails with an install hint. When the namespaces cannot be made
//! (`ip netns add` refused, no bridge), [`NetCluster::start`] runs the cluster on loopback and
//! keeps the reason: pauses, kills and step-downs still work, and every partition fault fails
//! with that reason — never a skip.

pub mod cluster;
mod cmd;
pub mod fault;
pub mod names;
mod nemesis;
pub mod net;
pub mod probe;
pub mod subnet;
mod sweep;

pub use cluster::{NetCluster, Side, TimedOut, node_role, wait};
pub use fault::Fault;
pub use sweep::{harness_names, sweep};
