//! `custody rotate-shares`: a new set of holders for the unseal shares.

use crate::cli::RotateSharesArgs;
use crate::error::{Error, Result};
use crate::flows::Ctx;

pub async fn run(_ctx: &Ctx, _args: &RotateSharesArgs) -> Result<()> {
    Err(Error::failed("custody rotate-shares is not built yet"))
}
