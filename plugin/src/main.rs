//! `custody-signer`: the Vault/OpenBao secrets plugin. This is the skeleton; the go-plugin
//! protocol and the backend arrive with their own issue.

use std::process::ExitCode;

const MAGIC_COOKIE_KEY: &str = "VAULT_BACKEND_PLUGIN";
const MAGIC_COOKIE_VALUE: &str = "6669da05-b1c8-4f49-97d9-c8e5bed98e20";

fn main() -> ExitCode {
    if std::env::var(MAGIC_COOKIE_KEY).as_deref() != Ok(MAGIC_COOKIE_VALUE) {
        eprintln!(
            "custody-signer is a Vault/OpenBao plugin: it is started by the server, not by hand.\n\
             Put it in the server's plugin_directory and run `custody plugin install`."
        );
        return ExitCode::from(1);
    }
    eprintln!("custody-signer: the plugin protocol is not implemented yet");
    ExitCode::from(1)
}
