//! The report as one self-contained HTML page: no script, no request (its Content-Security-Policy
//! forbids every fetch but inline style and data: images), well-formed as XML too. Every text
//! from the transcript goes through [`escape`]: control and reordering characters shown escaped,
//! then the five XML specials as entities.

use super::Report;
use crate::transcript::timeline::Run;

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:72em;padding:0 1em;color:#1b1b1b}\
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;margin-top:2em}\
table{border-collapse:collapse;margin:.5em 0;width:100%}td,th{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top;overflow-wrap:anywhere}\
code,.fpr{font-family:ui-monospace,monospace;font-size:.9em;word-break:break-all}\
.ok{color:#14622a}.bad{color:#a40000;font-weight:bold}.untrusted{background:#fdecea}\
#verdict{padding:.5em 1em;border:2px solid #14622a}#verdict[data-chain=broken]{border-color:#a40000}\
article.ceremony{border-left:4px solid #888;margin:.8em 0;padding:.2em .8em}article.ceremony article.ceremony{border-left-color:#ccc}";

/// Text from the transcript made inert: control and reordering characters shown as escapes,
/// then `&`, `<`, `>`, `"` and `'` as entities (fit for text and quoted attributes).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in crate::ui::escape(text).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page being written; elements closed in order.
struct Page {
    out: String,
    open: Vec<&'static str>,
}

impl Page {
    fn open(&mut self, tag: &'static str, attrs: &[(&str, &str)]) -> &mut Page {
        self.out.push('<');
        self.out.push_str(tag);
        for (k, v) in attrs {
            self.out.push_str(&format!(" {k}=\"{}\"", escape(v)));
        }
        self.out.push('>');
        self.open.push(tag);
        self
    }
    fn close(&mut self) -> &mut Page {
        let tag = self.open.pop().expect("an open element");
        self.out.push_str(&format!("</{tag}>"));
        self
    }
    fn text(&mut self, text: &str) -> &mut Page {
        self.out.push_str(&escape(text));
        self
    }
    /// `<tag attrs>text</tag>`.
    fn el(&mut self, tag: &'static str, attrs: &[(&str, &str)], text: &str) -> &mut Page {
        self.open(tag, attrs).text(text).close()
    }
    fn row(&mut self, attrs: &[(&str, &str)], cells: &[&str]) -> &mut Page {
        self.open("tr", attrs);
        for c in cells {
            self.el("td", &[], c);
        }
        self.close()
    }
    fn head_row(&mut self, cells: &[&str]) -> &mut Page {
        self.open("tr", &[]);
        for c in cells {
            self.el("th", &[], c);
        }
        self.close()
    }
}

fn bool_text(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

fn duration(seconds: Option<i64>) -> String {
    match seconds {
        None => "duration unknown".into(),
        Some(s) if s < 60 => format!("{s} s"),
        Some(s) if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        Some(s) => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// The page for `report`.
pub fn render(report: &Report) -> String {
    let mut p = Page {
        out: String::from("<!DOCTYPE html>\n"),
        open: Vec::new(),
    };
    p.open("html", &[("lang", "en")]).open("head", &[]);
    p.out.push_str("<meta charset=\"utf-8\" />");
    p.out.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src &#39;none&#39;; style-src &#39;unsafe-inline&#39;; img-src data:\" />");
    p.out
        .push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\" />");
    p.el(
        "title",
        &[],
        &format!("Custody transcript report: {}", report.file),
    );
    p.el("style", &[], STYLE);
    p.close().open("body", &[]);
    p.el("h1", &[], "Custody transcript report");
    p.open("p", &[])
        .text("File ")
        .el("code", &[], &report.file)
        .text(&format!(", {} line(s).", report.lines))
        .close();
    verdict(&mut p, report);
    signatures(&mut p, report);
    timeline(&mut p, report);
    holders(&mut p, report);
    checks(&mut p, report);
    authority(&mut p, report);
    quorum(&mut p, report);
    nonces(&mut p, report);
    p.close().close();
    debug_assert!(p.open.is_empty());
    p.out.push('\n');
    p.out
}

fn line_attrs(report: &Report, line: usize) -> (String, &'static str) {
    (line.to_string(), bool_text(report.trusted(line)))
}

fn verdict(p: &mut Page, r: &Report) {
    match &r.broken {
        None => {
            p.open("section", &[("id", "verdict"), ("data-chain", "intact")]);
            p.el("h2", &[], "Verdict: hash chain intact");
            p.el(
                "p",
                &[("class", "ok")],
                &format!(
                    "The hash chain is intact: all {} line(s) check. Head hash: {}",
                    r.lines, r.head_hash
                ),
            );
        }
        Some(b) => {
            let n = b.line.to_string();
            p.open(
                "section",
                &[
                    ("id", "verdict"),
                    ("data-chain", "broken"),
                    ("data-broken-line", &n),
                ],
            );
            p.el(
                "h2",
                &[],
                &format!("Verdict: hash chain broken at line {n}"),
            );
            p.el(
                "p",
                &[("class", "bad")],
                &format!(
                    "The hash chain is broken at line {n}: {}. Lines 1 to {} check (head hash {}); \
                     line {n} and every line after it are shown marked untrusted.",
                    b.why, r.trusted_lines, r.head_hash
                ),
            );
        }
    }
    let good = r.signatures.iter().filter(|s| s.ok).count();
    p.el(
        "p",
        &[],
        &if r.certs_checked {
            format!(
                "{good} of {} holder signature(s) check out; {} line(s) no good signature covers.",
                r.signatures.len(),
                r.unsigned.len()
            )
        } else {
            format!(
                "{} holder signature(s), not checked: no --certs.",
                r.signatures.len()
            )
        },
    );
    p.close();
}

fn signatures(p: &mut Page, r: &Report) {
    p.open("section", &[("id", "signature-list")]);
    p.el("h2", &[], "Holder signatures");
    p.open("table", &[("id", "signatures")]);
    p.head_row(&["line", "signer", "user id", "signed head", "result"]);
    for s in &r.signatures {
        let valid = if s.problem.as_deref() == Some(crate::transcript::signatures::NOT_CHECKED) {
            "unchecked"
        } else {
            bool_text(s.ok)
        };
        let result = match (&s.problem, valid) {
            (None, _) => "valid".to_owned(),
            (Some(_), "unchecked") => "not checked: no --certs".to_owned(),
            (Some(why), _) => format!("not valid: {why}"),
        };
        let line = s.line.to_string();
        p.row(
            &[
                ("class", "signature"),
                ("data-signer", &s.signer),
                ("data-valid", valid),
                ("data-line", &line),
            ],
            &[&line, &s.signer, &s.user_id, &s.signed_head, &result],
        );
    }
    p.close();
    if r.signatures.is_empty() {
        p.el("p", &[], "No holder has signed this transcript.");
    }
    p.close();
    let count = r.unsigned.len().to_string();
    p.open("section", &[("id", "unsigned"), ("data-count", &count)]);
    p.el("h2", &[], "Lines no good holder signature covers");
    p.el(
        "p",
        &[],
        &if r.certs_checked {
            format!("{count} line(s) are covered by no holder signature that checks out.")
        } else {
            format!("{count} line(s): no signature was checked (no --certs), so none is covered.")
        },
    );
    if r.unsigned.is_empty() {
        p.close();
        return;
    }
    // A long list stays folded (no script: the browser's own disclosure element).
    p.open("details", &[]);
    p.el("summary", &[], &format!("the {count} line(s)"));
    p.open("ul", &[]);
    for u in &r.unsigned {
        let line = u.line.to_string();
        p.el(
            "li",
            &[("class", "unsigned-line"), ("data-line", &line)],
            &format!("line {line}: {} {}", u.ceremony, u.step),
        );
    }
    p.close().close().close();
}

fn run_article(p: &mut Page, r: &Report, run: &Run) {
    let (first, last) = (run.first_line.to_string(), run.last_line.to_string());
    let trusted = bool_text(r.trusted(run.last_line));
    p.open(
        "article",
        &[
            ("class", "ceremony"),
            ("data-ceremony", &run.ceremony),
            ("data-kind", if run.script { "script" } else { "command" }),
            ("data-first-line", &first),
            ("data-last-line", &last),
            ("data-trusted", trusted),
        ],
    );
    let name = if run.ceremony.is_empty() {
        "(unreadable line)"
    } else {
        run.ceremony.as_str()
    };
    p.el(
        if run.script { "h3" } else { "h4" },
        &[],
        &format!(
            "{} {name}, lines {first}–{last}",
            if run.script { "Ceremony" } else { "Command" }
        ),
    );
    p.el(
        "p",
        &[],
        &format!("{} → {} ({})", run.start, run.end, duration(run.seconds)),
    );
    if trusted == "false" {
        p.el(
            "p",
            &[("class", "bad")],
            "Untrusted: after the chain's break.",
        );
    }
    p.el("p", &[], &format!("Actors: {}", run.actors.join(", ")));
    if !run.holders.is_empty() {
        p.open("p", &[]).text("Holders: ");
        for (i, h) in run.holders.iter().enumerate() {
            if i > 0 {
                p.text(", ");
            }
            let name = r
                .holders
                .iter()
                .find(|n| n.fingerprint.eq_ignore_ascii_case(h))
                .map(|n| n.user_id.as_str())
                .unwrap_or_default();
            p.el("span", &[("class", "fpr")], h);
            if !name.is_empty() {
                p.text(&format!(" ({name})"));
            }
        }
        p.close();
    }
    for s in &run.shares {
        p.el(
            "p",
            &[("class", "shares")],
            &format!(
                "line {}: {} share(s) given at {}{}",
                s.line,
                s.count,
                s.step,
                if s.holders.is_empty() {
                    " (holders not identified by key)".to_owned()
                } else {
                    format!(" by {}", s.holders.join(", "))
                }
            ),
        );
    }
    p.open("ol", &[("class", "steps")]);
    for s in run.steps.iter().filter(|s| !run.script || s.kind.is_some()) {
        let line = s.line.to_string();
        p.el(
            "li",
            &[
                ("data-line", &line),
                ("data-trusted", bool_text(r.trusted(s.line))),
            ],
            &format!(
                "line {line} {}: {}{} by {}",
                s.time,
                s.step,
                s.kind
                    .as_deref()
                    .map(|k| format!(" ({k})"))
                    .unwrap_or_default(),
                s.actor
            ),
        );
    }
    p.close();
    for c in &run.commands {
        run_article(p, r, c);
    }
    p.close();
}

fn timeline(p: &mut Page, r: &Report) {
    p.open("section", &[("id", "timeline")]);
    p.el("h2", &[], "Timeline of the ceremonies");
    for run in &r.runs {
        run_article(p, r, run);
    }
    p.close();
}

fn holders(p: &mut Page, r: &Report) {
    p.open("section", &[("id", "holder-list")]);
    p.el("h2", &[], "Holders named in the transcript");
    p.open("table", &[("id", "holders")]);
    p.head_row(&["fingerprint", "user id", "named at lines"]);
    for h in &r.holders {
        let lines: Vec<String> = h.lines.iter().map(ToString::to_string).collect();
        p.row(
            &[("class", "holder"), ("data-fingerprint", &h.fingerprint)],
            &[&h.fingerprint, &h.user_id, &lines.join(", ")],
        );
    }
    p.close().close();
}

fn checks(p: &mut Page, r: &Report) {
    p.open("section", &[("id", "checks")]);
    p.el("h2", &[], "Checks custody made");
    p.open("table", &[]);
    p.head_row(&["line", "ceremony", "check", "result", "detail"]);
    for c in &r.checks {
        let (line, trusted) = line_attrs(r, c.line);
        p.row(
            &[
                ("class", "check"),
                ("data-ok", bool_text(c.ok)),
                ("data-line", &line),
                ("data-trusted", trusted),
            ],
            &[
                &line,
                &format!("{} {}", c.ceremony, c.step),
                &c.what,
                if c.ok { "passed" } else { "FAILED" },
                &c.detail,
            ],
        );
    }
    p.close();
    if r.checks.is_empty() {
        p.el("p", &[], "The transcript records no checks.");
    }
    p.close();
}

fn authority(p: &mut Page, r: &Report) {
    let address = r.authority.clone().unwrap_or_default();
    p.open(
        "section",
        &[("id", "authority"), ("data-address", &address)],
    );
    p.el("h2", &[], "The Authority's address");
    if address.is_empty() {
        p.el("p", &[], "The transcript records no Authority address.");
    } else {
        p.open("p", &[])
            .text("Recorded as ")
            .el("code", &[], &address)
            .close();
    }
    p.open("table", &[]);
    p.head_row(&["line", "ceremony", "cluster", "address", "same address"]);
    for s in &r.sightings {
        let (line, trusted) = line_attrs(r, s.line);
        let same = s.address == address;
        p.row(
            &[
                ("class", "sighting"),
                ("data-line", &line),
                ("data-same", bool_text(same)),
                ("data-trusted", trusted),
            ],
            &[
                &line,
                &format!("{} {}", s.ceremony, s.step),
                &s.cluster,
                &s.address,
                if same { "yes" } else { "NO" },
            ],
        );
    }
    p.close().close();
}

fn quorum(p: &mut Page, r: &Report) {
    p.open("section", &[("id", "quorum-picture")]);
    p.el("h2", &[], "Quorum: who proved a share of which set, when");
    p.open("table", &[("id", "quorum")]);
    for s in &r.quorum {
        p.open("tbody", &[("class", "share-set"), ("data-set", &s.set.id)]);
        p.open("tr", &[]).open("th", &[("colspan", "3")]);
        p.text(&format!(
            "{}: {} of {}, put in force by {} at line {} ({})",
            s.set.id,
            s.set.threshold,
            s.set.holders.len(),
            s.set.origin.ceremony,
            s.line,
            s.set.origin.time
        ));
        p.close().close();
        p.head_row(&["holder", "user id", "proofs of a share"]);
        for h in &s.holders {
            let proofs: Vec<String> = h
                .proofs
                .iter()
                .map(|x| format!("line {} {} ({}) {}", x.line, x.kind, x.ceremony, x.time))
                .collect();
            let count = h.proofs.len().to_string();
            p.row(
                &[
                    ("class", "quorum-holder"),
                    ("data-fingerprint", &h.fingerprint),
                    ("data-proofs", &count),
                ],
                &[
                    &format!("{} {}", h.index, h.fingerprint),
                    &h.user_id,
                    &if proofs.is_empty() {
                        "none".to_owned()
                    } else {
                        proofs.join("; ")
                    },
                ],
            );
        }
        p.close();
    }
    p.close();
    if r.quorum.is_empty() {
        p.el(
            "p",
            &[],
            "No share set is recorded (no init, adoption or proven rotation).",
        );
    }
    p.close();
}

fn nonces(p: &mut Page, r: &Report) {
    p.open("section", &[("id", "nonces")]);
    p.el("h2", &[], "The Authority's nonces across clusters");
    if r.nonces.is_empty() {
        p.el("p", &[], "There is no nonce history in this transcript.");
    } else {
        p.open("table", &[]);
        p.head_row(&["line", "time", "step", "account", "counters"]);
        for n in &r.nonces {
            let (line, trusted) = line_attrs(r, n.line);
            let figures: Vec<String> = n.figures.iter().map(|(k, v)| format!("{k} {v}")).collect();
            p.row(
                &[
                    ("class", "nonce"),
                    ("data-line", &line),
                    ("data-trusted", trusted),
                ],
                &[&line, &n.time, &n.step, &n.account, &figures.join(", ")],
            );
        }
        p.close();
    }
    p.close();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::{Step, Transcript};
    use serde_json::json;

    /// A strict check that `page` is well-formed XML of the kind the renderer writes: every
    /// element closed in order, attributes quoted, only the five XML entities (and numeric).
    pub fn well_formed(page: &str) -> Result<(), String> {
        let body = page.strip_prefix("<!DOCTYPE html>\n").ok_or("no doctype")?;
        let mut stack: Vec<String> = Vec::new();
        let mut rest = body;
        while let Some(at) = rest.find(['<', '&']) {
            let (text, tail) = rest.split_at(at);
            if text.contains('>') {
                return Err(format!("a bare > in text: {text:?}"));
            }
            if tail.starts_with('&') {
                let end = tail.find(';').ok_or("an unterminated entity")?;
                let name = &tail[1..end];
                let numeric = name
                    .strip_prefix('#')
                    .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()));
                if !numeric && !["amp", "lt", "gt", "quot", "apos"].contains(&name) {
                    return Err(format!("entity &{name};"));
                }
                rest = &tail[end + 1..];
                continue;
            }
            let end = tail.find('>').ok_or("an unterminated tag")?;
            let tag = &tail[1..end];
            if tag.contains('<') {
                return Err(format!("< inside a tag: {tag:?}"));
            }
            if let Some(name) = tag.strip_prefix('/') {
                match stack.pop() {
                    Some(open) if open == name => {}
                    other => return Err(format!("</{name}> closes {other:?}")),
                }
            } else {
                let self_closed = tag.ends_with('/');
                let inner = tag.trim_end_matches('/');
                let name = inner.split(' ').next().unwrap_or_default().to_owned();
                // attributes: name="value" pairs, the value without a raw quote
                let mut attrs = inner[name.len()..].trim();
                while !attrs.is_empty() {
                    let eq = attrs
                        .find("=\"")
                        .ok_or(format!("unquoted attribute in {tag:?}"))?;
                    let close = attrs[eq + 2..]
                        .find('"')
                        .ok_or("an unterminated attribute")?;
                    attrs = attrs[eq + 2 + close + 1..].trim_start();
                }
                if !self_closed {
                    stack.push(name);
                }
            }
            rest = &tail[end + 1..];
        }
        if stack.is_empty() {
            Ok(())
        } else {
            Err(format!("unclosed: {stack:?}"))
        }
    }

    #[test]
    fn text_from_others_is_inert() {
        let evil = "<script>alert(1)</script> \"Mallory\" 'x' & \u{1b}[2J x\u{202e}cba\u{0}";
        let out = escape(evil);
        assert_eq!(
            out,
            "&lt;script&gt;alert(1)&lt;/script&gt; &quot;Mallory&quot; &#39;x&#39; &amp; \\u{1b}[2J x\\u{202e}cba\\u{0}"
        );
        assert!(!out.chars().any(|c| c.is_control()));
    }

    #[test]
    fn the_checker_refuses_what_it_should() {
        assert!(well_formed("<!DOCTYPE html>\n<a><b></a></b>").is_err());
        assert!(well_formed("<!DOCTYPE html>\n<a x=y></a>").is_err());
        assert!(well_formed("<!DOCTYPE html>\n<a>&nbsp;</a>").is_err());
        assert!(well_formed("<!DOCTYPE html>\n<a><meta x=\"1\" /></a>").is_ok());
    }

    #[test]
    fn a_page_with_a_hostile_user_id_is_well_formed_and_has_no_script() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let t = Transcript::at(&path);
        let evil = "<script>alert('x')</script>\" onload=\"x\u{202e}\u{7}";
        t.append(Step::new(
            "init",
            "sys/init",
            "operator",
            json!({ "threshold": 1, "recipients_verified": true, "holders": [{ "index": 1, "fingerprint": "AA", "user_id": evil }] }),
        ))
        .unwrap();
        t.append(Step::new(
            "unseal",
            "sys/unseal",
            evil,
            json!({ "holders": ["AA"], "shares_given": 1 }),
        ))
        .unwrap();
        let report = super::super::build(&path, None).unwrap();
        let page = render(&report);
        well_formed(&page).unwrap();
        assert!(!page.to_ascii_lowercase().contains("<script"));
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)"));
        assert!(page.contains("\\u{202e}"));
        assert!(page.contains("<section id=\"verdict\" data-chain=\"intact\">"));
        assert!(page.contains("<tr class=\"holder\" data-fingerprint=\"AA\">"));
        assert!(page.contains("data-ceremony=\"unseal\""));
        assert!(page.contains("<section id=\"nonces\">"));
    }
}
