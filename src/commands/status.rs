//! `custody status`: what every node says about itself.

use serde_json::json;

use crate::error::{Error, Result};
use crate::flows::Ctx;
use crate::flows::nodes::{all_status, table};

pub async fn run(ctx: &Ctx) -> Result<()> {
    let addrs = ctx.require_addrs()?;
    let vault = ctx.vault()?;
    let nodes = all_status(&vault, addrs).await;
    ctx.ui.result(&table(&nodes), json!({ "nodes": nodes }));
    let down = nodes.iter().filter(|n| !n.reachable).count();
    if down > 0 {
        return Err(Error::failed(format!(
            "{down} of {} nodes did not answer",
            nodes.len()
        )));
    }
    Ok(())
}
