//! Request ids bound to nonces, so a retry fills the gap its first attempt may have left.
//!
//! A signature whose answer is lost (the node paused or killed after the counter was stored, a
//! forwarded answer dropped by the standby) leaves its nonce stored and unacknowledged: a gap
//! no other transaction may fill, since that signature may be out. A `sign-tx` that carries a
//! `request_id` binds it, with a digest of the transaction asked for, to its nonce, and the
//! binding is stored in the same write as the counter past that nonce (so before the signature
//! exists). A retry with the same id and the same transaction gets that nonce again, and so the
//! identical signed transaction (RFC 6979 signatures are deterministic): the gap is filled and
//! the intent signed once. The same id with another transaction is refused. The last [`KEPT`]
//! bindings are kept.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::nonce::Epoch;

/// How many of the latest bindings the counter's record keeps: a retry must come within this
/// many signatures (with an id) of its first attempt to get its nonce again.
pub const KEPT: usize = 512;

/// A binding as stored beside the counter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bound {
    pub nonce: u64,
    pub id: String,
    /// keccak256 of the transaction asked for (everything but a nonce the plugin chose).
    pub digest: String,
}

/// What a request asks to be bound to its nonce.
#[derive(Clone, Debug)]
pub struct Binding {
    pub id: String,
    pub digest: String,
}

/// What the table knows of a request id.
pub enum Found {
    New,
    /// The same transaction, bound to `nonce` in `epoch`.
    Same {
        nonce: u64,
        epoch: Arc<Epoch>,
    },
    /// Another transaction holds the id, at this nonce.
    Other(u64),
}

struct Entry {
    bound: Bound,
    /// The epoch whose reservation made it (stored ones: the epoch they were loaded in).
    epoch: Arc<Epoch>,
}

/// The bindings this process knows: stored, and reserved but not yet stored.
#[derive(Default)]
pub struct Table {
    entries: Vec<Entry>,
}

impl Table {
    pub fn from_stored(stored: Vec<Bound>, epoch: &Arc<Epoch>) -> Table {
        let mut t = Table::default();
        t.merge(stored, epoch);
        t
    }

    pub fn find(&self, b: &Binding) -> Found {
        match self.entries.iter().find(|e| e.bound.id == b.id) {
            None => Found::New,
            Some(e) if e.bound.digest == b.digest => Found::Same {
                nonce: e.bound.nonce,
                epoch: e.epoch.clone(),
            },
            Some(e) => Found::Other(e.bound.nonce),
        }
    }

    pub fn insert(&mut self, nonce: u64, b: Binding, epoch: Arc<Epoch>) {
        self.entries.push(Entry {
            bound: Bound {
                nonce,
                id: b.id,
                digest: b.digest,
            },
            epoch,
        });
    }

    /// Drops every binding at or above `nonce`: their reservations were given back.
    pub fn forget_from(&mut self, nonce: u64) {
        self.entries.retain(|e| e.bound.nonce < nonce);
    }

    /// The bindings below `below` to store with a counter of `below`: the latest [`KEPT`].
    /// Older ones are forgotten here too, so the table stays bounded.
    pub fn latest_below(&mut self, below: u64) -> Vec<Bound> {
        self.entries.sort_by_key(|e| e.bound.nonce);
        let stored = self
            .entries
            .iter()
            .filter(|e| e.bound.nonce < below)
            .count();
        if stored > KEPT {
            self.entries.drain(..stored - KEPT);
        }
        self.entries
            .iter()
            .filter(|e| e.bound.nonce < below)
            .map(|e| e.bound.clone())
            .collect()
    }

    /// Adds the stored bindings this process does not know yet (another process wrote them).
    pub fn merge(&mut self, stored: Vec<Bound>, epoch: &Arc<Epoch>) {
        for b in stored {
            if !self.entries.iter().any(|e| e.bound.id == b.id) {
                self.entries.push(Entry {
                    bound: b,
                    epoch: epoch.clone(),
                });
            }
        }
    }
}

/// Checks a client's request id: 1 to 128 of A-Z a-z 0-9 and `-_.:`.
pub fn valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_plain_and_bounded() {
        for ok in ["a", "c5-123", "block:0x12.retry_2", &"x".repeat(128)] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in ["", "has space", "new\nline", "é", &"x".repeat(129)] {
            assert!(!valid_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_stored_bindings_are_the_latest_below_the_counter() {
        let epoch = Arc::default();
        let mut t = Table::default();
        for n in (0..(KEPT as u64 + 20)).rev() {
            let b = Binding {
                id: format!("r{n}"),
                digest: "d".into(),
            };
            t.insert(n, b, Arc::clone(&epoch));
        }
        let stored = t.latest_below(KEPT as u64 + 10);
        assert_eq!(stored.len(), KEPT);
        assert_eq!(stored.first().map(|b| b.nonce), Some(10));
        assert_eq!(stored.last().map(|b| b.nonce), Some(KEPT as u64 + 9));
        // Those at or above the counter (not yet stored) are kept; the oldest are forgotten.
        assert!(matches!(
            t.find(&Binding {
                id: format!("r{}", KEPT + 15),
                digest: "d".into()
            }),
            Found::Same { .. }
        ));
        assert!(matches!(
            t.find(&Binding {
                id: "r3".into(),
                digest: "d".into()
            }),
            Found::New
        ));
        assert!(matches!(
            t.find(&Binding {
                id: "r20".into(),
                digest: "e".into()
            }),
            Found::Other(20)
        ));
    }
}
