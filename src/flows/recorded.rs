//! What a transcript records of its cluster, for the checks made before a share is sent: the
//! nodes that hold its share sets (an init's or adoption's `nodes`, the `target` of a snapshot
//! restore, a node vouched for with `--new-node`), the holders' share files with the sha256
//! each was written with (init's files, a rotation's new shares), and who gave shares to a
//! node's progress or an attempt in earlier runs. Everything here reads lines already verified
//! (`Ctx::recorded_lines`).

use serde_json::Value;

use crate::transcript::share_sets::{self, ROTATION};
use crate::vault::Addr;

use super::rotation::{STEP_NEW_SHARES, STEP_SHARE, STEP_VERIFY};

/// The line a `--new-node` writes: the nodes the operator vouched for.
pub const NODES: &str = "nodes";
pub const STEP_NEW_NODE: &str = "new-node";

/// A node the transcript records for its cluster, and which line did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedNode {
    pub addr: Addr,
    /// `init`, `adopt`, `snapshot restore` or `--new-node`.
    pub how: &'static str,
    /// 1-based line number.
    pub line: usize,
}

/// A holder's share file as the line that wrote it recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedShareFile {
    pub fingerprint: String,
    pub file: String,
    pub sha256: String,
    /// `init`, or `rotation NONCE`.
    pub origin: String,
    /// 1-based line number.
    pub line: usize,
}

/// What the transcript records of its cluster.
#[derive(Debug, Default)]
pub struct Record {
    pub nodes: Vec<RecordedNode>,
    /// An init or an adoption: the lines that start a cluster's record.
    pub has_origin: bool,
    pub share_files: Vec<RecordedShareFile>,
    /// Every fingerprint a share set, a rotation's start or a recorded share file names.
    pub holders: Vec<String>,
}

impl Record {
    pub fn read(entries: &[Value]) -> Record {
        let mut r = Record::default();
        for (i, e) in entries.iter().enumerate() {
            let line = i + 1;
            let facts = &e["facts"];
            let (ceremony, step) = (text(&e["ceremony"]), text(&e["step"]));
            if share_sets::is_first_set(e) {
                r.has_origin = true;
                let how = if ceremony == "init" { "init" } else { "adopt" };
                let mut listed = strings(&facts["nodes"]);
                if listed.is_empty() {
                    listed = strings(&facts["addr"]);
                }
                r.add_nodes(&listed, how, line);
            }
            match (ceremony, step) {
                ("blue-green", "restore") => {
                    r.add_nodes(&strings(&facts["target"]), "snapshot restore", line)
                }
                (NODES, STEP_NEW_NODE) => {
                    r.add_nodes(&strings(&facts["nodes"]), "--new-node", line)
                }
                _ => {}
            }
            if let Some(set) = share_sets::set_from_line(e) {
                for h in &set.holders {
                    r.add_holder(&h.fingerprint);
                }
            }
            if ceremony == ROTATION && step == super::rotation::STEP_START {
                for h in facts["holders"].as_array().into_iter().flatten() {
                    r.add_holder(h["fingerprint"].as_str().unwrap_or_default());
                }
            }
            r.add_share_files(e, line);
        }
        r
    }

    fn add_nodes(&mut self, listed: &[String], how: &'static str, line: usize) {
        for a in listed {
            // A recorded address that no longer parses matches nothing.
            if let Ok(addr) = Addr::parse(a)
                && !self.nodes.iter().any(|n| n.addr == addr)
            {
                self.nodes.push(RecordedNode { addr, how, line });
            }
        }
    }

    fn add_holder(&mut self, fingerprint: &str) {
        if !fingerprint.is_empty()
            && !self
                .holders
                .iter()
                .any(|h| h.eq_ignore_ascii_case(fingerprint))
        {
            self.holders.push(fingerprint.to_ascii_uppercase());
        }
    }

    /// init's share files are its `files` named `<FPR>.share.asc` for a holder of its set; a
    /// rotation's are the `shares` its `new-shares` line lists.
    fn add_share_files(&mut self, e: &Value, line: usize) {
        let facts = &e["facts"];
        let mut found = Vec::new();
        if e["ceremony"] == "init" && e["step"] == "sys/init" {
            let set = share_sets::set_from_line(e);
            for (file, sha) in e["files"].as_object().into_iter().flatten() {
                let name = std::path::Path::new(file)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                let Some(fpr) = name.strip_suffix(".share.asc") else {
                    continue;
                };
                if set.as_ref().is_some_and(|s| s.holds(fpr)) {
                    found.push((
                        fpr.to_owned(),
                        file.clone(),
                        text(sha).to_owned(),
                        "init".into(),
                    ));
                }
            }
        }
        if e["ceremony"] == ROTATION && e["step"] == STEP_NEW_SHARES {
            let origin = format!("rotation {}", text(&facts["nonce"]));
            for s in facts["shares"].as_array().into_iter().flatten() {
                found.push((
                    text(&s["fingerprint"]).to_owned(),
                    text(&s["file"]).to_owned(),
                    text(&s["sha256"]).to_owned(),
                    origin.clone(),
                ));
            }
        }
        for (fpr, file, sha256, origin) in found {
            if fpr.is_empty() || sha256.is_empty() {
                continue;
            }
            self.add_holder(&fpr);
            self.share_files.push(RecordedShareFile {
                fingerprint: fpr.to_ascii_uppercase(),
                file,
                sha256: sha256.to_ascii_lowercase(),
                origin,
                line,
            });
        }
    }

    pub fn node(&self, addr: &Addr) -> Option<&RecordedNode> {
        self.nodes.iter().find(|n| &n.addr == addr)
    }

    /// The share files recorded for the holder `fingerprint`.
    pub fn files_of<'a>(
        &'a self,
        fingerprint: &'a str,
    ) -> impl Iterator<Item = &'a RecordedShareFile> + 'a {
        self.share_files
            .iter()
            .filter(move |f| f.fingerprint.eq_ignore_ascii_case(fingerprint))
    }

    /// The recorded share file with this sha256, whoever it was written for.
    pub fn file_with_sha(&self, sha256: &str) -> Option<&RecordedShareFile> {
        self.share_files
            .iter()
            .find(|f| f.sha256.eq_ignore_ascii_case(sha256))
    }

    pub fn knows_holder(&self, fingerprint: &str) -> bool {
        self.holders
            .iter()
            .any(|h| h.eq_ignore_ascii_case(fingerprint))
    }
}

/// Who gave the shares a sealed node held when a run started, as far as the transcript tells.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Givers {
    /// The holders custody identified (by their secret key), oldest run last.
    pub holders: Vec<String>,
    /// How many of the shares came from stdin or a prompt, whose holder custody cannot name.
    pub unnamed: u64,
}

/// The unseal lines after which the node stayed sealed with its progress rising, newest first,
/// back to where it started from 0. `progress` is the node's progress when the run started;
/// `None` when the transcript does not account for it (no line shows that progress last: a run
/// custody did not record, or the node restarted since).
pub fn earlier_unseal_givers(entries: &[Value], addr: &Addr, progress: u32) -> Option<Givers> {
    if progress == 0 {
        return Some(Givers::default());
    }
    let mut seen: Vec<(u64, Vec<String>)> = Vec::new();
    for e in entries.iter().rev() {
        if e["ceremony"] != "unseal" || e["step"] != "sys/unseal" {
            continue;
        }
        let Some(node) = e["facts"]["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| Addr::parse(text(&n["addr"])).is_ok_and(|a| &a == addr))
        else {
            continue;
        };
        let p = node["progress"].as_u64().unwrap_or(0);
        if node["state"] != "sealed" || p == 0 {
            break;
        }
        match seen.last() {
            None if p != u64::from(progress) => return None,
            // An older line showing as much or more: the node was reset in between.
            Some((newer, _)) if p >= *newer => break,
            _ => {}
        }
        seen.push((p, strings(&e["facts"]["holders"])));
    }
    if seen.is_empty() {
        return None;
    }
    let mut g = Givers::default();
    for (i, (p, holders)) in seen.iter().enumerate() {
        let below = seen.get(i + 1).map_or(0, |(older, _)| *older);
        g.unnamed += (p - below).saturating_sub(holders.len() as u64);
        for h in holders {
            if !g.holders.contains(h) {
                g.holders.push(h.clone());
            }
        }
    }
    Some(g)
}

/// Who gave shares to the attempt `nonce` in earlier runs: a root generation's `root-generate`
/// lines, a rotation's old shares (`share`) or its verification (`verify`), since the last
/// refusal (which started the attempt's progress over).
pub fn earlier_attempt_givers(
    entries: &[Value],
    ceremony: &str,
    steps: &[&str],
    nonce: &str,
) -> Vec<String> {
    let mut givers = Vec::new();
    for e in entries {
        let facts = &e["facts"];
        if e["ceremony"] != ceremony
            || !steps.iter().any(|s| e["step"] == *s)
            || facts["nonce"] != nonce
        {
            continue;
        }
        if facts["refused"] == Value::Bool(true) {
            givers.clear();
            continue;
        }
        for h in strings(&facts["holders"]) {
            if !givers.contains(&h) {
                givers.push(h);
            }
        }
    }
    givers
}

/// A rotation's old shares and its new holders' proofs, as [`earlier_attempt_givers`] reads them.
pub const ROTATION_OLD_SHARES: &[&str] = &[STEP_SHARE];
pub const ROTATION_PROOFS: &[&str] = &[STEP_VERIFY];

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// A string, or an array of strings.
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// After a refused quorum (the server combined the shares, could not open its barrier or keys
/// with them, and dropped every one): whose shares were dropped and must come again.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GiveAgain {
    /// The shares this run gave (their labels: `holder FPR`, `stdin line 2`, `prompt 1`).
    pub this_run: Vec<String>,
    /// The holders (fingerprints) whose shares earlier runs gave, as the transcript records.
    pub earlier: Vec<String>,
    /// Shares of earlier runs whose holder custody cannot name (given on stdin or at a prompt,
    /// or in a run this transcript does not record).
    pub earlier_unnamed: u64,
}

impl GiveAgain {
    /// From this run's labels and the transcript's earlier givers; a holder in both is named once,
    /// in this run.
    pub fn new(this_run: &[String], earlier: &[String], earlier_unnamed: u64) -> GiveAgain {
        let named_now = |f: &str| {
            this_run.iter().any(|l| {
                l.strip_prefix("holder ")
                    .is_some_and(|h| h.eq_ignore_ascii_case(f))
            })
        };
        GiveAgain {
            this_run: this_run.to_vec(),
            earlier: earlier.iter().filter(|f| !named_now(f)).cloned().collect(),
            earlier_unnamed,
        }
    }

    /// One sentence for people: who gives again.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.this_run.is_empty() {
            parts.push(format!("in this run, {}", self.this_run.join(", ")));
        }
        if !self.earlier.is_empty() {
            parts.push(format!(
                "in earlier runs (as the transcript records), {}",
                self.earlier
                    .iter()
                    .map(|f| format!("holder {f}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if self.earlier_unnamed > 0 {
            parts.push(format!(
                "{} share{} of earlier runs whose holder custody cannot name (given on stdin or \
                 at a prompt, or not recorded in this transcript)",
                self.earlier_unnamed,
                if self.earlier_unnamed == 1 { "" } else { "s" }
            ));
        }
        if parts.is_empty() {
            return "The server dropped the shares it held; custody cannot name whose they were."
                .to_owned();
        }
        format!(
            "The server dropped every share it held: these holders must give their shares again \
             — {}. At least one of those shares is not this cluster's: each holder checks theirs \
             (the share file custody wrote for them, with their own key) before giving it again.",
            parts.join("; ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(ceremony: &str, step: &str, facts: Value, files: Value) -> Value {
        json!({ "ceremony": ceremony, "step": step, "facts": facts, "files": files, "hash": "h", "time": "t" })
    }

    fn set(fprs: &[&str]) -> Value {
        json!(
            fprs.iter()
                .enumerate()
                .map(|(i, f)| json!({"index": i + 1, "fingerprint": f}))
                .collect::<Vec<_>>()
        )
    }

    fn addr(s: &str) -> Addr {
        Addr::parse(s).unwrap()
    }

    fn unseal(node: &str, state: &str, progress: u64, holders: &[&str]) -> Value {
        line(
            "unseal",
            "sys/unseal",
            json!({"nodes": [{"addr": node, "state": state, "progress": progress}], "holders": holders}),
            json!({}),
        )
    }

    #[test]
    fn nodes_come_from_init_adopt_restore_and_new_node_in_canonical_form() {
        let entries = vec![
            line(
                "init",
                "sys/init",
                json!({"nodes": ["https://127.0.0.1:8200", "https://LOCALHOST:8201/"], "threshold": 2, "holders": set(&["AA", "BB", "CC"])}),
                json!({"out/AA.share.asc": "a1", "out/BB.share.asc": "b1", "out/CC.share.asc": "c1", "out/root-token.OP.asc": "r"}),
            ),
            line(
                "blue-green",
                "restore",
                json!({"target": ["https://127.0.0.1:9200"]}),
                json!({}),
            ),
            line(
                NODES,
                STEP_NEW_NODE,
                json!({"nodes": ["https://[::1]:443"]}),
                json!({}),
            ),
            line(
                "status",
                "read",
                json!({"nodes": ["https://10.0.0.9:1"]}),
                json!({}),
            ),
        ];
        let r = Record::read(&entries);
        assert!(r.has_origin);
        let how = |a: &str| r.node(&addr(a)).map(|n| (n.how, n.line));
        assert_eq!(how("https://127.0.0.1:8200/"), Some(("init", 1)));
        assert_eq!(how("https://localhost:8201"), Some(("init", 1)));
        assert_eq!(how("https://127.0.0.1:9200"), Some(("snapshot restore", 2)));
        assert_eq!(how("https://[0:0:0:0:0:0:0:1]"), Some(("--new-node", 3)));
        assert_eq!(
            how("https://10.0.0.9:1"),
            None,
            "a status line records no node"
        );
        assert_eq!(how("https://127.0.0.1:8201"), None);

        // init's share files: the holders' `<FPR>.share.asc`, not the root token's.
        assert_eq!(r.share_files.len(), 3);
        assert_eq!(r.files_of("bb").next().unwrap().sha256, "b1");
        assert_eq!(r.file_with_sha("C1").unwrap().fingerprint, "CC");
        assert!(r.file_with_sha("r").is_none());
    }

    #[test]
    fn an_adoption_records_nodes_but_no_share_file_and_a_rotation_its_new_shares() {
        let entries = vec![
            line(
                "adopt",
                "adopt",
                json!({"addr": "https://127.0.0.1:1", "nodes": ["https://127.0.0.1:1"], "threshold": 2, "holders": set(&["AA", "BB"])}),
                json!({}),
            ),
            line(
                ROTATION,
                "start",
                json!({"nonce": "n1", "holders": set(&["AA", "DD"])}),
                json!({}),
            ),
            line(
                ROTATION,
                STEP_NEW_SHARES,
                json!({"nonce": "n1", "shares": [{"fingerprint": "DD", "file": "new/DD.share.asc", "sha256": "D1"}]}),
                json!({"new/DD.share.asc": "D1"}),
            ),
        ];
        let r = Record::read(&entries);
        assert!(r.has_origin && r.node(&addr("https://127.0.0.1:1")).is_some());
        assert!(r.knows_holder("aa") && r.knows_holder("DD") && !r.knows_holder("EE"));
        assert_eq!(
            r.files_of("AA").count(),
            0,
            "the server's CLI wrote adopted shares"
        );
        let dd = r.files_of("dd").next().unwrap();
        assert_eq!(
            (dd.sha256.as_str(), dd.origin.as_str()),
            ("d1", "rotation n1")
        );
        assert!(!Record::read(&[]).has_origin);
    }

    #[test]
    fn earlier_givers_of_a_sealed_nodes_progress() {
        let a = "https://127.0.0.1:8200";
        let entries = vec![
            unseal(a, "unsealed", 0, &["X"]),
            unseal(a, "sealed", 1, &["A"]),
            unseal(a, "sealed", 2, &[]),
            unseal("https://127.0.0.1:9", "sealed", 1, &["OTHER"]),
            unseal(a, "sealed", 3, &["B"]),
        ];
        // A: 1, stdin: 1 (unnamed), B: 1; X unsealed it earlier and is not counted.
        let g = earlier_unseal_givers(&entries, &addr(a), 3).unwrap();
        assert_eq!(g.holders, ["B", "A"]);
        assert_eq!(g.unnamed, 1);
        assert_eq!(
            earlier_unseal_givers(&entries, &addr(a), 0),
            Some(Givers::default())
        );
        // The server shows a progress the last line does not: custody cannot account for it.
        assert_eq!(earlier_unseal_givers(&entries, &addr(a), 1), None);
        assert_eq!(
            earlier_unseal_givers(&entries, &addr("https://127.0.0.1:7"), 1),
            None
        );
        // A restart in between: the older line's progress is not below the newer one's.
        let reset = vec![
            unseal(a, "sealed", 2, &["A", "C"]),
            unseal(a, "sealed", 1, &["B"]),
        ];
        let g = earlier_unseal_givers(&reset, &addr(a), 1).unwrap();
        assert_eq!((g.holders, g.unnamed), (vec!["B".to_owned()], 0));
    }

    #[test]
    fn earlier_givers_of_an_attempt_start_after_its_last_refusal() {
        let rg = |nonce: &str, holders: &[&str], refused: bool| {
            line(
                "configure",
                "root-generate",
                json!({"nonce": nonce, "holders": holders, "refused": refused}),
                json!({}),
            )
        };
        let entries = vec![
            rg("n1", &["A"], false),
            rg("n1", &["B"], true),
            rg("n1", &["C"], false),
            rg("n2", &["D"], false),
            rg("n1", &["E", "C"], false),
        ];
        assert_eq!(
            earlier_attempt_givers(&entries, "configure", &["root-generate"], "n1"),
            ["C", "E"]
        );
        assert!(earlier_attempt_givers(&entries, "configure", &["other"], "n1").is_empty());
    }

    #[test]
    fn give_again_names_each_holder_once() {
        let g = GiveAgain::new(
            &["holder AA".to_owned(), "stdin line 2".to_owned()],
            &["aa".to_owned(), "BB".to_owned()],
            1,
        );
        assert_eq!(g.earlier, ["BB"]);
        let text = g.describe();
        assert!(
            text.contains("in this run, holder AA, stdin line 2"),
            "{text}"
        );
        assert!(
            text.contains("in earlier runs (as the transcript records), holder BB"),
            "{text}"
        );
        assert!(
            text.contains("1 share of earlier runs whose holder custody cannot name"),
            "{text}"
        );
        assert!(GiveAgain::default().describe().contains("cannot name"));
    }
}
