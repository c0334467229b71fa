//! The plugin binary: thin. The server starts it; a person running it gets a clear message.

use std::process::ExitCode;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("custody-signer: starting the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(custody_signer::goplugin::serve(
        custody_signer::backend::SignerBackend::new,
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", e.0);
            ExitCode::from(1)
        }
    }
}
