//! `custody transcript verify FILE`: the chain, and the head hash witnesses write down.

use std::path::Path;

use serde_json::json;

use super::Ctx;
use crate::error::Result;

pub fn verify(ctx: &Ctx, file: &Path) -> Result<()> {
    let head = crate::transcript::verify_file(file)?;
    ctx.ui.result(
        &format!(
            "{}: {} entries, chain intact.\nHead hash (write this down): {}",
            file.display(),
            head.entries,
            head.head_hash
        ),
        json!({ "file": file.display().to_string(), "entries": head.entries, "head_hash": head.head_hash, "ok": true }),
    );
    Ok(())
}
