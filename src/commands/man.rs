//! `custody man`: the man pages, generated from the one clap definition.

use std::path::Path;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::{Context as _, Result};

/// Every man page: `custody.1`, and one per subcommand (`custody-root-generate.1`, …), as
/// (file name, roff text).
pub fn man_pages() -> Result<Vec<(String, Vec<u8>)>> {
    let mut cmd = Cli::command();
    cmd.build();
    let mut out = Vec::new();
    render(&cmd, "custody", &mut out)?;
    Ok(out)
}

fn render(cmd: &clap::Command, name: &str, out: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
    let page = cmd.clone().name(name.to_owned());
    let mut buf = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut buf)
        .context(format!("rendering the man page of {name}"))?;
    out.push((format!("{name}.1"), buf));
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        render(sub, &format!("{name}-{}", sub.get_name()), out)?;
    }
    Ok(())
}

pub fn write_man(dir: &Path) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir).context(format!("creating {}", dir.display()))?;
    let mut names = Vec::new();
    for (name, text) in man_pages()? {
        let path = dir.join(&name);
        std::fs::write(&path, text).context(format!("writing {}", path.display()))?;
        names.push(name);
    }
    Ok(names)
}
