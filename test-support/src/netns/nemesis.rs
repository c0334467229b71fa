//! The faults, each bounded in time and healed by its guard ([`Fault`]): partitions made of
//! nftables tables inside the namespaces (a table per fault, deleted to heal), a pause by
//! SIGSTOP/SIGCONT, a crash by SIGKILL and a restart, a leader step-down.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::cluster::{BALANCER, NetCluster};
use super::cmd::{nft_args_in, nft_in};
use super::fault::{Fault, drop_iface_script, drop_peers_script, throttle_script};
use super::net::IFACE;

impl NetCluster {
    /// A fresh table name for a fault ("<prefix>f<k>").
    fn table(&self) -> String {
        let k = self.tables.fetch_add(1, Ordering::SeqCst);
        self.net().prefix.name(&format!("f{k}"))
    }

    /// Loads the nftables `script` (for a table named by the fault) into `netns`; the guard
    /// deletes the table.
    #[track_caller]
    fn blocking(
        &self,
        netns: &str,
        script: impl FnOnce(&str) -> String,
        what: String,
        bound: Duration,
    ) -> Fault {
        let table = self.table();
        if let Err(e) = nft_in(netns, &script(&table)) {
            panic!("{what}: {e}");
        }
        let netns = netns.to_owned();
        Fault::new(what, bound, move || {
            nft_args_in(&netns, &["delete", "table", "inet", &table]).map(drop)
        })
    }

    /// Node `i` cut from every other node, both ways, every port (Raft cluster and API): the
    /// client and the balancer still reach it.
    #[track_caller]
    pub fn partition_node(&self, i: usize, bound: Duration) -> Fault {
        let peers: Vec<Ipv4Addr> = (0..self.cluster.nodes.len())
            .filter(|j| *j != i)
            .map(|j| self.node_host(j).ip)
            .collect();
        let ns = self.node_host(i).netns.clone();
        self.blocking(
            &ns,
            |t| drop_peers_script(t, &peers),
            format!("node {i} partitioned from the other nodes"),
            bound,
        )
    }

    /// Node `i` cut from everybody (the other nodes, the balancer, the client); it keeps
    /// running.
    #[track_caller]
    pub fn isolate_node(&self, i: usize, bound: Duration) -> Fault {
        let ns = self.node_host(i).netns.clone();
        self.blocking(
            &ns,
            |t| drop_iface_script(t, IFACE),
            format!("node {i} isolated"),
            bound,
        )
    }

    /// What node `i` sends to the client limited to about `kbytes` a second (a slow link to
    /// custody; the Raft traffic between nodes is not), so that a long answer (a snapshot) is
    /// still streaming when the next fault strikes.
    #[track_caller]
    pub fn throttle_to_client(&self, i: usize, kbytes: u32, bound: Duration) -> Fault {
        let ns = self.node_host(i).netns.clone();
        let client = self.net().client_ip;
        self.blocking(
            &ns,
            |t| throttle_script(t, client, kbytes),
            format!("node {i} throttled to {kbytes} kB/s towards the client"),
            bound,
        )
    }

    /// The active node isolated ([`NetCluster::isolate_node`]): its index, and the guard.
    #[track_caller]
    pub fn isolate_active(&self, bound: Duration) -> (usize, Fault) {
        self.net();
        let a = self.active_node().expect("a single active node to isolate");
        (a, self.isolate_node(a, bound))
    }

    /// The balancer cut from `nodes`, both ways: it sees them down; the nodes still reach
    /// each other and the client.
    #[track_caller]
    pub fn partition_balancer(&self, nodes: &[usize], bound: Duration) -> Fault {
        let ips: Vec<Ipv4Addr> = nodes.iter().map(|&i| self.node_host(i).ip).collect();
        let ns = self.net().get(BALANCER).netns.clone();
        self.blocking(
            &ns,
            |t| drop_peers_script(t, &ips),
            format!("the balancer partitioned from nodes {nodes:?}"),
            bound,
        )
    }

    /// Node `i`'s server stopped (SIGSTOP) until the guard continues it (SIGCONT): a process
    /// that sleeps and wakes up believing what it believed. Works on loopback too.
    #[track_caller]
    pub fn pause_node(&self, i: usize, bound: Duration) -> Fault {
        let pid = self.cluster.nodes[i].pid().expect("the node runs") as libc::pid_t;
        // SAFETY: kill(2) on a server this harness started.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        Fault::new(format!("node {i} paused"), bound, move || {
            // SAFETY: as above.
            match unsafe { libc::kill(pid, libc::SIGCONT) } {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error().to_string()),
            }
        })
    }

    /// Node `i` killed (SIGKILL, its plugins too) and started again at once: it comes back
    /// sealed, to be unsealed ([`NetCluster::unseal_node`]). Works on loopback too.
    #[track_caller]
    pub fn kill_and_restart(&mut self, i: usize) {
        self.cluster.kill_node(i);
        if let Err(e) = self.cluster.start_node(i) {
            panic!("restarting node {i} after its kill: {e}");
        }
    }

    /// `sys/step-down` on the active node with `root`: the index of the node that stepped
    /// down. The new active node is [`NetCluster::wait_active`]'s to find.
    #[track_caller]
    pub fn step_down(&self, root: &str) -> usize {
        let a = self
            .active_node()
            .expect("a single active node to step down");
        match self.call(a, "PUT", "sys/step-down", Some(root), None) {
            Ok((200 | 204, _)) => a,
            other => panic!("sys/step-down on node {a}: {other:?}"),
        }
    }
}
