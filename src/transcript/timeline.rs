//! The transcript's lines grouped into ceremony runs, for people. A line written by
//! `custody ceremony run` carries the script's name and a `facts.kind` (action, check or
//! manual); the lines a script's action made its custody command write come just before that
//! action's line and carry the command's own ceremony value. Those command lines are shown
//! inside the script's run; command lines no script wrote stand on their own. Consecutive lines
//! of one script (or one command ceremony) make one run.

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// One step of a run: one line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunStep {
    /// 1-based line number.
    pub line: usize,
    pub step: String,
    pub actor: String,
    pub time: String,
    /// For a script line: action, check or manual.
    pub kind: Option<String>,
    /// A holder's signature that checks out covers the line.
    pub signed: bool,
}

/// Shares given at one line: how many, and by whom when custody identified the holders.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SharesGiven {
    pub line: usize,
    pub step: String,
    pub count: u64,
    pub holders: Vec<String>,
    /// A holder's signature that checks out covers the line.
    pub signed: bool,
}

/// Consecutive lines of one ceremony.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    /// The transcript's `ceremony` value.
    pub ceremony: String,
    /// Written by `custody ceremony run` (a script), or by a command.
    pub script: bool,
    pub first_line: usize,
    pub last_line: usize,
    pub start: String,
    pub end: String,
    /// Seconds from the first line's time to the last's, when both parse.
    pub seconds: Option<i64>,
    pub actors: Vec<String>,
    /// Holders' fingerprints the lines name (who took part).
    pub holders: Vec<String>,
    pub shares: Vec<SharesGiven>,
    pub steps: Vec<RunStep>,
    /// A script run's command runs, in order; empty for a command run.
    pub commands: Vec<Run>,
    /// A holder's signature that checks out covers every line of the run.
    pub signed: bool,
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn script_kind(e: &Value) -> Option<&str> {
    e["facts"]["kind"]
        .as_str()
        .filter(|k| matches!(*k, "action" | "check" | "manual"))
}

/// Who a line names as holders: `facts.holders` (fingerprints, or objects with one),
/// `facts.proven_by`, and a signature's `facts.signer`.
pub fn holders_of(e: &Value) -> Vec<String> {
    let facts = &e["facts"];
    let listed = ["holders", "proven_by"].into_iter().flat_map(|k| {
        facts[k]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h.as_str().or_else(|| h["fingerprint"].as_str()))
    });
    let signer = facts["signer"].as_str();
    listed.chain(signer).map(str::to_owned).collect()
}

/// The ceremony each line is shown under: its own, or for a command line written by a script's
/// action, the script's. `entries[i]` is line `i + 1`.
fn owners(entries: &[Value]) -> Vec<(String, bool)> {
    let mut owners: Vec<(String, bool)> = entries
        .iter()
        .map(|e| (text(&e["ceremony"]), script_kind(e).is_some()))
        .collect();
    for (i, e) in entries.iter().enumerate() {
        if script_kind(e) != Some("action") {
            continue;
        }
        // The command lines just before the action, of the one ceremony the last of them has.
        let Some(last) = i
            .checked_sub(1)
            .filter(|&j| script_kind(&entries[j]).is_none() && entries[j]["ceremony"].is_string())
        else {
            continue;
        };
        let command = text(&entries[last]["ceremony"]);
        let mut j = last;
        loop {
            owners[j] = (text(&e["ceremony"]), true);
            match j.checked_sub(1) {
                Some(k)
                    if script_kind(&entries[k]).is_none()
                        && text(&entries[k]["ceremony"]) == command =>
                {
                    j = k
                }
                _ => break,
            }
        }
    }
    owners
}

/// Groups consecutive indices by `key`.
fn groups<K: PartialEq>(indices: &[usize], key: impl Fn(usize) -> K) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    for &i in indices {
        match out.last_mut() {
            Some(g) if key(g[0]) == key(i) => g.push(i),
            _ => out.push(vec![i]),
        }
    }
    out
}

fn seconds_between(a: &str, b: &str) -> Option<i64> {
    let a = OffsetDateTime::parse(a, &Rfc3339).ok()?;
    let b = OffsetDateTime::parse(b, &Rfc3339).ok()?;
    Some((b - a).whole_seconds())
}

fn push_unique(into: &mut Vec<String>, items: impl IntoIterator<Item = String>) {
    for item in items {
        if !item.is_empty() && !into.contains(&item) {
            into.push(item);
        }
    }
}

fn run_of(
    entries: &[Value],
    lines: &[usize],
    ceremony: String,
    script: bool,
    signed_lines: usize,
) -> Run {
    let first = &entries[lines[0]];
    let last = &entries[*lines.last().expect("a run has a line")];
    let (start, end) = (text(&first["time"]), text(&last["time"]));
    let mut run = Run {
        ceremony,
        script,
        first_line: lines[0] + 1,
        last_line: lines[lines.len() - 1] + 1,
        seconds: seconds_between(&start, &end),
        start,
        end,
        actors: Vec::new(),
        holders: Vec::new(),
        shares: Vec::new(),
        steps: Vec::new(),
        commands: Vec::new(),
        signed: lines.iter().all(|&i| i < signed_lines),
    };
    for &i in lines {
        let e = &entries[i];
        push_unique(&mut run.actors, [text(&e["actor"])]);
        push_unique(&mut run.holders, holders_of(e));
        if let Some(count) = e["facts"]["shares_given"].as_u64() {
            run.shares.push(SharesGiven {
                line: i + 1,
                step: text(&e["step"]),
                count,
                holders: holders_of(e),
                signed: i < signed_lines,
            });
        }
        run.steps.push(RunStep {
            line: i + 1,
            step: text(&e["step"]),
            actor: text(&e["actor"]),
            time: text(&e["time"]),
            kind: script_kind(e).map(str::to_owned),
            signed: i < signed_lines,
        });
    }
    run
}

/// The ceremony runs of the lines, in order. `entries[i]` is line `i + 1` (`Null` for a line
/// that is not JSON: it shows as a run with an empty ceremony). Lines 1 to `signed_lines` are
/// covered by a holder's signature that checks out; the rest are marked unsigned.
pub fn runs(entries: &[Value], signed_lines: usize) -> Vec<Run> {
    let owners = owners(entries);
    let all: Vec<usize> = (0..entries.len()).collect();
    groups(&all, |i| owners[i].clone())
        .into_iter()
        .map(|lines| {
            let (ceremony, script) = owners[lines[0]].clone();
            let mut run = run_of(entries, &lines, ceremony, script, signed_lines);
            if script {
                let commands: Vec<usize> = lines
                    .iter()
                    .copied()
                    .filter(|&i| script_kind(&entries[i]).is_none())
                    .collect();
                // adjacent lines of one command ceremony; another action's lines start anew
                let mut blocks: Vec<Vec<usize>> = Vec::new();
                for i in commands {
                    match blocks.last_mut() {
                        Some(b)
                            if b[b.len() - 1] + 1 == i
                                && entries[b[0]]["ceremony"] == entries[i]["ceremony"] =>
                        {
                            b.push(i)
                        }
                        _ => blocks.push(vec![i]),
                    }
                }
                run.commands = blocks
                    .into_iter()
                    .map(|g| {
                        let ceremony = text(&entries[g[0]]["ceremony"]);
                        run_of(entries, &g, ceremony, false, signed_lines)
                    })
                    .collect();
            }
            run
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(ceremony: &str, step: &str, time: &str, facts: Value) -> Value {
        json!({ "ceremony": ceremony, "step": step, "actor": "operator", "time": time, "facts": facts })
    }
    fn action(ceremony: &str, step: &str, time: &str) -> Value {
        line(
            ceremony,
            step,
            time,
            json!({ "kind": "action", "action": step }),
        )
    }

    /// The shape of a rehearsal: script lines after the command lines their actions wrote, and
    /// command lines no script wrote.
    #[test]
    fn command_lines_go_inside_the_script_action_that_wrote_them() {
        let t = |s: u32| format!("2026-01-01T10:00:{s:02}Z");
        let entries = vec![
            line("init", "keys", &t(0), json!({ "kind": "manual" })),
            line(
                "init",
                "sys/init",
                &t(1),
                json!({ "holders": [{ "fingerprint": "AA" }, { "fingerprint": "BB" }] }),
            ),
            action("init", "init", &t(2)),
            // three holders unseal by hand, then the authority script runs two commands
            line(
                "unseal",
                "sys/unseal",
                &t(3),
                json!({ "holders": ["AA"], "shares_given": 1 }),
            ),
            line(
                "unseal",
                "sys/unseal",
                &t(4),
                json!({ "holders": ["BB"], "shares_given": 1 }),
            ),
            line("configure", "ceremony-token", &t(5), json!({})),
            action("authority", "ceremony-token", &t(6)),
            line("configure", "plugin-install", &t(7), json!({})),
            action("authority", "plugin-install", &t(8)),
            // one command writing two lines under one action
            line("blue-green", "freeze-blue", &t(9), json!({})),
            line("blue-green", "cutover", &t(10), json!({})),
            action("blue-green-2", "cutover", &t(11)),
            line("witness", "sign", &t(12), json!({ "signer": "AA" })),
        ];
        let runs = runs(&entries, 11);
        let shape: Vec<(&str, bool, usize, usize)> = runs
            .iter()
            .map(|r| (r.ceremony.as_str(), r.script, r.first_line, r.last_line))
            .collect();
        assert_eq!(
            shape,
            [
                ("init", true, 1, 3),
                ("unseal", false, 4, 5),
                ("authority", true, 6, 9),
                ("blue-green-2", true, 10, 12),
                ("witness", false, 13, 13),
            ]
        );
        assert_eq!(runs[0].holders, ["AA", "BB"]);
        assert_eq!(runs[0].commands.len(), 1);
        assert_eq!(runs[0].commands[0].ceremony, "init");
        assert_eq!(runs[1].shares.len(), 2);
        assert_eq!(runs[1].seconds, Some(1));
        let authority: Vec<(&str, usize)> = runs[2]
            .commands
            .iter()
            .map(|r| (r.ceremony.as_str(), r.first_line))
            .collect();
        assert_eq!(authority, [("configure", 6), ("configure", 8)]);
        assert_eq!(runs[3].commands.len(), 1);
        assert_eq!(runs[3].commands[0].steps.len(), 2);
        assert_eq!(runs[3].seconds, Some(2));
        assert_eq!(runs[4].holders, ["AA"]);
        // lines 1 to 11 signed: the runs that end by then, and their steps; not the rest
        let signed: Vec<bool> = runs.iter().map(|r| r.signed).collect();
        assert_eq!(signed, [true, true, true, false, false]);
        let steps: Vec<bool> = runs[3].steps.iter().map(|s| s.signed).collect();
        assert_eq!(steps, [true, true, false]);
        assert!(runs[1].shares.iter().all(|s| s.signed));
    }

    #[test]
    fn lines_that_are_not_json_form_a_run_of_their_own() {
        let entries = vec![Value::Null, action("snapshot", "save", "x")];
        let runs = runs(&entries, 0);
        assert_eq!(runs.len(), 2);
        assert!(!runs[1].signed && !runs[1].steps[0].signed);
        assert_eq!(runs[0].ceremony, "");
        assert_eq!(runs[1].seconds, None);
    }
}
