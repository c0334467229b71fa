//! A run's report as text (a line per fault, then every anomaly as an `ANOMALY` line) or as
//! JSON (`runs`, `faults`, `ops`, `acked`, `anomalies`: issue 25's field names).

use serde_json::{Value, json};

use super::Report;
use super::checker::Anomaly;

fn secs(d: std::time::Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

pub fn lines(r: &Report) -> Vec<String> {
    let mut out = Vec::new();
    for f in &r.faults {
        let a = &f.applied;
        out.push(format!(
            "fault {:<18} node {} {} at {:>7} held {:>5} back {:>7}: ops {:>5} acked {:>5} refused {:>4} anomalies {}",
            a.planned.kind.name(),
            a.node,
            if a.planned.active { "(active)  " } else { "(follower)" },
            secs(a.start),
            secs(a.planned.hold),
            secs(a.recovered),
            f.tally.ops,
            f.tally.acked,
            f.tally.refused,
            f.anomalies.len()
        ));
    }
    out.push(format!(
        "total: seed {} runs {} faults {} ops {} acked {} refused {} counter {} mined {} anomalies {}",
        r.config.seed,
        r.runs,
        r.faults.len(),
        r.total.ops,
        r.total.acked,
        r.total.refused,
        r.last.counter,
        r.last.mined,
        r.anomalies.len()
    ));
    for p in &r.incomplete {
        out.push(format!("INCOMPLETE: {p}"));
    }
    out.extend(r.anomalies.iter().map(anomaly_line));
    out
}

pub fn anomaly_line(a: &Anomaly) -> String {
    let at = a.at.map(|t| format!(" at {}", secs(t))).unwrap_or_default();
    format!("ANOMALY {}{at}: {}", a.kind, a.text)
}

fn anomaly(a: &Anomaly) -> Value {
    json!({ "kind": a.kind, "at_s": a.at.map(|t| t.as_secs_f64()), "text": a.text })
}

pub fn json(r: &Report) -> Value {
    let faults: Vec<Value> = (r.faults.iter())
        .map(|f| {
            let a = &f.applied;
            json!({
                "kind": a.planned.kind.name(),
                "node": a.node,
                "active": a.planned.active,
                "start_s": a.start.as_secs_f64(),
                "held_s": a.planned.hold.as_secs_f64(),
                "healed_s": a.healed.as_secs_f64(),
                "recovered_s": a.recovered.as_secs_f64(),
                "ops": f.tally.ops,
                "acked": f.tally.acked,
                "refused": f.tally.refused,
                "anomalies": f.anomalies.iter().map(anomaly).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "seed": r.config.seed,
        "seconds": r.config.seconds,
        "runs": r.runs,
        "faults": faults,
        "ops": r.total.ops,
        "acked": r.total.acked,
        "refused": r.total.refused,
        "counter": r.last.counter,
        "mined": r.last.mined,
        "incomplete": r.incomplete,
        "anomalies": r.anomalies.iter().map(anomaly).collect::<Vec<_>>(),
    })
}
