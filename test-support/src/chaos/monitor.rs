//! Asks every node's `sys/health` twice a second, with its own client, and records each time
//! two or more nodes answer as active at once.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::history::History;
use crate::netns::probe::{Probe, Request};

pub struct Monitor {
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<usize>>,
}

impl Monitor {
    /// `bases`: every node's URL.
    pub fn start(ca: &Path, bases: Vec<String>, history: History) -> Monitor {
        let probe = Probe::new(ca);
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let worker = std::thread::spawn(move || {
            let mut asked = 0;
            while !s.load(Ordering::SeqCst) {
                let reqs = bases
                    .iter()
                    .map(|b| Request::get(b.clone(), "sys/health"))
                    .collect();
                let active: Vec<usize> = (probe.all(reqs).into_iter().enumerate())
                    .filter(|(_, a)| matches!(a, Ok((200, _))))
                    .map(|(i, _)| i)
                    .collect();
                if active.len() > 1 {
                    history.two_active(active);
                }
                asked += 1;
                std::thread::sleep(Duration::from_millis(500));
            }
            asked
        });
        Monitor {
            stop,
            worker: Some(worker),
        }
    }

    /// Stops it: how many times it asked.
    pub fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        self.worker
            .take()
            .map_or(0, |w| w.join().expect("the monitor thread"))
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
