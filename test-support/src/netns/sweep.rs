//! Removing what harnesses of dead processes left behind (a test killed before its drops ran):
//! every namespace, interface and host nftables table whose name carries the harness tag and
//! the pid of a process that no longer exists.

use super::cmd::{ip_run, nft, run};
use super::names::{TAG, owner_pid};
use super::net::remove_netns;
use super::subnet::Lock;

/// Removes the leftovers of dead processes' harnesses; what it removed. One sweep at a time:
/// the caller holds the harnesses' lock.
pub fn sweep(_held: &Lock) -> Vec<String> {
    let mut removed = Vec::new();
    let dead = |name: &str| owner_pid(name).is_some_and(|pid| !alive(pid));
    for ns in list_netns().into_iter().filter(|n| dead(n)) {
        remove_netns(&ns);
        removed.push(format!("netns {ns}"));
    }
    for link in list_links().into_iter().filter(|n| dead(n)) {
        if ip_run(&["link", "del", &link]).is_ok() {
            removed.push(format!("link {link}"));
        }
    }
    for (family, table) in list_tables().into_iter().filter(|(_, t)| dead(t)) {
        if run(&nft(), &["delete", "table", &family, &table], None).is_ok() {
            removed.push(format!("nft table {family} {table}"));
        }
    }
    removed
}

/// Every harness name on the machine now, live or not: namespaces, interfaces, host tables.
pub fn harness_names() -> Vec<String> {
    let mut out = list_netns();
    out.extend(list_links());
    out.extend(list_tables().into_iter().map(|(_, t)| t));
    out.retain(|n| n.starts_with(TAG));
    out
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// `ip netns list`: "NAME (id: N)" a line.
pub fn list_netns() -> Vec<String> {
    ip_run(&["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// `ip -o link show`: "N: NAME[@PEER]: <...>" a line.
pub fn list_links() -> Vec<String> {
    ip_run(&["-o", "link", "show"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let name = l.split(": ").nth(1)?;
            Some(name.split('@').next()?.to_owned())
        })
        .collect()
}

/// `nft list tables` of the test process's own namespace: "table FAMILY NAME" a line.
pub fn list_tables() -> Vec<(String, String)> {
    run(&nft(), &["list", "tables"], None)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "table").then_some(())?;
            Some((w.next()?.to_owned(), w.next()?.to_owned()))
        })
        .collect()
}
