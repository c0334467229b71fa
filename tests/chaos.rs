//! Issue 25 §2 on a real network: one round of every fault kind (a seeded order), on one
//! 3-node cluster whose nodes and balancer are hosts of their own, under the Authority's
//! signing workload through the balancer (one client after another and 8 at once, each
//! acknowledged transaction sent to anvil) and reads of its counter; then the checker.
//!
//! Asserted: the history is complete, no nonce was released with two payloads, every
//! acknowledged nonce is below the counter after healing, every nonce the chain mined was
//! signed and acknowledged, the chain did not pass the first gap (and a stop before it is
//! reported as a stall), and every fault kind ran with signatures acknowledged. The clients ask
//! again with the intent's `request_id` until acknowledged, so a signature whose answer a fault
//! lost can be given again: every run measured left no gap, but a gap is printed, not failed on.
//! Measured and printed as ANOMALY lines, not failed on: a deposed leader still answering as active (OpenBao 2.7.2),
//! the stale reads it serves through the balancer, statuses other than 200/503 (OpenBao's 307
//! and 500 during elections, HAProxy's 502), and broadcasts the chain refused.

use custody_test_support as support;

use std::collections::BTreeSet;

use support::chaos::checker::{self, Anomaly};
use support::chaos::history::Kind;
use support::chaos::schedule::EVERY_KIND;
use support::chaos::{Config, report, run};

/// The kinds that fail this test; every other kind is printed (two actives, stale reads, and
/// gaps: none in the runs measured since the clients ask again with their `request_id`, but
/// `tests/plugin_gaps.rs` still sees some: the request id does not fill every gap yet).
const FAILING: [&str; 3] = ["equivocation", "durability", "mined"];

#[test]
fn one_round_of_every_fault_signs_no_nonce_twice_and_loses_none() {
    let r = run(Config {
        seed: 25,
        seconds: 0,
        rounds: 1,
    });
    for line in report::lines(&r) {
        println!("{line}");
    }
    assert!(
        r.incomplete.is_empty(),
        "the history is incomplete: {:?}",
        r.incomplete
    );
    let kinds: BTreeSet<&str> = r
        .faults
        .iter()
        .map(|f| f.applied.planned.kind.name())
        .collect();
    assert_eq!(
        kinds.len(),
        EVERY_KIND.len(),
        "every fault kind ran: {kinds:?}"
    );
    assert!(r.total.acked > 0, "nothing was acknowledged");
    for client in ["seq", "c0", "c7"] {
        assert!(
            (r.history.iter())
                .any(|o| o.client == client && o.kind == Kind::Sign && o.status == 200),
            "client {client} got no signature"
        );
    }
    assert!(
        (r.history.iter()).any(|o| o.kind == Kind::Read && o.status == 200),
        "no read of the counter answered"
    );
    assert!(r.health_rounds > 0, "the monitor never asked");
    let failing: Vec<&Anomaly> = r
        .anomalies
        .iter()
        .filter(|a| FAILING.contains(&a.kind))
        .collect();
    assert!(failing.is_empty(), "{failing:#?}");

    // The gaps, recomputed from the history: exactly the counter values never acknowledged.
    let acked: BTreeSet<u64> = (r.history.iter())
        .filter(|o| o.kind == Kind::Sign && o.status == 200)
        .filter_map(|o| o.nonce)
        .collect();
    let gaps: Vec<u64> = (0..r.last.counter).filter(|n| !acked.contains(n)).collect();
    let reported: Vec<&Anomaly> = r.anomalies.iter().filter(|a| a.kind == "gap").collect();
    let runs = checker::runs(&gaps);
    assert_eq!(reported.len(), runs.len(), "gaps {gaps:?}: {reported:#?}");
    for (a, run) in reported.iter().zip(runs) {
        let shown = format!("nonces {} reserved", checker::ranges(run));
        assert!(a.text.starts_with(&shown), "{shown}: {}", a.text);
    }
    assert_eq!(
        r.last.counter as usize,
        acked.len() + gaps.len(),
        "every counter value is acknowledged or a gap"
    );
    // The chain cannot pass the first gap; stopped before it, the stall is reported.
    let first_gap = gaps.first().copied().unwrap_or(r.last.counter);
    assert!(
        r.last.mined <= first_gap,
        "the chain mined past the gap at {first_gap}"
    );
    let stalled = r.anomalies.iter().any(|a| a.kind == "stall");
    assert_eq!(stalled, r.last.mined < first_gap, "{:?}", r.last.stall);
    if !gaps.is_empty() {
        println!(
            "KNOWN (a nonce stored and never acknowledged, although every intent is asked again \
             with its request_id): {} gaps at nonces {}",
            gaps.len(),
            checker::ranges(&gaps)
        );
    }
    let two = r
        .anomalies
        .iter()
        .filter(|a| a.kind == "two active" || a.kind == "deposed");
    println!(
        "KNOWN (OpenBao: a deposed leader still answering): {} observations",
        two.count()
    );
}

/// The checker on a made history: each anomaly it knows is found, with its nonces, and a clean
/// history has none.
#[test]
fn the_checker_finds_each_anomaly_in_a_made_history() {
    use std::time::Duration;
    use support::chaos::checker::Final;
    use support::chaos::history::{Op, TwoActive};

    let s = Duration::from_secs;
    let op = |id: usize, kind: Kind, status: u16, nonce: Option<u64>, payload: &str, at: u64| Op {
        id,
        client: "seq".into(),
        kind,
        via: if kind == Kind::Broadcast {
            "anvil"
        } else {
            "lb"
        },
        start: s(at),
        end: Some(s(at) + Duration::from_millis(500)),
        status,
        nonce,
        payload: (!payload.is_empty()).then(|| payload.to_owned()),
        tx_hash: (!payload.is_empty()).then(|| format!("h-{payload}")),
        error: (status != 200).then(|| "an error".to_owned()),
    };
    let clean = vec![
        op(0, Kind::Sign, 200, Some(0), "a", 1),
        op(1, Kind::Broadcast, 200, None, "a", 2),
        op(2, Kind::Sign, 200, Some(1), "b", 3),
        op(3, Kind::Broadcast, 200, None, "b", 4),
        op(4, Kind::Read, 200, Some(2), "", 5),
        op(5, Kind::Sign, 503, None, "", 6),
    ];
    let fine = Final {
        counter: 2,
        mined: 2,
        with_receipt: vec![0, 1],
        stall: None,
    };
    assert_eq!(checker::check(&clean, &[], &[], &fine), vec![]);
    assert!(checker::incomplete(&clean).is_empty());
    let stalled = Final {
        mined: 1,
        with_receipt: vec![0],
        stall: Some("anvil has it as nothing".into()),
        ..fine.clone()
    };
    let found = checker::check(&clean, &[], &[], &stalled);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].kind == "stall" && found[0].text.contains("nonce 1 was acknowledged"));

    let mut bad = clean.clone();
    bad.push(op(6, Kind::Sign, 200, Some(1), "c", 7)); // nonce 1 again, another payload
    bad.push(op(7, Kind::Sign, 200, Some(4), "d", 8)); // 3 never acknowledged; 4 not durable
    bad.push(op(8, Kind::Read, 200, Some(2), "", 9)); // after nonce 4 was acknowledged
    bad.push(op(9, Kind::Sign, 500, None, "", 6)); // while nonces 2-3 went missing
    let mut unfinished = op(10, Kind::Sign, 0, None, "", 11);
    unfinished.end = None;
    bad.push(unfinished);
    let actives = [0u64, 1, 5].map(|t| TwoActive {
        at: s(20 + t),
        nodes: vec![0, 2],
    });
    let f = Final {
        counter: 4,
        mined: 3,
        with_receipt: vec![0, 1],
        stall: None,
    };
    let found = checker::check(&bad, &actives, &[], &f);
    let kinds: Vec<&str> = found.iter().map(|a| a.kind).collect();
    assert_eq!(
        kinds,
        [
            "equivocation",
            "durability",
            "mined",
            "gap",
            "stale read",
            "two active",
            "two active",
            "status",
            "status"
        ],
        "{found:#?}"
    );
    let text = |k: usize| found[k].text.as_str();
    assert!(text(0).contains("nonce 1 released twice"), "{}", text(0));
    assert!(
        text(1).contains("nonces 4 not below the counter 4"),
        "{}",
        text(1)
    );
    assert!(text(2).contains("nonces 2"), "{}", text(2));
    assert!(text(3).starts_with("nonces 2-3 reserved"), "{}", text(3));
    assert!(text(3).contains("{500: 1, 503: 1}"), "{}", text(3));
    assert!(text(4).starts_with("1 reads from op 8"), "{}", text(4));
    assert!(text(4).contains("2 after nonce 4"), "{}", text(4));
    assert!(text(5).contains("2 times"), "{}", text(5));
    assert!(text(8).contains("1 answers of 500"), "{}", text(8));
    let missing = checker::incomplete(&bad);
    assert!(
        missing
            .iter()
            .any(|m| m.contains("op 10") && m.contains("never completed"))
    );
    assert!(
        missing
            .iter()
            .any(|m| m.contains("op 6") && m.contains("never sent"))
    );
}
