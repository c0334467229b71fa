//! `custody transcript show`: the report's verdict and timeline in the terminal; with
//! `--format json`, the whole report model. Every fact is marked signed only where a holder's
//! signature that checks out (with `--certs`) covers its line; everything else, unsigned.

use std::path::Path;

use crate::error::Result;
use crate::flows::Ctx;
use crate::flows::report::{Report, build};
use crate::transcript::timeline::Run;
use crate::ui::escape;

pub fn show(ctx: &Ctx, file: &Path, certs_dir: Option<&Path>) -> Result<()> {
    let report = crate::flows::certs::with_certs(certs_dir, |verifier| build(file, verifier))?;
    let json = serde_json::to_value(&report).unwrap_or_default();
    ctx.ui.result(&text(&report), json);
    super::chain_verdict(&report)
}

fn text(r: &Report) -> String {
    let mut out = vec![match &r.broken {
        None => format!(
            "{}: {} lines, hash chain intact. Head hash: {}",
            r.file, r.lines, r.head_hash
        ),
        Some(b) => format!(
            "{}: {} lines, hash chain BROKEN at line {}: {}. Lines from {} on are untrusted.",
            r.file,
            r.lines,
            b.line,
            escape(&b.why),
            b.line
        ),
    }];
    for s in &r.signatures {
        out.push(format!(
            "  signature line {} by {}: {}",
            s.line,
            escape(&s.signer),
            match &s.problem {
                None => "valid".to_owned(),
                Some(p) => escape(p),
            }
        ));
    }
    out.push(match (r.certs_checked, r.signed_lines) {
        (false, _) => {
            "  signatures not checked (no --certs): every fact below is unsigned".to_owned()
        }
        (true, 0) => "  no holder's signature that checks out covers any line: every fact below \
                      is unsigned"
            .to_owned(),
        (true, n) => format!(
            "  lines 1 to {n} are signed; {} line(s) no good holder signature covers",
            r.unsigned.len()
        ),
    });
    let failed = r.checks.iter().filter(|c| !c.ok).count();
    let unsigned = r.checks.iter().filter(|c| !c.signed).count();
    out.push(format!(
        "{} check(s) recorded, {failed} failed, {unsigned} unsigned{}",
        r.checks.len(),
        match &r.authority {
            Some(a) => format!(
                "; Authority {} ({})",
                escape(a),
                if r.authority_signed {
                    "signed"
                } else {
                    "unsigned"
                }
            ),
            None => String::new(),
        }
    ));
    out.push("Timeline:".into());
    for run in &r.runs {
        run_lines(r, run, "  ", &mut out);
    }
    out.join("\n")
}

fn run_lines(r: &Report, run: &Run, indent: &str, out: &mut Vec<String>) {
    let seconds = run.seconds.map_or("?".to_owned(), |s| s.to_string());
    out.push(format!(
        "{indent}{} {} lines {}-{}, {} ({seconds} s){}{} {}",
        if run.script { "ceremony" } else { "command" },
        escape(&run.ceremony),
        run.first_line,
        run.last_line,
        escape(&run.start),
        if run.holders.is_empty() {
            String::new()
        } else {
            format!("; holders {}", escape(&run.holders.join(", ")))
        },
        if r.trusted(run.last_line) {
            ""
        } else {
            " [untrusted]"
        },
        signed_mark(r, run)
    ));
    for c in &run.commands {
        run_lines(r, c, &format!("{indent}  "), out);
    }
}

/// `[signed]` when a holder's good signature covers every line of the run, else which of its
/// lines are unsigned.
fn signed_mark(r: &Report, run: &Run) -> String {
    if run.signed {
        "[signed]".to_owned()
    } else if r.signed(run.first_line) {
        format!("[unsigned from line {}]", r.signed_lines + 1)
    } else {
        "[unsigned]".to_owned()
    }
}
