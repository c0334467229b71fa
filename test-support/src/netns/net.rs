//! The hosts: one Linux bridge with an address for the test process (the client), and one
//! network namespace per host joined to it by a veth pair, each with its own address on a
//! private /24. Everything is named with the harness's [`Prefix`] and removed by name on drop.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use custody::localcluster::Host;

use super::cmd::ip_run;
use super::names::Prefix;
use super::subnet;

/// The host byte of the test process's own address on the bridge.
pub const CLIENT_HOST: u8 = 1;
/// The interface each namespace sees its veth end as.
pub const IFACE: &str = "eth0";

pub struct NetHost {
    /// What it is to the test ("n1", "lb").
    pub role: String,
    pub netns: String,
    pub ip: Ipv4Addr,
    /// The bridge-side end of its veth pair (the other end is [`IFACE`] in the namespace).
    veth: String,
}

pub struct Net {
    pub prefix: Prefix,
    pub bridge: String,
    /// The test process's address on the bridge: the client every node and the balancer see.
    pub client_ip: Ipv4Addr,
    pub hosts: Vec<NetHost>,
}

impl Net {
    /// A bridge and one namespace per role (at most 9 roles of 1–2 characters), addresses
    /// `.1` for the test process and `.11`, `.12`, … for the roles. `Err` says why they could
    /// not be made (what was made is removed again).
    pub fn create(prefix: Prefix, roles: &[&str]) -> Result<Net, String> {
        super::cmd::ip();
        super::cmd::nft();
        let mut net = Net {
            bridge: prefix.name("br"),
            prefix,
            client_ip: Ipv4Addr::UNSPECIFIED,
            hosts: Vec::new(),
        };
        // One harness at a time picks its subnet and claims it (the bridge's address), so two
        // of them never share one; leftovers of dead processes go first.
        let lock = subnet::Lock::take()?;
        super::sweep(&lock);
        let base = subnet::pick(&net.prefix)?;
        let addr = |h: u8| Ipv4Addr::new(base[0], base[1], base[2], h);
        net.client_ip = addr(CLIENT_HOST);
        ip_run(&["link", "add", &net.bridge, "type", "bridge"])?;
        ip_run(&[
            "addr",
            "add",
            &format!("{}/24", net.client_ip),
            "dev",
            &net.bridge,
        ])?;
        ip_run(&["link", "set", &net.bridge, "up"])?;
        drop(lock);
        for (k, role) in roles.iter().enumerate() {
            let host = NetHost {
                role: role.to_string(),
                netns: net.prefix.name(role),
                ip: addr(11 + k as u8),
                veth: net.prefix.name(&format!("h{role}")),
            };
            net.hosts.push(host);
            net.plug(net.hosts.len() - 1)?;
        }
        Ok(net)
    }

    /// Makes host `k`'s namespace, its veth pair into the bridge and its address.
    fn plug(&self, k: usize) -> Result<(), String> {
        let h = &self.hosts[k];
        let ns = h.netns.as_str();
        ip_run(&["netns", "add", ns])?;
        ip_run(&[
            "link", "add", &h.veth, "type", "veth", "peer", "name", IFACE, "netns", ns,
        ])?;
        ip_run(&["link", "set", &h.veth, "master", &self.bridge, "up"])?;
        let cidr = format!("{}/24", h.ip);
        ip_run(&["-n", ns, "addr", "add", &cidr, "dev", IFACE])?;
        ip_run(&["-n", ns, "link", "set", IFACE, "up"])?;
        // The plugins a server starts talk to it over loopback.
        ip_run(&["-n", ns, "link", "set", "lo", "up"])?;
        Ok(())
    }

    pub fn get(&self, role: &str) -> &NetHost {
        self.hosts
            .iter()
            .find(|h| h.role == role)
            .unwrap_or_else(|| panic!("no host {role} in {}", self.prefix))
    }

    /// The host `role` as `localcluster` takes it: its address and namespace.
    pub fn host(&self, role: &str) -> Host {
        let h = self.get(role);
        Host {
            ip: IpAddr::V4(h.ip),
            netns: Some(h.netns.clone()),
        }
    }

    /// Every name this harness made on the machine (namespaces, interfaces; nftables tables
    /// live inside the namespaces and go with them).
    pub fn names(&self) -> Vec<String> {
        let mut out = vec![self.bridge.clone()];
        for h in &self.hosts {
            out.extend([h.netns.clone(), h.veth.clone()]);
        }
        out
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for h in &self.hosts {
            remove_netns(&h.netns);
            let _ = ip_run(&["link", "del", &h.veth]);
        }
        let _ = ip_run(&["link", "del", &self.bridge]);
    }
}

/// Removes the namespace `name`: what still runs in it is killed by pid first (only a harness
/// starts processes there), then the namespace is deleted.
pub fn remove_netns(name: &str) {
    if let Ok(pids) = ip_run(&["netns", "pids", name]) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // SAFETY: kill(2) on a process in a namespace a harness made and named.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    let _ = ip_run(&["netns", "del", name]);
}

/// Whether a TCP connection to `to` opens within `bound` from inside the namespace `netns`
/// (`None`: the test process's own), tried on a thread of its own that enters the namespace.
pub fn can_connect(netns: Option<&str>, to: SocketAddr, bound: Duration) -> Result<bool, String> {
    let netns = netns.map(str::to_owned);
    std::thread::spawn(move || {
        if let Some(name) = netns {
            use std::os::fd::AsRawFd;
            let path = format!("/run/netns/{name}");
            let f = std::fs::File::open(&path).map_err(|e| format!("opening {path}: {e}"))?;
            // SAFETY: setns(2) moves only this short-lived thread into the namespace.
            if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(format!(
                    "entering {path}: {}",
                    std::io::Error::last_os_error()
                ));
            }
        }
        Ok(std::net::TcpStream::connect_timeout(&to, bound).is_ok())
    })
    .join()
    .map_err(|_| "the connecting thread panicked".to_owned())?
}
