//! `custody completions SHELL`: the shell's completion script, generated from the one clap
//! definition.

use clap::CommandFactory;

use crate::cli::Cli;

pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "custody", &mut buf);
    buf
}
