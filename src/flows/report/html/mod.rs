//! The report as one self-contained HTML page: no script, no request (its Content-Security-Policy
//! forbids every fetch but inline style and data: images), well-formed as XML too. Every text
//! from the transcript goes through [`escape`]: control and reordering characters shown escaped,
//! then the five XML specials as entities.

mod facts;

use super::Report;
use facts::{authority, checks, holders, nonces, quorum, timeline};

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:72em;padding:0 1em;color:#1b1b1b}\
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;margin-top:2em}\
table{border-collapse:collapse;margin:.5em 0;width:100%}td,th{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top;overflow-wrap:anywhere}\
code,.fpr{font-family:ui-monospace,monospace;font-size:.9em;word-break:break-all}\
.ok{color:#14622a}.bad{color:#a40000;font-weight:bold}tr.check[data-ok=false]{color:#a40000;font-weight:bold}.untrusted{background:#fdecea}.unsigned{color:#8a4b00;font-style:italic}\
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

/// How a fact's line is shown: `signed` only where a holder's good signature covers it.
fn signed_text(signed: bool) -> &'static str {
    if signed { "signed" } else { "unsigned" }
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
    let signed = r.signed_lines.to_string();
    p.el(
        "p",
        &[
            ("id", "coverage"),
            ("data-signed-lines", &signed),
            (
                "class",
                if r.signed_lines == 0 {
                    "unsigned"
                } else {
                    "ok"
                },
            ),
        ],
        &match (r.certs_checked, r.signed_lines) {
            (false, _) => "No signature was checked (no --certs): every fact below is unsigned; \
                           only the holders' signatures, checked with their certificates, show \
                           who agreed to it."
                .to_owned(),
            (true, 0) => "No holder's signature that checks out covers any line: every fact \
                          below is unsigned."
                .to_owned(),
            (true, n) => format!(
                "Lines 1 to {n} are covered by a holder's signature that checks out; every fact \
                 from a later line is marked unsigned."
            ),
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

#[cfg(test)]
mod tests;
