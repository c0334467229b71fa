//! The checks custody made, as the transcript records them: one row per check a line's facts
//! show, with its result. A line is written only after its command's own checks passed, so a
//! fact such as a recorded sha256 is shown as a passed check of what it names.

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// 1-based line number.
    pub line: usize,
    pub ceremony: String,
    pub step: String,
    /// What was checked.
    pub what: String,
    pub ok: bool,
    /// The figures behind the result (digests, addresses, times), from the line.
    pub detail: String,
    /// A holder's signature that checks out covers the line.
    pub signed: bool,
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// A number the transcript may hold as text (fractions are recorded as text).
fn number(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| v.as_str()?.parse().ok())
}

/// The checks one line records, as (what, ok, detail).
fn of_line(e: &Value) -> Vec<(String, bool, String)> {
    let (ceremony, step, f) = (text(&e["ceremony"]), text(&e["step"]), &e["facts"]);
    let mut out = Vec::new();
    let mut add = |what: &str, ok: bool, detail: String| out.push((what.to_owned(), ok, detail));
    if let Some(v) = f["recipients_verified"].as_bool() {
        add(
            "each share is encrypted to its holder's key only",
            v,
            format!(
                "{} shares",
                f["shares"]
                    .as_array()
                    .map_or_else(|| f["shares"].to_string(), |a| a.len().to_string())
            ),
        );
    }
    if let Some(v) = f["recipient_verified"].as_bool() {
        add(
            "the root token is encrypted to the operator's key only",
            v,
            format!("to {}", text(&f["encrypted_to"])),
        );
    }
    if let Some(age) = f["age"].as_str()
        && ((ceremony, step) == ("snapshot", "verify") || step == "restore")
    {
        let over = (f["passed_over"].as_array().into_iter().flatten())
            .map(|s| format!("{} (entry {})", text(&s["sha256"]), s["seq"]))
            .collect::<Vec<_>>();
        add(
            "snapshot is the newest recorded save of its cluster",
            age == "newest",
            if over.is_empty() {
                format!("{}: {age}", text(&f["sha256"]))
            } else {
                format!(
                    "{}: {age}, accepted with --allow-older over {}",
                    text(&f["sha256"]),
                    over.join(", ")
                )
            },
        );
    }
    if matches!(step, "plugin-install" | "wallet-create" | "wallet-bind")
        && let Some((ok, detail)) = audit_check(&f["audit"])
    {
        add(
            "an audit device records the Authority's requests",
            ok,
            detail,
        );
    }
    match (ceremony, step) {
        (_, "plugin-install") => add(
            "plugin binary sha256 registered",
            f["registered"].as_bool().unwrap_or(true),
            format!(
                "{} {}: sha256 {}",
                text(&f["name"]),
                text(&f["version"]),
                text(&f["sha256"])
            ),
        ),
        (_, "wallet-create") => add(
            "Authority account created",
            true,
            format!(
                "{} = {}, plugin sha256 {}",
                text(&f["account"]),
                text(&f["address"]),
                text(&f["plugin_sha256"])
            ),
        ),
        (_, "wallet-bind") => add(
            "the contract names the Authority (bound)",
            true,
            format!(
                "{} on chain {}: {}",
                text(&f["address"]),
                f["chain_id"],
                text(&f["allowed_call"])
            ),
        ),
        ("snapshot", "save") => add(
            "snapshot saved with its manifest",
            true,
            format!(
                "{}: sha256 {}, {} bytes",
                text(&f["file"]),
                text(&f["sha256"]),
                f["size"]
            ),
        ),
        ("snapshot", "verify") => {
            if let Some(m) = f["recorded_save"]["sha256_matches"].as_bool() {
                add(
                    "snapshot sha256 matches the recorded save",
                    m,
                    format!("{}: sha256 {}", text(&f["file"]), text(&f["sha256"])),
                );
            }
            let restore = &f["restore_test"];
            if restore.is_object() {
                add(
                    "restore test: a throwaway server opened the snapshot",
                    true,
                    format!(
                        "Authority {} at raft index {}, {} s",
                        text(&restore["address"]),
                        restore["raft_index"],
                        number(&restore["seconds"]).map_or("?".into(), |s| format!("{s:.1}"))
                    ),
                );
            }
        }
        ("reconcile", "reconcile") => add(
            "every mined nonce of the account is explained by an audited signature",
            f["passed"].as_bool().unwrap_or(false),
            format!(
                "{} {} on chain {}: {} of {} mined nonce(s) explained from nonce {}, {} \
                 unexplained, {} equivocation(s), {} unmined, {} bad line(s); proof {}",
                text(&f["account"]),
                text(&f["address"]),
                f["chain_id"],
                f["explained"],
                f["mined_nonces"],
                f["since_nonce"],
                f["unexplained_count"],
                f["equivocations_count"],
                f["unmined_count"],
                f["bad_lines_total"],
                text(&f["proof"])
            ),
        ),
        (_, "restore") => add(
            "the bytes sent are the bytes verified",
            f["sent_sha256"] == f["sha256"],
            format!(
                "{} into {}: sha256 {}",
                text(&f["file"]),
                text(&f["restored_into"]),
                text(&f["sent_sha256"])
            ),
        ),
        ("blue-green", "cutover") => {
            add(
                "cutover: signing paused and blue drained",
                true,
                format!(
                    "signing pause {} ms, drain {} s, leader via balancer {}",
                    number(&f["signing_pause_ms"]).map_or("?".into(), |s| format!("{s:.0}")),
                    number(&f["drain_seconds"]).map_or("?".into(), |s| format!("{s:.3}")),
                    text(&f["leader_via_lb"])
                ),
            );
            for (account, n) in f["nonces"].as_object().into_iter().flatten() {
                let (from, after) = (n["from"].as_u64(), n["to_after"].as_u64());
                add(
                    "cutover: green's nonce counter is not behind blue's",
                    matches!((from, after), (Some(a), Some(b)) if b >= a),
                    format!(
                        "{account}: blue {}, green {} → {}",
                        n["from"], n["to_before"], n["to_after"]
                    ),
                );
            }
        }
        (_, "revoke-token") => add(
            "the revoked token is refused",
            f["refused_after"].as_bool().unwrap_or(false),
            format!("accessor {}", text(&f["accessor"])),
        ),
        _ => {}
    }
    if f["kind"] == "check" {
        add(
            &format!("ceremony check {}", text(&f["check"])),
            true,
            f["with"].to_string(),
        );
    }
    out
}

/// The `audit` fact of `plugin install`, `wallet create` and `wallet bind`: (a device was
/// enabled, the devices or how the operator went on without one).
fn audit_check(audit: &Value) -> Option<(bool, String)> {
    let devices = audit["devices"].as_array()?;
    if audit["accepted_no_audit"] == true || devices.is_empty() {
        let why = audit["unread"]
            .as_str()
            .map(|e| format!(" (the devices could not be read: {e})"))
            .unwrap_or_default();
        return Some((
            false,
            format!("no audit device{why}: accepted with --accept-no-audit"),
        ));
    }
    let shown: Vec<String> = devices
        .iter()
        .map(|d| match d["file_path"].as_str() {
            Some(p) => format!("{} ({} → {p})", text(&d["path"]), text(&d["type"])),
            None => format!("{} ({})", text(&d["path"]), text(&d["type"])),
        })
        .collect();
    Some((true, shown.join(", ")))
}

/// Every check the lines record, in order. `entries[i]` is line `i + 1`; lines 1 to
/// `signed_lines` are covered by a holder's signature that checks out.
pub fn checks(entries: &[Value], signed_lines: usize) -> Vec<Check> {
    entries
        .iter()
        .enumerate()
        .flat_map(|(i, e)| {
            of_line(e).into_iter().map(move |(what, ok, detail)| Check {
                line: i + 1,
                ceremony: text(&e["ceremony"]).to_owned(),
                step: text(&e["step"]).to_owned(),
                what,
                ok,
                detail,
                signed: i < signed_lines,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn recorded_results_become_checks_and_failures_show() {
        let entries = vec![
            json!({ "ceremony": "init", "step": "sys/init", "facts": { "recipients_verified": true, "shares": 5 } }),
            json!({ "ceremony": "snapshot", "step": "verify", "facts": { "file": "b.snap", "sha256": "ab", "recorded_save": { "sha256_matches": false } } }),
            json!({ "ceremony": "blue-green", "step": "cutover", "facts": { "signing_pause_ms": "106.7", "drain_seconds": "0.0002", "nonces": { "authority": { "from": 37, "to_before": 1, "to_after": 37 } } } }),
            json!({ "ceremony": "unseal", "step": "sys/unseal", "facts": {} }),
            json!({ "ceremony": "snapshot", "step": "verify", "facts": { "sha256": "aa", "age": "newest" } }),
            json!({ "ceremony": "blue-green", "step": "restore", "facts": { "sha256": "bb", "sent_sha256": "bb", "age": "older", "passed_over": [{ "sha256": "cc", "seq": 7 }] } }),
        ];
        let c = checks(&entries, 2);
        let shape: Vec<(usize, bool, bool)> = c.iter().map(|c| (c.line, c.ok, c.signed)).collect();
        assert_eq!(
            shape,
            [
                (1, true, true),
                (2, false, true),
                (3, true, false),
                (3, true, false),
                (5, true, false),
                (6, false, false),
                (6, true, false)
            ]
        );
        assert_eq!(
            c[5].detail,
            "bb: older, accepted with --allow-older over cc (entry 7)"
        );
        assert!(
            c[2].detail.contains("signing pause 107 ms"),
            "{}",
            c[2].detail
        );
        assert!(
            c[3].detail.contains("blue 37, green 1 → 37"),
            "{}",
            c[3].detail
        );
    }

    #[test]
    fn an_authority_step_without_audit_is_a_failed_check() {
        let accepted = json!({ "ceremony": "configure", "step": "wallet-create", "facts": {
            "audit": { "devices": [], "accepted_no_audit": true } } });
        let audited = json!({ "ceremony": "configure", "step": "plugin-install", "facts": {
            "registered": true,
            "audit": { "devices": [{ "type": "file", "path": "file/", "file_path": "audit.log" }],
                       "accepted_no_audit": false } } });
        let c = checks(&[accepted, audited], 0);
        let audit: Vec<&Check> = c.iter().filter(|c| c.what.contains("audit")).collect();
        assert_eq!(audit.len(), 2, "{c:?}");
        assert!(!audit[0].ok);
        assert!(
            audit[0].detail.contains("--accept-no-audit"),
            "{}",
            audit[0].detail
        );
        assert!(audit[1].ok);
        assert_eq!(audit[1].detail, "file/ (file → audit.log)");
    }
}
