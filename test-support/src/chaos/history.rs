//! The history: every operation the workload made (invoked, then completed), with its times
//! since the run began, where it went, what came back; and what the cluster said of itself
//! (two nodes answering as active at once).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What an operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `sign-tx` for the Authority.
    Sign,
    /// A read of the Authority's nonce counter.
    Read,
    /// An acknowledged transaction sent to the chain.
    Broadcast,
}

/// One operation. `end` is `None` until it completed.
#[derive(Clone, Debug)]
pub struct Op {
    pub id: usize,
    /// Which client: `seq` (one after another, as the child chain), `c0`..`c7`, `reader`.
    pub client: String,
    pub kind: Kind,
    /// Where it went: `lb` (the balancer) or `anvil`.
    pub via: &'static str,
    pub start: Duration,
    pub end: Option<Duration>,
    /// The HTTP status (0: no answer, the error says why).
    pub status: u16,
    /// The nonce signed, or the counter read.
    pub nonce: Option<u64>,
    /// The signed transaction (the payload released for `nonce`).
    pub payload: Option<String>,
    pub tx_hash: Option<String>,
    pub error: Option<String>,
}

/// Two or more nodes answering `sys/health` as active at once.
#[derive(Clone, Debug)]
pub struct TwoActive {
    pub at: Duration,
    pub nodes: Vec<usize>,
}

/// The shared history of one run.
#[derive(Clone)]
pub struct History {
    pub t0: Instant,
    ops: Arc<Mutex<Vec<Op>>>,
    actives: Arc<Mutex<Vec<TwoActive>>>,
}

/// What came back for an operation.
#[derive(Default)]
pub struct Outcome {
    pub status: u16,
    pub nonce: Option<u64>,
    pub payload: Option<String>,
    pub tx_hash: Option<String>,
    pub error: Option<String>,
}

impl History {
    pub fn new() -> History {
        History {
            t0: Instant::now(),
            ops: Arc::default(),
            actives: Arc::default(),
        }
    }

    pub fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    /// Records an invocation; its id, for [`History::complete`].
    pub fn invoke(&self, client: &str, kind: Kind, via: &'static str) -> usize {
        let mut ops = self.ops.lock().expect("the history lock");
        let id = ops.len();
        ops.push(Op {
            id,
            client: client.to_owned(),
            kind,
            via,
            start: self.now(),
            end: None,
            status: 0,
            nonce: None,
            payload: None,
            tx_hash: None,
            error: None,
        });
        id
    }

    pub fn complete(&self, id: usize, o: Outcome) {
        let end = self.now();
        let mut ops = self.ops.lock().expect("the history lock");
        let op = &mut ops[id];
        op.end = Some(end);
        op.status = o.status;
        op.nonce = o.nonce;
        op.payload = o.payload;
        op.tx_hash = o.tx_hash;
        op.error = o.error;
    }

    pub fn two_active(&self, nodes: Vec<usize>) {
        let at = self.now();
        (self.actives.lock().expect("the history lock")).push(TwoActive { at, nodes });
    }

    /// Every operation so far, in invocation order.
    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().expect("the history lock").clone()
    }

    pub fn actives(&self) -> Vec<TwoActive> {
        self.actives.lock().expect("the history lock").clone()
    }
}

impl Default for History {
    fn default() -> Self {
        History::new()
    }
}
