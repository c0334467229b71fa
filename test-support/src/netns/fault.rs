//! A fault in place, as a guard: healed when dropped (also while a failed test unwinds), when
//! [`Fault::heal`] is called, or by a watchdog thread once its bound has passed, whichever
//! comes first; healed once.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

type Healer = Box<dyn FnOnce() -> Result<(), String> + Send>;

pub struct Fault {
    what: String,
    healer: Arc<Mutex<Option<Healer>>>,
    stop: Option<mpsc::Sender<()>>,
    watchdog: Option<JoinHandle<()>>,
}

impl Fault {
    /// Guards a fault already in place: `heal` undoes it, at the latest after `bound`.
    pub fn new(
        what: String,
        bound: Duration,
        heal: impl FnOnce() -> Result<(), String> + Send + 'static,
    ) -> Fault {
        let healer: Arc<Mutex<Option<Healer>>> = Arc::new(Mutex::new(Some(Box::new(heal))));
        let (stop, stopped) = mpsc::channel();
        let watchdog = {
            let healer = healer.clone();
            let what = what.clone();
            std::thread::spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(bound) {
                    eprintln!("netns: {what}: healed by its bound of {bound:?}");
                    if let Err(e) = run_once(&healer) {
                        eprintln!("netns: healing {what} failed: {e}");
                    }
                }
            })
        };
        Fault {
            what,
            healer,
            stop: Some(stop),
            watchdog: Some(watchdog),
        }
    }

    pub fn what(&self) -> &str {
        &self.what
    }

    /// Whether it is healed already (by its bound).
    pub fn is_healed(&self) -> bool {
        self.healer.lock().map(|h| h.is_none()).unwrap_or(true)
    }

    /// Heals it now; a failure to heal fails the test.
    #[track_caller]
    pub fn heal(mut self) {
        if let Err(e) = self.heal_now() {
            panic!("healing {}: {e}", self.what);
        }
    }

    fn heal_now(&mut self) -> Result<(), String> {
        drop(self.stop.take());
        if let Some(w) = self.watchdog.take() {
            let _ = w.join();
        }
        run_once(&self.healer)
    }
}

impl Drop for Fault {
    fn drop(&mut self) {
        if let Err(e) = self.heal_now() {
            eprintln!("netns: healing {} failed: {e}", self.what);
        }
    }
}

fn run_once(healer: &Mutex<Option<Healer>>) -> Result<(), String> {
    let heal = healer.lock().map_err(|_| "a poisoned lock")?.take();
    heal.map_or(Ok(()), |h| h())
}

/// An nftables table that drops every packet to and from `peers`.
pub fn drop_peers_script(table: &str, peers: &[std::net::Ipv4Addr]) -> String {
    let set: Vec<String> = peers.iter().map(ToString::to_string).collect();
    let set = set.join(", ");
    format!(
        "table inet {table} {{\n  chain input {{\n    type filter hook input priority -10; policy accept;\n    ip saddr {{ {set} }} drop\n  }}\n  chain output {{\n    type filter hook output priority -10; policy accept;\n    ip daddr {{ {set} }} drop\n  }}\n}}\n"
    )
}

/// An nftables table that drops every packet in and out of `iface`.
pub fn drop_iface_script(table: &str, iface: &str) -> String {
    format!(
        "table inet {table} {{\n  chain input {{\n    type filter hook input priority -10; policy accept;\n    iifname \"{iface}\" drop\n  }}\n  chain output {{\n    type filter hook output priority -10; policy accept;\n    oifname \"{iface}\" drop\n  }}\n}}\n"
    )
}

/// An nftables table that drops what leaves for `to` beyond `kbytes` a second: TCP then backs
/// off to about that rate (no `tc` here; a crude but real slow link).
pub fn throttle_script(table: &str, to: std::net::Ipv4Addr, kbytes: u32) -> String {
    format!(
        "table inet {table} {{\n  chain output {{\n    type filter hook output priority -10; policy accept;\n    ip daddr {to} limit rate over {kbytes} kbytes/second drop\n  }}\n}}\n"
    )
}
