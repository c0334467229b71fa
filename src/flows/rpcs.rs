//! The RPCs a command reads the chain through: its flag (once per RPC), a file of URLs, or
//! `CUSTODY_RPC_URL` when neither is given; each checked (`chain::RpcUrl`) before anything is
//! read, and a warning when argv holds a URL a key may hide in.

use std::path::Path;

use crate::chain::{Rpcs, Sources};
use crate::error::Result;
use crate::flows::Ctx;

/// Where one flag's RPCs come from.
pub struct RpcFlags<'a> {
    /// Such as `--rpc`.
    pub flag: &'a str,
    pub argv: &'a [String],
    /// Such as `--rpc-file`, and its value.
    pub file_flag: &'a str,
    pub file: Option<&'a Path>,
    /// Whether `CUSTODY_RPC_URL` feeds this flag.
    pub env: bool,
}

/// The RPCs given (`None`: none).
pub fn rpcs(ctx: &Ctx, flags: RpcFlags<'_>) -> Result<Option<Rpcs>> {
    let gathered = Sources {
        flag: flags.flag,
        argv: flags.argv,
        file: flags.file.map(|p| (flags.file_flag, p)),
        env: if flags.env {
            crate::config::rpc_url_env()
        } else {
            None
        },
    }
    .gather()?;
    if gathered.secret_in_argv {
        ctx.ui.warn(format!(
            "{}: a URL on the command line holds user info, a query or a path, where providers \
             put an API key, and every user of this machine can read the command line; give it \
             in {}{} FILE instead",
            flags.flag,
            if flags.env {
                format!("{} or ", crate::chain::RPC_URL_ENV)
            } else {
                String::new()
            },
            flags.file_flag
        ));
    }
    if gathered.urls.is_empty() {
        return Ok(None);
    }
    Rpcs::new(gathered.urls).map(Some)
}
