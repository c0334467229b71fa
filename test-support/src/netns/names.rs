//! The names a harness gives what it makes outside the test process: network namespaces, veth
//! ends, the bridge, nftables tables. Each starts with a prefix unique to the harness instance:
//! `cnx`, the creating process's pid in base 36 (5 digits) and the instance's number in that
//! process (1 digit), so 9 characters, leaving 6 of an interface name's 15. The pid in the name
//! lets [`super::sweep`] tell the leftovers of a dead process from a live harness's.

use std::sync::atomic::{AtomicU32, Ordering};

/// What every harness name starts with.
pub const TAG: &str = "cnx";
const PID_DIGITS: usize = 5;
/// The longest network interface name Linux takes (IFNAMSIZ less the NUL).
const IFNAME_MAX: usize = 15;

static NEXT: AtomicU32 = AtomicU32::new(0);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prefix(String);

impl Prefix {
    /// A prefix no other live harness has: this process's pid and the next instance number.
    pub fn next() -> Prefix {
        let n = NEXT.fetch_add(1, Ordering::SeqCst) % 36;
        Prefix(format!(
            "{TAG}{}{}",
            base36(std::process::id(), PID_DIGITS),
            base36(n, 1)
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The prefix followed by `suffix`: a name short enough for a network interface.
    pub fn name(&self, suffix: &str) -> String {
        let name = format!("{}{suffix}", self.0);
        assert!(
            name.len() <= IFNAME_MAX,
            "{name}: longer than an interface name may be"
        );
        name
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The pid of the process whose harness made `name`, if `name` is a harness name.
pub fn owner_pid(name: &str) -> Option<u32> {
    let digits = name.strip_prefix(TAG)?.get(..PID_DIGITS + 1)?;
    if !digits
        .bytes()
        .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    {
        return None;
    }
    u32::from_str_radix(&digits[..PID_DIGITS], 36).ok()
}

fn base36(mut n: u32, width: usize) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    assert_eq!(n, 0, "a number too large for {width} base-36 digits");
    String::from_utf8(out).expect("ASCII digits")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_names_its_process_and_fits_an_interface() {
        let p = Prefix::next();
        assert_eq!(p.as_str().len(), 9);
        assert_eq!(owner_pid(&p.name("br")), Some(std::process::id()));
        assert_ne!(Prefix::next(), p);
        assert_eq!(owner_pid("cnx0001znbr"), Some(71));
        assert_eq!(owner_pid("cnxtest"), None);
        assert_eq!(owner_pid("eth0"), None);
        assert_eq!(owner_pid("cnxAB_CD0br"), None);
    }
}
