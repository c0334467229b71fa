//! `custody transcript report`: the transcript as one self-contained HTML page.

use std::path::Path;

use serde_json::json;

use crate::error::Result;
use crate::flows::Ctx;
use crate::flows::report::{build, html, write_new};
use crate::fsutil::refuse_existing;

pub fn report(ctx: &Ctx, file: &Path, out: &Path, certs_dir: Option<&Path>) -> Result<()> {
    refuse_existing(out)?;
    let report = crate::flows::certs::with_certs(certs_dir, |verifier| build(file, verifier))?;
    write_new(out, &html::render(&report))?;
    let chain = match &report.broken {
        None => "chain intact".to_owned(),
        Some(b) => format!("chain broken at line {}", b.line),
    };
    ctx.ui.result(
        &format!(
            "Report: {} ({} lines, {chain}). It opens offline in any browser.",
            out.display(),
            report.lines
        ),
        json!({
            "report": out.display().to_string(),
            "lines": report.lines,
            "chain_intact": report.broken.is_none(),
            "broken": report.broken,
        }),
    );
    super::chain_verdict(&report)
}
