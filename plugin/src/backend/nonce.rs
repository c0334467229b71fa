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
    stored_at_end: OnceLock<u64>,
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

pub const VOID: &str = "storing an earlier nonce failed, so this reservation was given back; nothing was signed: retry";

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
        if let Some(&end) = res.epoch.stored_at_end.get() {
            return if res.nonce < end {
                Ok(())
            } else {
                Err(VOID.to_owned())
            };
        }
        if *durable > res.nonce {
            return Ok(());
        }
        let (target, requests) = {
            let mut r = self.reserved.lock().await;
            let target = r.next;
            (target, r.requests.to_store(target))
        };
        match write(target, requests).await {
            Ok(()) => {
                *durable = target;
                Ok(())
            }
            Err(e) => {
                let mut r = self.reserved.lock().await;
                Self::end_epoch(&mut r, *durable);
                r.next = *durable;
                r.requests.forget_from(*durable);
                Err(e)
            }
        }
    }

    fn end_epoch(r: &mut Reserved, stored: u64) {
        let _ = r.epoch.stored_at_end.set(stored);
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
        let kept = r.requests.to_store(wanted);
        write(wanted, kept).await?;
        Self::end_epoch(&mut r, *durable);
        r.requests.forget_from(wanted);
        *durable = wanted;
        r.next = wanted;
        Ok(current)
    }

    /// Storage says the counter is `stored` (an invalidation): the counter only ever rises to
    /// meet it, so nothing reserved or signed is handed out again; request ids stored there
    /// that this process does not know are learnt.
    pub async fn observe_stored(&self, stored: u64, requests: Vec<Bound>) {
        let mut durable = self.durable.lock().await;
        let mut r = self.reserved.lock().await;
        if stored > *durable {
            *durable = stored;
        }
        if stored > r.next {
            r.next = stored;
        }
        let epoch = r.epoch.clone();
        r.requests.merge(
            requests.into_iter().filter(|b| b.nonce < stored).collect(),
            &epoch,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::requests::KEPT;
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::atomic::{AtomicU64, Ordering};

    async fn ok_write(_: u64, _: Vec<Bound>) -> Result<(), String> {
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_reservations_are_distinct_and_share_writes() {
        let counter = Arc::new(NonceCounter::new(5, Vec::new()));
        let writes = Arc::new(AtomicU64::new(0));
        let stored = Arc::new(AtomicU64::new(5));
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let (c, w, s) = (counter.clone(), writes.clone(), stored.clone());
            tasks.push(tokio::spawn(async move {
                let res = c.reserve(None, None).await.unwrap();
                let s2 = s.clone();
                c.make_durable(&res, |v, _| async move {
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                    w.fetch_add(1, Ordering::SeqCst);
                    s2.fetch_max(v, Ordering::SeqCst);
                    Ok(())
                })
                .await
                .unwrap();
                assert!(
                    s.load(Ordering::SeqCst) > res.nonce,
                    "signed before the counter was stored past it"
                );
                res.nonce
            }));
        }
        let mut got = Vec::new();
        for t in tasks {
            got.push(t.await.unwrap());
        }
        got.sort_unstable();
        assert_eq!(got, (5..69).collect::<Vec<_>>());
        assert!(
            writes.load(Ordering::SeqCst) < 64,
            "no group commit happened"
        );
        assert_eq!(stored.load(Ordering::SeqCst), 69);
    }

    #[tokio::test]
    async fn below_next_is_refused_and_lowering_needs_force() {
        let c = NonceCounter::new(3, Vec::new());
        assert!(c.reserve(Some(2), None).await.is_err());
        assert_eq!(c.reserve(Some(7), None).await.unwrap().nonce, 7);
        assert_eq!(c.next().await, 8);
        assert!(c.set(4, false, false, ok_write).await.is_err());
        assert_eq!(c.set(4, true, false, ok_write).await.unwrap(), 8);
        assert_eq!(c.reserve(None, None).await.unwrap().nonce, 4);
    }

    #[tokio::test]
    async fn frozen_counters_only_rise_even_with_force() {
        let c = NonceCounter::new(10, Vec::new());
        let err = c.set(3, true, true, ok_write).await.unwrap_err();
        assert!(err.contains("only be raised"), "{err}");
        assert_eq!(c.next().await, 10);
        assert_eq!(c.set(12, false, true, ok_write).await.unwrap(), 10);
        assert_eq!(c.next().await, 12);
    }

    #[tokio::test]
    async fn the_last_nonce_is_never_passed() {
        let c = NonceCounter::new(0, Vec::new());
        assert!(
            c.reserve(Some(u64::MAX), None)
                .await
                .unwrap_err()
                .contains("overflow")
        );
        assert!(c.set(u64::MAX, false, false, ok_write).await.is_err());
        let last = c.reserve(Some(LAST_NONCE), None).await.unwrap();
        assert_eq!(last.nonce, LAST_NONCE);
        assert!(c.reserve(None, None).await.unwrap_err().contains("spent"));
    }

    #[tokio::test]
    async fn a_failed_write_signs_nothing_and_gives_the_nonce_back() {
        let c = NonceCounter::new(4, Vec::new());
        let res = c.reserve(None, None).await.unwrap();
        let err = c
            .make_durable(&res, |_, _| async { Err("leadership lost".to_owned()) })
            .await
            .unwrap_err();
        assert_eq!(err, "leadership lost");
        assert_eq!(c.next().await, 4, "the reservation was not given back");
        let again = c.reserve(None, None).await.unwrap();
        assert_eq!(again.nonce, 4);
        c.make_durable(&again, ok_write).await.unwrap();
        assert_eq!(c.next().await, 5);
    }

    #[tokio::test]
    async fn a_failed_group_write_voids_every_unstored_reservation() {
        let c = NonceCounter::new(0, Vec::new());
        let stored_one = c.reserve(None, None).await.unwrap();
        c.make_durable(&stored_one, ok_write).await.unwrap();
        let a = c.reserve(None, None).await.unwrap();
        let b = c.reserve(None, None).await.unwrap();
        assert_eq!((a.nonce, b.nonce), (1, 2));
        assert!(
            c.make_durable(&a, |_, _| async { Err("sealed".to_owned()) })
                .await
                .is_err()
        );
        // b's nonce is handed out again, so b itself must never be signed.
        let retry = c.reserve(None, None).await.unwrap();
        assert_eq!(retry.nonce, 1);
        let retry2 = c.reserve(None, None).await.unwrap();
        c.make_durable(&retry2, ok_write).await.unwrap();
        assert_eq!(c.make_durable(&b, ok_write).await.unwrap_err(), VOID);
        // A reservation stored before the failure stays good.
        c.make_durable(&stored_one, ok_write).await.unwrap();
        c.make_durable(&retry, ok_write).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failing_writes_under_load_leave_no_gap_and_no_repeat() {
        let counter = Arc::new(NonceCounter::new(0, Vec::new()));
        let stored = Arc::new(AtomicU64::new(0));
        let calls = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..400 {
            let (c, s, n) = (counter.clone(), stored.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                let res = c.reserve(None, None).await.unwrap();
                let s2 = s.clone();
                let failed = c
                    .make_durable(&res, |v, _| async move {
                        tokio::time::sleep(std::time::Duration::from_micros(300)).await;
                        if n.fetch_add(1, Ordering::SeqCst) % 3 == 1 {
                            return Err("storage error".to_owned());
                        }
                        s2.fetch_max(v, Ordering::SeqCst);
                        Ok(())
                    })
                    .await
                    .is_err();
                assert!(failed || s.load(Ordering::SeqCst) > res.nonce);
                (!failed).then_some(res.nonce)
            }));
        }
        let mut signed = Vec::new();
        for t in tasks {
            signed.extend(t.await.unwrap());
        }
        let distinct: BTreeSet<u64> = signed.iter().copied().collect();
        assert_eq!(distinct.len(), signed.len(), "a nonce was handed out twice");
        assert!(
            signed.len() < 400,
            "no write failed: the test proves nothing"
        );
        assert_eq!(
            distinct,
            (0..signed.len() as u64).collect(),
            "the signed nonces have a gap"
        );
        assert_eq!(counter.next().await, signed.len() as u64);
    }

    #[tokio::test]
    async fn storage_news_only_raises_the_counter() {
        let c = NonceCounter::new(8, Vec::new());
        let in_flight = c.reserve(None, None).await.unwrap();
        c.observe_stored(2, Vec::new()).await;
        assert_eq!(
            c.next().await,
            9,
            "a stale stored value lowered the counter"
        );
        c.make_durable(&in_flight, ok_write).await.unwrap();
        c.observe_stored(20, Vec::new()).await;
        assert_eq!(c.reserve(None, None).await.unwrap().nonce, 20);
    }

    fn bind(id: &str, digest: &str) -> Option<Binding> {
        Some(Binding {
            id: id.to_owned(),
            digest: digest.to_owned(),
        })
    }

    #[tokio::test]
    async fn a_retry_gets_its_nonce_again_from_this_process_or_from_storage() {
        let c = NonceCounter::new(0, Vec::new());
        let a = c.reserve(None, bind("a", "tx-a")).await.unwrap();
        let b = c.reserve(None, bind("b", "tx-b")).await.unwrap();
        let written = std::sync::Mutex::new(Vec::new());
        c.make_durable(&b, |_, reqs| {
            *written.lock().unwrap() = reqs;
            async { Ok(()) }
        })
        .await
        .unwrap();
        let stored = written.into_inner().unwrap();
        assert_eq!(stored.len(), 2, "{stored:?}");
        // The answer to `a` was lost; its retry, here or on a new leader that reads storage,
        // gets nonce 0 again, with nothing more to store.
        let again = c.reserve(None, bind("a", "tx-a")).await.unwrap();
        assert_eq!((again.nonce, again.repeated), (a.nonce, true));
        c.make_durable(&again, |_, _| async {
            Err("no write is needed".to_owned())
        })
        .await
        .unwrap();
        let leader = NonceCounter::new(2, stored);
        let there = leader.reserve(None, bind("a", "tx-a")).await.unwrap();
        assert_eq!((there.nonce, there.repeated), (0, true));
        leader
            .make_durable(&there, |_, _| async {
                Err("no write is needed".to_owned())
            })
            .await
            .unwrap();
        // The same id for another transaction is refused; a new id gets the next nonce.
        let err = leader
            .reserve(None, bind("a", "tx-other"))
            .await
            .unwrap_err();
        assert!(err.contains("another transaction (nonce 0)"), "{err}");
        assert_eq!(
            leader.reserve(None, bind("c", "tx-c")).await.unwrap().nonce,
            2
        );
    }

    #[tokio::test]
    async fn a_failed_write_forgets_its_bindings_with_its_nonces() {
        let c = NonceCounter::new(3, Vec::new());
        let a = c.reserve(None, bind("a", "tx-a")).await.unwrap();
        assert!(
            c.make_durable(&a, |_, _| async { Err("leadership lost".to_owned()) })
                .await
                .is_err()
        );
        // Nothing was signed at 3: it goes to whoever asks next, and `a` is a new request.
        let b = c.reserve(None, bind("b", "tx-b")).await.unwrap();
        assert_eq!((b.nonce, b.repeated), (3, false));
        let again = c.reserve(None, bind("a", "tx-a")).await.unwrap();
        assert_eq!((again.nonce, again.repeated), (4, false));
    }

    #[tokio::test]
    async fn a_forced_lowering_forgets_the_bindings_above_it_and_storage_keeps_the_latest() {
        let c = NonceCounter::new(0, Vec::new());
        for i in 0..(KEPT as u64 + 10) {
            let r = c.reserve(None, bind(&format!("r{i}"), "tx")).await.unwrap();
            c.make_durable(&r, ok_write).await.unwrap();
        }
        let kept = std::sync::Mutex::new(Vec::new());
        c.set(KEPT as u64, true, false, |_, reqs| {
            *kept.lock().unwrap() = reqs;
            async { Ok(()) }
        })
        .await
        .unwrap();
        let kept = kept.into_inner().unwrap();
        assert!(kept.len() <= KEPT && kept.iter().all(|b| b.nonce < KEPT as u64));
        let above = format!("r{}", KEPT + 5);
        let r = c.reserve(None, bind(&above, "tx")).await.unwrap();
        assert_eq!((r.nonce, r.repeated), (KEPT as u64, false));
    }

    /// Clients that retry each request (same id, same transaction) until it is answered, while
    /// a third of the writes fail and a quarter of the answers are lost: every nonce below the
    /// counter is acknowledged, each to one request, and no nonce to two.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retried_requests_leave_no_gap_when_answers_are_lost() {
        let counter = Arc::new(NonceCounter::new(0, Vec::new()));
        let calls = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for i in 0..300u64 {
            let (c, n) = (counter.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let Ok(res) = c
                        .reserve(None, bind(&format!("req{i}"), &format!("tx{i}")))
                        .await
                    else {
                        panic!("refused");
                    };
                    let n2 = n.clone();
                    let ok = c
                        .make_durable(&res, |_, _| async move {
                            tokio::time::sleep(std::time::Duration::from_micros(200)).await;
                            if n2.fetch_add(1, Ordering::SeqCst) % 3 == 1 {
                                return Err("storage error".to_owned());
                            }
                            Ok(())
                        })
                        .await
                        .is_ok();
                    // An answer lost on the way back (the client retries it).
                    if ok && n.fetch_add(1, Ordering::SeqCst) % 4 != 0 {
                        return (i, res.nonce);
                    }
                }
            }));
        }
        let mut acked = BTreeMap::new();
        for t in tasks {
            let (i, nonce) = t.await.unwrap();
            assert!(acked.insert(nonce, i).is_none(), "nonce {nonce} twice");
        }
        let next = counter.next().await;
        assert_eq!(
            acked.keys().copied().collect::<Vec<_>>(),
            (0..next).collect::<Vec<_>>(),
            "a gap below the counter {next}"
        );
        assert_eq!(acked.len(), 300);
    }
}
