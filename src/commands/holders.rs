//! `custody holders`: each holder of the current share set, and when they last proved a share.

use crate::cli::HoldersArgs;
use crate::error::{Error, Result};
use crate::flows::Ctx;

pub fn run(_ctx: &Ctx, _args: &HoldersArgs) -> Result<()> {
    Err(Error::failed("custody holders is not built yet"))
}
