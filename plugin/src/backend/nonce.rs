//! One account's nonce counter. Signatures reserve nonces in memory, one at a time, and a
//! signature is made only once the counter in storage is past its nonce. Concurrent signatures
//! share one storage write (group commit): whoever writes, writes the highest reservation so far.
//! A crash can lose reserved nonces (a gap), never hand one out twice.

use tokio::sync::Mutex;

pub struct NonceCounter {
    /// The next nonce to hand out.
    reserved: Mutex<u64>,
    /// The counter as stored. Lock order: `durable` before `reserved`.
    durable: Mutex<u64>,
}

impl NonceCounter {
    pub fn new(stored: u64) -> NonceCounter {
        NonceCounter {
            reserved: Mutex::new(stored),
            durable: Mutex::new(stored),
        }
    }

    pub async fn next(&self) -> u64 {
        *self.reserved.lock().await
    }

    /// Takes `asked` (refused below the next nonce) or the next nonce.
    pub async fn reserve(&self, asked: Option<u64>) -> Result<u64, String> {
        let mut next = self.reserved.lock().await;
        let nonce = match asked {
            Some(n) if n < *next => {
                return Err(format!(
                    "nonce {n} is below next_nonce {}: it may already be signed, and custody never signs a nonce twice",
                    *next
                ));
            }
            Some(n) => n,
            None => *next,
        };
        *next = nonce.checked_add(1).ok_or("nonce overflow")?;
        Ok(nonce)
    }

    /// Returns once storage holds a counter above `nonce`, writing it if nobody has yet.
    pub async fn make_durable<F, Fut>(&self, nonce: u64, write: F) -> Result<(), String>
    where
        F: FnOnce(u64) -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        let mut durable = self.durable.lock().await;
        if *durable > nonce {
            return Ok(());
        }
        let target = {
            let mut reserved = self.reserved.lock().await;
            // A forced lowering may have come between this nonce's reservation and now; the
            // counter never goes back below a nonce that is about to be signed.
            if *reserved <= nonce {
                *reserved = nonce + 1;
            }
            *reserved
        };
        write(target).await?;
        *durable = target;
        Ok(())
    }

    /// Sets the counter (the `nonce` path). Lowering it needs `force`.
    pub async fn set<F, Fut>(&self, wanted: u64, force: bool, write: F) -> Result<u64, String>
    where
        F: FnOnce(u64) -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        let mut durable = self.durable.lock().await;
        let mut next = self.reserved.lock().await;
        let current = *next;
        if wanted < current && !force {
            return Err(format!(
                "next_nonce {wanted} is below the current {current}: nonces from {wanted} may already be \
                 signed; give force=true only if you know they were never broadcast"
            ));
        }
        write(wanted).await?;
        *durable = wanted;
        *next = wanted;
        Ok(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_reservations_are_distinct_and_share_writes() {
        let counter = Arc::new(NonceCounter::new(5));
        let writes = Arc::new(AtomicU64::new(0));
        let stored = Arc::new(AtomicU64::new(5));
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let (c, w, s) = (counter.clone(), writes.clone(), stored.clone());
            tasks.push(tokio::spawn(async move {
                let n = c.reserve(None).await.unwrap();
                let s2 = s.clone();
                c.make_durable(n, |v| async move {
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                    w.fetch_add(1, Ordering::SeqCst);
                    s2.fetch_max(v, Ordering::SeqCst);
                    Ok(())
                })
                .await
                .unwrap();
                assert!(
                    s.load(Ordering::SeqCst) > n,
                    "signed before the counter was stored past it"
                );
                n
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
        assert_eq!(c.reserve(Some(7)).await.unwrap(), 7);
        assert_eq!(c.next().await, 8);
        assert!(c.set(4, false, |_| async { Ok(()) }).await.is_err());
        assert_eq!(c.set(4, true, |_| async { Ok(()) }).await.unwrap(), 8);
        assert_eq!(c.reserve(None).await.unwrap(), 4);
    }

    #[tokio::test]
    async fn lowering_during_a_signature_never_reopens_its_nonce() {
        let c = NonceCounter::new(10);
        let n = c.reserve(None).await.unwrap();
        c.set(3, true, |_| async { Ok(()) }).await.unwrap();
        c.make_durable(n, |_| async { Ok(()) }).await.unwrap();
        assert_eq!(c.next().await, 11);
    }

    #[tokio::test]
    async fn a_failed_write_signs_nothing() {
        let c = NonceCounter::new(0);
        let n = c.reserve(None).await.unwrap();
        assert!(
            c.make_durable(n, |_| async { Err("disk full".to_owned()) })
                .await
                .is_err()
        );
    }
}
