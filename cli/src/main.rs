use std::process::ExitCode;

use clap::Parser as _;

#[tokio::main]
async fn main() -> ExitCode {
    match cli::run(cli::Cli::parse()).await {
        Ok(reply) => {
            println!("{reply}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            // One line: the reason and its causes, `outer: inner: root`.
            eprintln!("shippy: {error:#}");
            ExitCode::FAILURE
        }
    }
}
