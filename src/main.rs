use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match custody::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let format = cli.global.format;
    let yes = cli.global.yes;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(custody::commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            custody::ui::Ui::new(format, yes).error(&e);
            ExitCode::from(e.kind.exit_code())
        }
    }
}
