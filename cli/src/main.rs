use std::process::ExitCode;

use clap::Parser as _;

#[tokio::main]
async fn main() -> ExitCode {
    // No log lines unless RUST_LOG asks: the CLI's output and errors are its own
    // (async-nats would log a refused login beside shippy's own message).
    let _telemetry = shared::telemetry::init_with("shippy", "off");
    let mut stdout = std::io::stdout().lock();
    match cli::run(cli::Cli::parse(), &mut stdout).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("shippy: {}", one_line(&error));
            ExitCode::from(cli::exit_code(&error))
        }
    }
}

/// The reason and its causes on one line, `outer: inner: root`, each cause once.
///
/// async-nats errors write their source into their own message *and* return it from
/// `source()`, so `{error:#}` would print `Connection refused (os error 111): Connection
/// refused (os error 111)`; a cause whose text the line already ends with is skipped.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.is_empty() {
            line = text;
        } else if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that, like async-nats's, prints its source as part of its own message.
    #[derive(Debug)]
    struct Repeats(std::io::Error);

    impl std::fmt::Display for Repeats {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "IO error: {}", self.0)
        }
    }

    impl std::error::Error for Repeats {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn each_cause_is_printed_once() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let error = anyhow::Error::new(Repeats(refused)).context("cannot reach NATS at nats://127.0.0.1:1");
        assert_eq!(one_line(&error), "cannot reach NATS at nats://127.0.0.1:1: IO error: connection refused");
    }

    #[test]
    fn distinct_causes_are_all_printed() {
        let error = anyhow::anyhow!("root").context("middle").context("outer");
        assert_eq!(one_line(&error), "outer: middle: root");
    }
}
