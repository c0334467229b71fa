//! The private /24 a harness puts its hosts on: `10.X.Y.0/24` with X in 200..=254, first tried
//! where the harness's prefix hashes to, and never one an address or route on the machine
//! already covers. Harnesses pick one at a time, under a lock file, and claim theirs (the
//! bridge's address) before letting go, so parallel tests never share a subnet.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use super::cmd::ip_run;
use super::names::Prefix;

const LOCK_FILE: &str = "/tmp/custody-netns.lock";
const FIRST_X: u32 = 200;
const XS: u32 = 55;

/// An exclusive `flock` on [`LOCK_FILE`], held until dropped.
pub struct Lock(std::fs::File);

impl Lock {
    pub fn take() -> Result<Lock, String> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(LOCK_FILE)
            .map_err(|e| format!("opening {LOCK_FILE}: {e}"))?;
        // SAFETY: flock(2) on a descriptor this struct owns.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(format!(
                "locking {LOCK_FILE}: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(Lock(f))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // SAFETY: as in take; the lock also goes when the descriptor closes.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// The first three bytes of a free subnet for `prefix`.
pub fn pick(prefix: &Prefix) -> Result<[u8; 3], String> {
    let mut taken = networks(&ip_run(&["-4", "-o", "addr", "show"])?);
    taken.extend(networks(&ip_run(&["-4", "route", "show", "table", "all"])?));
    let start = fnv(prefix.as_str()) % (XS * 256);
    (0..XS * 256)
        .map(|k| (start + k) % (XS * 256))
        .map(|n| [10, (FIRST_X + n / 256) as u8, (n % 256) as u8])
        .find(|c| !taken.iter().any(|(net, len)| overlaps(*net, *len, *c)))
        .ok_or_else(|| "no free 10.200-254.*.0/24 subnet on this machine".to_owned())
}

/// Every `A.B.C.D[/N]` in `text` (an address is its own /32).
fn networks(text: &str) -> Vec<(Ipv4Addr, u8)> {
    text.split_whitespace()
        .filter_map(|w| {
            let (a, len) = w.split_once('/').unwrap_or((w, "32"));
            Some((a.parse().ok()?, len.parse().ok().filter(|l| *l <= 32)?))
        })
        .collect()
}

/// Whether `net/len` and `c.0/24` share an address.
fn overlaps(net: Ipv4Addr, len: u8, c: [u8; 3]) -> bool {
    let common = u32::from(len.min(24));
    let mask = if common == 0 {
        0
    } else {
        u32::MAX << (32 - common)
    };
    let cand = u32::from(Ipv4Addr::new(c[0], c[1], c[2], 0));
    (u32::from(net) & mask) == (cand & mask)
}

fn fnv(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subnet_is_taken_by_any_address_or_route_it_shares() {
        let nets = networks("inet 10.200.3.1/24 brd 10.200.3.255 scope\ndefault via 192.0.2.1");
        assert!(nets.contains(&("10.200.3.1".parse().unwrap(), 24)));
        assert!(overlaps("10.200.3.1".parse().unwrap(), 24, [10, 200, 3]));
        assert!(!overlaps("10.200.3.1".parse().unwrap(), 24, [10, 200, 4]));
        assert!(overlaps("10.0.0.0".parse().unwrap(), 8, [10, 254, 9]));
        assert!(overlaps("10.200.3.77".parse().unwrap(), 32, [10, 200, 3]));
        assert!(overlaps("0.0.0.0".parse().unwrap(), 0, [10, 200, 3]));
    }
}
