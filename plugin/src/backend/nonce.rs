//! One account's nonce counter. Signatures reserve nonces in memory, one at a time, and a
//! signature is made only once the counter in storage is past its nonce. Concurrent signatures
//! share one storage write (group commit): whoever writes, writes the highest reservation so far.
//!
//! A failed write gives its reservations back: the counter returns to what storage holds, and
//! every reservation not yet stored is void (its request fails, nothing signed), so the next
//! request gets the same nonce and no gap opens. Reservations belong to an epoch; a give-back or
//! a forced change ends the epoch, recording up to where its reservations were stored. A crash
//! or a lost answer can still leave stored, unacknowledged nonces (a gap); a nonce is never
//! handed out to two transactions. A request id stored with its nonce (`requests`) lets the
//! retry of such a request fill its gap with the identical transaction.

use std::sync::{Arc, OnceLock};

use tokio::sync::Mutex;

use super::requests::{Binding, Bound, Found, Table};

/// The last nonce handed out: 2^53 - 2, so that the next nonce (2^53 - 1 at most) reaches
/// every client exactly. OpenBao passes a plugin's JSON through Go's `interface{}`, which reads
/// numbers as float64, and JavaScript clients do the same; EIP-2681's own bound (2^64 - 1) is
/// far above it. No account signs 2^53 transactions.
pub const LAST_NONCE: u64 = (1 << 53) - 2;

#[derive(Debug, Default)]
pub struct Epoch {
    /// Set when the epoch ends: the stored counter then. Its reservations below it were stored
    /// (and may be signed); the others are void.
    stored_at_end: OnceLock<(u64, String)>,
}

struct Reserved {
    next: u64,
    epoch: Arc<Epoch>,
    /// Request ids bound to nonces below `next`, stored or about to be.
    requests: Table,
}

/// A nonce handed to one signature, valid until its epoch ends unstored.
#[derive(Debug)]
pub struct Reservation {
    pub nonce: u64,
    /// The nonce is the one an earlier attempt of the same request (same id, same
    /// transaction) was given: the signature is the identical transaction.
    pub repeated: bool,
    epoch: Arc<Epoch>,
}

pub struct NonceCounter {
    /// The next nonce to hand out.
    reserved: Mutex<Reserved>,
    /// The counter as stored; held across every write. Lock order: `durable` before `reserved`.
    durable: Mutex<u64>,
}

pub const VOID: &str = "this reservation was given back; nothing was signed: retry";

/// Why an epoch ended when another node stored the counter. It names the reason OpenBao
/// forwards a request to the active node for ("node is not the leader"), so a read-enabled
/// standby's request goes there rather than failing.
const MOVED: &str = "another node stored the counter past it (this node is not the leader)";

impl NonceCounter {
    /// The counter storage holds, with the request ids stored beside it.
    pub fn new(stored: u64, requests: Vec<Bound>) -> NonceCounter {
        let epoch = Arc::default();
        let requests = Table::from_stored(
            requests.into_iter().filter(|b| b.nonce < stored).collect(),
            &epoch,
        );
        NonceCounter {
            reserved: Mutex::new(Reserved {
                next: stored,
                epoch,
                requests,
            }),
            durable: Mutex::new(stored),
        }
    }

    pub async fn next(&self) -> u64 {
        self.reserved.lock().await.next
    }

    /// Takes `asked` (refused below the next nonce, or past the last nonce) or the next nonce.
    /// With a `binding` whose id is known: its nonce again when the transaction is the same
    /// (a retry), refused when it is another.
    pub async fn reserve(
        &self,
        asked: Option<u64>,
        binding: Option<Binding>,
    ) -> Result<Reservation, String> {
        let mut r = self.reserved.lock().await;
        if let Some(b) = &binding {
            match r.requests.find(b) {
                Found::Same { nonce, epoch } => {
                    return Ok(Reservation {
                        nonce,
                        repeated: true,
                        epoch,
                    });
                }
                Found::Other(n) => {
                    return Err(format!(
                        "field 'request_id': {:?} was given to another transaction (nonce {n}); a \
                         request id names one transaction, and its retries must ask for the same",
                        b.id
                    ));
                }
                Found::New => {}
            }
        }
        let nonce = match asked {
            Some(n) if n < r.next => {
                return Err(format!(
                    "field 'nonce': {n} is below next_nonce {}: it may already be signed, and custody never signs a nonce twice",
                    r.next
                ));
            }
            Some(n) if n > LAST_NONCE => {
                return Err(format!(
                    "field 'nonce': {n} is past the last nonce {LAST_NONCE}: the next nonce would overflow \
                     what OpenBao's JSON carries exactly"
                ));
            }
            Some(n) => n,
            None if r.next > LAST_NONCE => {
                return Err(format!(
                    "the account's nonces are spent: next_nonce {} is past the last nonce {LAST_NONCE}",
                    r.next
                ));
            }
            None => r.next,
        };
        r.next = nonce + 1;
        let epoch = r.epoch.clone();
        if let Some(b) = binding {
            r.requests.insert(nonce, b, epoch.clone());
        }
        Ok(Reservation {
            nonce,
            repeated: false,
            epoch,
        })
    }

    /// Returns once storage holds a counter above the reservation's nonce, writing it if nobody
    /// has yet (with the request ids bound below it). A failed write gives back every
    /// reservation not yet stored, and their bindings.
    pub async fn make_durable<F, Fut>(&self, res: &Reservation, write: F) -> Result<(), String>
    where
        F: FnOnce(u64, Vec<Bound>) -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        let mut durable = self.durable.lock().await;
        if let Some((end, cause)) = res.epoch.stored_at_end.get() {
            return if res.nonce < *end {
                Ok(())
            } else {
                // The cause keeps the storage error (a standby's "cannot write to readonly
                // storage"), so OpenBao forwards this request too.
                Err(format!("{VOID} (an earlier write: {cause})"))
            };
        }
        if *durable > res.nonce {
            return Ok(());
        }
        let (target, requests) = {
            let mut r = self.reserved.lock().await;
            let target = r.next;
            (target, r.requests.latest_below(target))
        };
        match write(target, requests).await {
            Ok(()) => {
                *durable = target;
                Ok(())
            }
            Err(e) => {
                let mut r = self.reserved.lock().await;
                Self::end_epoch(&mut r, *durable, &e);
                r.next = *durable;
                r.requests.forget_from(*durable);
                Err(e)
            }
        }
    }

    fn end_epoch(r: &mut Reserved, stored: u64, cause: &str) {
        let _ = r.epoch.stored_at_end.set((stored, cause.to_owned()));
        r.epoch = Arc::default();
    }

    /// Sets the counter (the `nonce` path). Lowering it needs `force`; `only_raise` (a frozen
    /// mount) refuses any lowering. The caller holds every signature out (the gate). Request
    /// ids bound at or above the new counter are forgotten with it.
    pub async fn set<F, Fut>(
        &self,
        wanted: u64,
        force: bool,
        only_raise: bool,
        write: F,
    ) -> Result<u64, String>
    where
        F: FnOnce(u64, Vec<Bound>) -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        let mut durable = self.durable.lock().await;
        let mut r = self.reserved.lock().await;
        let current = r.next;
        if wanted > LAST_NONCE + 1 {
            return Err(format!(
                "field 'next_nonce': {wanted} is above {}, the largest counter OpenBao's JSON carries exactly",
                LAST_NONCE + 1
            ));
        }
        if wanted < current && only_raise {
            return Err(format!(
                "field 'next_nonce': {wanted} is below the current {current} and signing is frozen: \
                 while frozen the counter may only be raised (the cutover's carry), even with force"
            ));
        }
        if wanted < current && !force {
            return Err(format!(
                "field 'next_nonce': {wanted} is below the current {current}: nonces from {wanted} may \
                 already be signed; give force=true only if you know they were never broadcast"
            ));
        }
        let kept = r.requests.latest_below(wanted);
        write(wanted, kept).await?;
        Self::end_epoch(&mut r, *durable, "the counter was set");
        r.requests.forget_from(wanted);
        *durable = wanted;
        r.next = wanted;
        Ok(current)
    }

    /// Storage says the counter is `stored` (a read after an invalidation). Above what this
    /// process stored, another node stored it: the active node, while this process runs on a
    /// read-enabled standby (OpenBao 2.5+ runs plugins there and sends them requests first), or
    /// a new leader while this one was deposed. The nonces from this process's stored counter
    /// up may be signed there, so no reservation of this process not yet stored may be signed:
    /// they are void (their requests fail, forwarded to the active node, nothing signed here),
    /// and the counter rises to `stored`. The request ids stored for those nonces are learnt,
    /// so a retry gets its nonce (the identical transaction) here too.
    pub async fn observe_stored(&self, stored: u64, requests: Vec<Bound>) {
        let mut durable = self.durable.lock().await;
        if stored <= *durable {
            return;
        }
        let mut r = self.reserved.lock().await;
        let mine = *durable;
        Self::end_epoch(&mut r, mine, MOVED);
        r.requests.forget_from(mine);
        let epoch = r.epoch.clone();
        r.requests.merge(
            requests
                .into_iter()
                .filter(|b| (mine..stored).contains(&b.nonce))
                .collect(),
            &epoch,
        );
        *durable = stored;
        r.next = stored;
    }
}

#[cfg(test)]
mod tests;
