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

use crate::error::Result;

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
