//! The page's sections of facts: the timeline, the holders, the checks, the Authority, the
//! quorum and the nonces. Each fact shows whether a holder's signature that checks out covers
//! its line (`data-signed`, and the word "unsigned" where none does).

use super::{Page, bool_text, duration, line_attrs, signed_text};
use crate::flows::report::Report;
use crate::transcript::timeline::Run;

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
            ("data-signed", bool_text(run.signed)),
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
    if !run.signed {
        let from = run.first_line.max(r.signed_lines + 1);
        p.el(
            "p",
            &[("class", "unsigned")],
            &format!("Unsigned: no holder's signature that checks out covers lines {from}–{last}."),
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
            &[("class", "shares"), ("data-signed", bool_text(s.signed))],
            &format!(
                "line {}: {} share(s) given at {}{}, {}",
                s.line,
                s.count,
                s.step,
                if s.holders.is_empty() {
                    " (holders not identified by key)".to_owned()
                } else {
                    format!(" by {}", s.holders.join(", "))
                },
                signed_text(s.signed)
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
                ("data-signed", bool_text(s.signed)),
            ],
            &format!(
                "line {line} {}: {}{} by {}, {}",
                s.time,
                s.step,
                s.kind
                    .as_deref()
                    .map(|k| format!(" ({k})"))
                    .unwrap_or_default(),
                s.actor,
                signed_text(s.signed)
            ),
        );
    }
    p.close();
    for c in &run.commands {
        run_article(p, r, c);
    }
    p.close();
}

pub(super) fn timeline(p: &mut Page, r: &Report) {
    p.open("section", &[("id", "timeline")]);
    p.el("h2", &[], "Timeline of the ceremonies");
    for run in &r.runs {
        run_article(p, r, run);
    }
    p.close();
}

pub(super) fn holders(p: &mut Page, r: &Report) {
    p.open("section", &[("id", "holder-list")]);
    p.el("h2", &[], "Holders named in the transcript");
    p.open("table", &[("id", "holders")]);
    p.head_row(&["fingerprint", "user id", "named at lines"]);
    for h in &r.holders {
        let lines: Vec<String> = h
            .lines
            .iter()
            .map(|l| {
                if h.unsigned_lines.contains(l) {
                    format!("{l} (unsigned)")
                } else {
                    l.to_string()
                }
            })
            .collect();
        p.row(
            &[("class", "holder"), ("data-fingerprint", &h.fingerprint)],
            &[&h.fingerprint, &h.user_id, &lines.join(", ")],
        );
    }
    p.close().close();
}

pub(super) fn checks(p: &mut Page, r: &Report) {
    p.open("section", &[("id", "checks")]);
    p.el("h2", &[], "Checks custody made");
    p.open("table", &[]);
    p.head_row(&["line", "ceremony", "check", "result", "detail", "signed"]);
    for c in &r.checks {
        let (line, trusted) = line_attrs(r, c.line);
        p.row(
            &[
                ("class", "check"),
                ("data-ok", bool_text(c.ok)),
                ("data-line", &line),
                ("data-trusted", trusted),
                ("data-signed", bool_text(c.signed)),
            ],
            &[
                &line,
                &format!("{} {}", c.ceremony, c.step),
                &c.what,
                if c.ok { "passed" } else { "FAILED" },
                &c.detail,
                signed_text(c.signed),
            ],
        );
    }
    p.close();
    if r.checks.is_empty() {
        p.el("p", &[], "The transcript records no checks.");
    }
    p.close();
}

pub(super) fn authority(p: &mut Page, r: &Report) {
    let address = r.authority.clone().unwrap_or_default();
    p.open(
        "section",
        &[
            ("id", "authority"),
            ("data-address", &address),
            ("data-signed", bool_text(r.authority_signed)),
        ],
    );
    p.el("h2", &[], "The Authority's address");
    if address.is_empty() {
        p.el("p", &[], "The transcript records no Authority address.");
    } else {
        p.open("p", &[])
            .text("Recorded as ")
            .el("code", &[], &address)
            .text(if r.authority_signed {
                " (signed)"
            } else {
                " (unsigned: no holder's good signature covers the line it is taken from)"
            })
            .close();
    }
    p.open("table", &[]);
    p.head_row(&[
        "line",
        "ceremony",
        "cluster",
        "address",
        "same address",
        "signed",
    ]);
    for s in &r.sightings {
        let (line, trusted) = line_attrs(r, s.line);
        let same = s.address == address;
        p.row(
            &[
                ("class", "sighting"),
                ("data-line", &line),
                ("data-same", bool_text(same)),
                ("data-trusted", trusted),
                ("data-signed", bool_text(s.signed)),
            ],
            &[
                &line,
                &format!("{} {}", s.ceremony, s.step),
                &s.cluster,
                &s.address,
                if same { "yes" } else { "NO" },
                signed_text(s.signed),
            ],
        );
    }
    p.close().close();
}

pub(super) fn quorum(p: &mut Page, r: &Report) {
    p.open("section", &[("id", "quorum-picture")]);
    p.el("h2", &[], "Quorum: who proved a share of which set, when");
    p.open("table", &[("id", "quorum")]);
    for s in &r.quorum {
        p.open(
            "tbody",
            &[
                ("class", "share-set"),
                ("data-set", &s.set.id),
                ("data-signed", bool_text(s.signed)),
            ],
        );
        p.open("tr", &[]).open("th", &[("colspan", "3")]);
        p.text(&format!(
            "{}: {} of {}, put in force by {} at line {} ({}), {}",
            s.set.id,
            s.set.threshold,
            s.set.holders.len(),
            s.set.origin.ceremony,
            s.line,
            s.set.origin.time,
            signed_text(s.signed)
        ));
        p.close().close();
        p.head_row(&["holder", "user id", "proofs of a share"]);
        for h in &s.holders {
            let proofs: Vec<String> = h
                .proofs
                .iter()
                .map(|x| {
                    format!(
                        "line {} {} ({}) {}, {}",
                        x.line,
                        x.kind,
                        x.ceremony,
                        x.time,
                        signed_text(x.signed)
                    )
                })
                .collect();
            let count = h.proofs.len().to_string();
            let signed = h.proofs.iter().filter(|x| x.signed).count().to_string();
            p.row(
                &[
                    ("class", "quorum-holder"),
                    ("data-fingerprint", &h.fingerprint),
                    ("data-proofs", &count),
                    ("data-signed-proofs", &signed),
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

pub(super) fn nonces(p: &mut Page, r: &Report) {
    p.open("section", &[("id", "nonces")]);
    p.el("h2", &[], "The Authority's nonces across clusters");
    if r.nonces.is_empty() {
        p.el("p", &[], "There is no nonce history in this transcript.");
    } else {
        p.open("table", &[]);
        p.head_row(&["line", "time", "step", "account", "counters", "signed"]);
        for n in &r.nonces {
            let (line, trusted) = line_attrs(r, n.line);
            let figures: Vec<String> = n.figures.iter().map(|(k, v)| format!("{k} {v}")).collect();
            p.row(
                &[
                    ("class", "nonce"),
                    ("data-line", &line),
                    ("data-trusted", trusted),
                    ("data-signed", bool_text(n.signed)),
                ],
                &[
                    &line,
                    &n.time,
                    &n.step,
                    &n.account,
                    &figures.join(", "),
                    signed_text(n.signed),
                ],
            );
        }
        p.close();
    }
    p.close();
}
