use std::process::ExitCode;

use clap::Parser as _;

#[tokio::main]
async fn main() -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match cli::run(cli::Cli::parse(), &mut stdout).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line: the reason and its causes, `outer: inner: root`.
            eprintln!("shippy: {error:#}");
            ExitCode::FAILURE
        }
    }
}
