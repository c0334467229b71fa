//! `custody transcript verify | sign | show | report`: the chain, the holders' signatures over
//! its head, and the transcript shown to people (in the terminal, or as one HTML page).

mod report;
mod show;
mod sign;
mod verify;

pub use report::report;
pub use show::show;
pub use sign::sign;
pub use verify::verify;

use std::path::Path;

use crate::error::Result;
use crate::flows::certs::{check_with, load_certs};
use crate::transcript::signatures::Verifier;

/// Runs `f` with a check of signatures against the certificates in `certs_dir`, if given.
fn with_certs<T>(
    certs_dir: Option<&Path>,
    f: impl FnOnce(Option<Verifier>) -> Result<T>,
) -> Result<T> {
    let Some(dir) = certs_dir else {
        return f(None);
    };
    let certs = load_certs(dir)?;
    let check = |signer: &str, sig: &[u8], text: &[u8]| check_with(&certs, signer, sig, text);
    f(Some(&check))
}

/// Exit 3 once the report is out, when the chain does not check.
fn chain_verdict(report: &crate::flows::report::Report) -> Result<()> {
    match &report.broken {
        None => Ok(()),
        Some(b) => Err(crate::error::Error::verification(format!(
            "transcript {} line {}: {}",
            report.file,
            b.line,
            crate::ui::escape(&b.why)
        ))),
    }
}
