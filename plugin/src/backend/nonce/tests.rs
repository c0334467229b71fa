//! The nonce counter under concurrency, failed writes, lost answers and retries.

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
    assert!(
        c.make_durable(&b, ok_write)
            .await
            .unwrap_err()
            .starts_with(VOID)
    );
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

/// A write fails here but is stored (an ambiguous failure) with `a` bound to 5; 5 goes to
/// `b`; then storage is read again (an invalidation: counter 7, and `c` bound to 6 by another
/// node). `b` must not be signed (5 is another's in storage), retries of `a` and `c` get their
/// stored nonces, and a new request gets 7.
#[tokio::test]
async fn another_nodes_counter_voids_every_reservation_not_stored_here() {
    let c = NonceCounter::new(5, Vec::new());
    let a = c.reserve(None, bind("a", "tx-a")).await.unwrap();
    let written = std::sync::Mutex::new(Vec::new());
    assert!(
        c.make_durable(&a, |_, reqs| {
            *written.lock().unwrap() = reqs;
            async { Err("leadership lost while committing".to_owned()) }
        })
        .await
        .is_err()
    );
    let b = c.reserve(None, bind("b", "tx-b")).await.unwrap();
    assert_eq!(b.nonce, 5);
    let mut stored = written.into_inner().unwrap();
    stored.push(Bound {
        nonce: 6,
        id: "c".into(),
        digest: "tx-c".into(),
    });
    c.observe_stored(7, stored).await;
    let err = c.make_durable(&b, ok_write).await.unwrap_err();
    assert!(
        err.starts_with(VOID) && err.contains("not the leader"),
        "{err}"
    );
    for (id, nonce) in [("a", 5), ("c", 6)] {
        let r = c
            .reserve(None, bind(id, &format!("tx-{id}")))
            .await
            .unwrap();
        assert_eq!((r.nonce, r.repeated), (nonce, true));
        c.make_durable(&r, |_, _| async { Err("no write is needed".to_owned()) })
            .await
            .unwrap();
    }
    assert_eq!(c.reserve(None, bind("b", "tx-b")).await.unwrap().nonce, 7);
}

/// A read-enabled standby's plugin: its writes fail, and the active node's counter reaches it
/// by invalidations while its own reservation waits. It never signs that reservation.
#[tokio::test]
async fn a_standby_never_signs_a_nonce_the_active_node_stored() {
    let c = NonceCounter::new(1120, Vec::new());
    let first = c.reserve(None, None).await.unwrap();
    let readonly =
        |_, _| async { Err("storage put nonce/load: cannot write to readonly storage".to_owned()) };
    assert!(c.make_durable(&first, readonly).await.is_err());
    let waiting = c.reserve(None, None).await.unwrap();
    assert_eq!(waiting.nonce, 1120);
    // The active node signed 1120..1123 meanwhile; the standby reads its counter.
    c.observe_stored(1123, Vec::new()).await;
    let err = c.make_durable(&waiting, ok_write).await.unwrap_err();
    assert!(err.starts_with(VOID), "{err}");
    assert_eq!(c.reserve(None, None).await.unwrap().nonce, 1123);
}
