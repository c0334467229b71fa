//! `scripts/chaos [--seconds S] [--seed N] [--format json]`: issue 25's workload under a seeded
//! schedule of faults of every kind (at least one round of each; more until S seconds passed),
//! then the checker; a line per fault (ops, acknowledged, refused, anomalies) and every anomaly,
//! or one JSON object. Exit 0 no anomaly, 1 the run failed (the cluster did not come back),
//! 2 usage, 3 an anomaly was found or the history is incomplete.

use custody_test_support as support;

use support::chaos::{Config, report, run};

fn usage(why: &str) -> ! {
    eprintln!("chaos: {why}\nusage: scripts/chaos [--seconds S] [--seed N] [--format text|json]");
    std::process::exit(2)
}

fn main() {
    let mut config = Config {
        seed: 1,
        seconds: 0,
        rounds: 1,
    };
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        match a.as_str() {
            "--seconds" => {
                config.seconds = value("--seconds")
                    .parse()
                    .unwrap_or_else(|_| usage("--seconds takes a whole number"))
            }
            "--seed" => {
                config.seed = value("--seed")
                    .parse()
                    .unwrap_or_else(|_| usage("--seed takes a whole number"))
            }
            "--format" => match value("--format").as_str() {
                "json" => json = true,
                "text" => json = false,
                other => usage(&format!("unknown format {other:?}")),
            },
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    // A cluster that does not come back (a fault's wait) panics; the harness removes what it
    // made while unwinding, and the run failed (exit 1).
    let r = match std::panic::catch_unwind(|| run(config)) {
        Ok(r) => r,
        Err(_) => {
            eprintln!("chaos: the run failed (the panic above says where)");
            std::process::exit(1)
        }
    };
    if json {
        println!("{}", report::json(&r));
    } else {
        for line in report::lines(&r) {
            println!("{line}");
        }
    }
    let failed = !r.anomalies.is_empty() || !r.incomplete.is_empty();
    std::process::exit(if failed { 3 } else { 0 });
}
