//! One account's nonce counter. Signatures reserve nonces in memory, one at a time, and a
//! signature is made only once the counter in storage is past its nonce. Concurrent signatures
//! share one storage write (group commit): whoever writes, writes the highest reservation so far.
//!
//! A failed write gives its reservations back: the counter returns to what storage holds, and
//! every reservation not yet stored is void (its request fails, nothing signed), so the next
//! request gets the same nonce and no gap opens. Reservations belong to an epoch; a give-back or
//! a forced change ends the epoch, recording up to where its reservations were stored. A crash
//! can still lose stored, unsigned nonces (a gap); a nonce is never handed out twice.

use std::sync::{Arc, OnceLock};

use tokio::sync::Mutex;

/// The last nonce handed out: 2^53 - 2, so that the next nonce (2^53 - 1 at most) reaches
/// every client exactly. OpenBao passes a plugin's JSON through Go's `interface{}`, which reads
/// numbers as float64, and JavaScript clients do the same; EIP-2681's own bound (2^64 - 1) is
/// far above it. No account signs 2^53 transactions.
pub const LAST_NONCE: u64 = (1 << 53) - 2;

#[derive(Debug, Default)]
struct Epoch {
    /// Set when the epoch ends: the stored counter then. Its reservations below it were stored
    /// (and may be signed); the others are void.
    stored_at_end: OnceLock<u64>,
}

struct Reserved {
    next: u64,
    epoch: Arc<Epoch>,
}

/// A nonce handed to one signature, valid until its epoch ends unstored.
#[derive(Debug)]
pub struct Reservation {
    pub nonce: u64,
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
    pub fn new(stored: u64) -> NonceCounter {
        NonceCounter {
            reserved: Mutex::new(Reserved {
                next: stored,
                epoch: Arc::default(),
            }),
            durable: Mutex::new(stored),
        }
    }

    pub async fn next(&self) -> u64 {
        self.reserved.lock().await.next
    }

    /// Takes `asked` (refused below the next nonce, or past the last nonce) or the next nonce.
    pub async fn reserve(&self, asked: Option<u64>) -> Result<Reservation, String> {
        let mut r = self.reserved.lock().await;
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
        Ok(Reservation {
            nonce,
            epoch: r.epoch.clone(),
        })
    }

    /// Returns once storage holds a counter above the reservation's nonce, writing it if nobody
    /// has yet. A failed write gives back every reservation not yet stored.
    pub async fn make_durable<F, Fut>(&self, res: &Reservation, write: F) -> Result<(), String>
    where
        F: FnOnce(u64) -> Fut,
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
        let target = self.reserved.lock().await.next;
        match write(target).await {
            Ok(()) => {
                *durable = target;
                Ok(())
            }
            Err(e) => {
                let mut r = self.reserved.lock().await;
                Self::end_epoch(&mut r, *durable);
                r.next = *durable;
                Err(e)
            }
        }
    }

    fn end_epoch(r: &mut Reserved, stored: u64) {
        let _ = r.epoch.stored_at_end.set(stored);
        r.epoch = Arc::default();
    }

    /// Sets the counter (the `nonce` path). Lowering it needs `force`; `only_raise` (a frozen
    /// mount) refuses any lowering. The caller holds every signature out (the gate).
    pub async fn set<F, Fut>(
        &self,
        wanted: u64,
        force: bool,
        only_raise: bool,
        write: F,
    ) -> Result<u64, String>
    where
        F: FnOnce(u64) -> Fut,
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
        write(wanted).await?;
        Self::end_epoch(&mut r, *durable);
        *durable = wanted;
        r.next = wanted;
        Ok(current)
    }

    /// Storage says the counter is `stored` (an invalidation): the counter only ever rises to
    /// meet it, so nothing reserved or signed is handed out again.
    pub async fn observe_stored(&self, stored: u64) {
        let mut durable = self.durable.lock().await;
        let mut r = self.reserved.lock().await;
        if stored > *durable {
            *durable = stored;
        }
        if stored > r.next {
            r.next = stored;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicU64, Ordering};

    async fn ok_write(_: u64) -> Result<(), String> {
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_reservations_are_distinct_and_share_writes() {
        let counter = Arc::new(NonceCounter::new(5));
        let writes = Arc::new(AtomicU64::new(0));
        let stored = Arc::new(AtomicU64::new(5));
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let (c, w, s) = (counter.clone(), writes.clone(), stored.clone());
            tasks.push(tokio::spawn(async move {
                let res = c.reserve(None).await.unwrap();
                let s2 = s.clone();
                c.make_durable(&res, |v| async move {
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
        let c = NonceCounter::new(3);
        assert!(c.reserve(Some(2)).await.is_err());
        assert_eq!(c.reserve(Some(7)).await.unwrap().nonce, 7);
        assert_eq!(c.next().await, 8);
        assert!(c.set(4, false, false, ok_write).await.is_err());
        assert_eq!(c.set(4, true, false, ok_write).await.unwrap(), 8);
        assert_eq!(c.reserve(None).await.unwrap().nonce, 4);
    }

    #[tokio::test]
    async fn frozen_counters_only_rise_even_with_force() {
        let c = NonceCounter::new(10);
        let err = c.set(3, true, true, ok_write).await.unwrap_err();
        assert!(err.contains("only be raised"), "{err}");
        assert_eq!(c.next().await, 10);
        assert_eq!(c.set(12, false, true, ok_write).await.unwrap(), 10);
        assert_eq!(c.next().await, 12);
    }

    #[tokio::test]
    async fn the_last_nonce_is_never_passed() {
        let c = NonceCounter::new(0);
        assert!(
            c.reserve(Some(u64::MAX))
                .await
                .unwrap_err()
                .contains("overflow")
        );
        assert!(c.set(u64::MAX, false, false, ok_write).await.is_err());
        let last = c.reserve(Some(LAST_NONCE)).await.unwrap();
        assert_eq!(last.nonce, LAST_NONCE);
        assert!(c.reserve(None).await.unwrap_err().contains("spent"));
    }

    #[tokio::test]
    async fn a_failed_write_signs_nothing_and_gives_the_nonce_back() {
        let c = NonceCounter::new(4);
        let res = c.reserve(None).await.unwrap();
        let err = c
            .make_durable(&res, |_| async { Err("leadership lost".to_owned()) })
            .await
            .unwrap_err();
        assert_eq!(err, "leadership lost");
        assert_eq!(c.next().await, 4, "the reservation was not given back");
        let again = c.reserve(None).await.unwrap();
        assert_eq!(again.nonce, 4);
        c.make_durable(&again, ok_write).await.unwrap();
        assert_eq!(c.next().await, 5);
    }

    #[tokio::test]
    async fn a_failed_group_write_voids_every_unstored_reservation() {
        let c = NonceCounter::new(0);
        let stored_one = c.reserve(None).await.unwrap();
        c.make_durable(&stored_one, ok_write).await.unwrap();
        let a = c.reserve(None).await.unwrap();
        let b = c.reserve(None).await.unwrap();
        assert_eq!((a.nonce, b.nonce), (1, 2));
        assert!(
            c.make_durable(&a, |_| async { Err("sealed".to_owned()) })
                .await
                .is_err()
        );
        // b's nonce is handed out again, so b itself must never be signed.
        let retry = c.reserve(None).await.unwrap();
        assert_eq!(retry.nonce, 1);
        let retry2 = c.reserve(None).await.unwrap();
        c.make_durable(&retry2, ok_write).await.unwrap();
        assert_eq!(c.make_durable(&b, ok_write).await.unwrap_err(), VOID);
        // A reservation stored before the failure stays good.
        c.make_durable(&stored_one, ok_write).await.unwrap();
        c.make_durable(&retry, ok_write).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failing_writes_under_load_leave_no_gap_and_no_repeat() {
        let counter = Arc::new(NonceCounter::new(0));
        let stored = Arc::new(AtomicU64::new(0));
        let calls = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..400 {
            let (c, s, n) = (counter.clone(), stored.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                let res = c.reserve(None).await.unwrap();
                let s2 = s.clone();
                let failed = c
                    .make_durable(&res, |v| async move {
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
        let c = NonceCounter::new(8);
        let in_flight = c.reserve(None).await.unwrap();
        c.observe_stored(2).await;
        assert_eq!(
            c.next().await,
            9,
            "a stale stored value lowered the counter"
        );
        c.make_durable(&in_flight, ok_write).await.unwrap();
        c.observe_stored(20).await;
        assert_eq!(c.reserve(None).await.unwrap().nonce, 20);
    }
}
