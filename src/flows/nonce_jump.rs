//! A counter raised far above where it was skips those nonces for good (a counter only rises),
//! so a lying RPC or record could push the Authority to nonces the chain never reaches: past
//! `--max-nonce-jump` a raise needs a confirmation. The rollback and `wallet unfreeze` ask the
//! same way.

use crate::error::{Error, Kind, Result};
use crate::flows::Ctx;

/// `over` (one line per counter raised past `bound`, empty when none is) confirmed with `--yes`
/// or on the terminal: whether there was anything to confirm. Else exit 4, nothing changed.
/// `whose` names the counters ("blue's", "the mount's").
pub fn confirm(ctx: &Ctx, bound: u64, whose: &str, over: &[String]) -> Result<bool> {
    if over.is_empty() {
        return Ok(false);
    }
    let what = format!(
        "a floor more than --max-nonce-jump {bound} above {whose} counter: {}",
        over.join("; ")
    );
    let refused = |why: &str| {
        Error::precondition(format!("{what}. {why}; nothing was changed"))
            .hint(
                "a counter only rises: raised too far, the Authority signs nonces the chain \
                 never reaches. Check what each RPC says (custody wallet show --rpc URL)",
            )
            .hint("if the figure is right, run it again with --yes, or on a terminal to confirm it")
    };
    let question = format!("{what}. Raise {whose} counters that far?");
    match ctx.ui.confirm(&question) {
        Ok(true) => {
            ctx.ui.warn(format!("confirmed: {what}"));
            Ok(true)
        }
        Ok(false) => Err(refused("Not confirmed")),
        Err(e) if e.kind == Kind::Usage => Err(refused("No terminal to confirm it on")),
        Err(e) => Err(e),
    }
}
