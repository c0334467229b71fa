//! Issue 25 §2 on a real network: one round of every fault kind (a seeded order), on one
//! 3-node cluster whose nodes and balancer are hosts of their own, under the Authority's
//! signing workload through the balancer (one client after another and 8 at once, each
//! acknowledged transaction sent to anvil) and reads of its counter; then the checker.
//!
//! Asserted: the history is complete, no nonce was released with two payloads, every
//! acknowledged nonce is below the counter after healing, every nonce the chain mined was
//! signed and acknowledged, and every fault kind ran with signatures acknowledged. Measured and
//! printed as ANOMALY lines, not failed on: gaps (counter values never acknowledged, the known
//! §2b issue, until the plugin's gap fix lands), a deposed leader still answering as active
//! (OpenBao 2.7.2), stale reads, statuses other than 200/503, and broadcasts the chain refused.

use custody_test_support as support;

use std::collections::BTreeSet;

use support::chaos::checker::{self, Anomaly};
use support::chaos::history::Kind;
use support::chaos::schedule::EVERY_KIND;
use support::chaos::{Config, report, run};

/// The kinds that fail this test; every other kind is printed (the known gaps, two actives).
const FAILING: [&str; 3] = ["equivocation", "durability", "mined"];

#[test]
fn one_round_of_every_fault_signs_no_nonce_twice_loses_none_and_reports_the_known_gaps() {
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
    let reported = r.anomalies.iter().filter(|a| a.kind == "gap").count();
    assert_eq!(reported, gaps.len(), "gaps {gaps:?}");
    assert_eq!(
        r.last.counter as usize,
        acked.len() + gaps.len(),
        "every counter value is acknowledged or a gap"
    );
    // The chain stops at the first gap: it mined exactly the nonces below it.
    let first_gap = gaps.first().copied().unwrap_or(r.last.counter);
    assert_eq!(
        r.last.mined, first_gap,
        "the chain mined up to the first gap"
    );
    if !gaps.is_empty() {
        println!(
            "KNOWN (issue 25 §2b, not failed until the plugin's gap fix lands): {} gaps at nonces {}",
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
