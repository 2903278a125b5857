//! The command line: every command, flag and its `--help` example.
//!
//! A new command is a variant of [`Command`] (with its examples in `after_help`)
//! and an arm in [`crate::run`].

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::{
    bench::{self, BenchArgs},
    output::Format,
};

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "shippy",
    version,
    about = "shippy: book consignments onto vessels over NATS",
    after_help = "Examples:\n  shippy create                         # books ./consignment.json onto a vessel\n  shippy list -o json | jq .id\n  shippy bench all --duration 5s\n  NATS_URL=nats://nats:4222 shippy vessels"
)]
pub struct Cli {
    /// Where NATS is, and the credentials to log in with (as the `nats` CLI reads them).
    #[command(flatten)]
    pub nats: shared::nats::NatsConfig,
    /// How long to wait for NATS and for each reply, in milliseconds.
    #[arg(long, global = true, env = "SHIPPY_TIMEOUT_MS", default_value_t = 5_000)]
    pub timeout_ms: u64,
    /// Output format: `table` for people, `json` for scripts (JSON Lines for lists).
    /// Default: `table` on a terminal, `json` when piped (`bench`: always `table`).
    #[arg(short = 'o', long = "output", global = true, value_enum)]
    pub output: Option<Format>,
    /// Shorthand for `-o json`.
    #[arg(long, global = true, conflicts_with = "output")]
    pub json: bool,
    /// Print the command's trace id on stderr (while traces are exported:
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` set), to find it in the trace viewer.
    #[arg(short = 'v', long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The format asked for on the command line, if any.
    pub fn format(&self) -> Option<Format> {
        if self.json { Some(Format::Json) } else { self.output }
    }

    /// The timeout for NATS and for each reply.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// What to ask the services.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create consignments from a file (one, a JSON array, or JSON Lines) and book each onto a vessel.
    #[command(
        after_help = "Examples:\n  shippy create                          # ./consignment.json\n  shippy create batch.jsonl --concurrency 64\n  generate-orders | shippy create -      # JSON Lines on stdin"
    )]
    Create(CreateArgs),
    /// List the consignments created so far, oldest first, following every page.
    #[command(
        after_help = "Examples:\n  shippy list\n  shippy list --vessel vessel001 --user user001\n  shippy list -o json | jq -r .vessel_id"
    )]
    List(ListArgs),
    /// Show one consignment.
    #[command(after_help = "Examples:\n  shippy get 2435f164-cc15-4219-8f4c-5d723cc1578d")]
    Get {
        /// The consignment's id.
        id: String,
    },
    /// Follow the consignments created, from now or from the start, one line each.
    #[command(after_help = "Examples:\n  shippy watch\n  shippy watch --all --count 10 -o json")]
    Watch {
        /// Replay every consignment stored, then follow new ones.
        #[arg(long)]
        all: bool,
        /// Stop after this many consignments.
        #[arg(long)]
        count: Option<u64>,
        /// The workers' idempotency window in seconds: a repeat of a key within it is
        /// not shown (set it as the workers have it).
        #[arg(long, env = "IDEMPOTENCY_WINDOW_SECS", default_value_t = shared::config::DEFAULT_IDEMPOTENCY_WINDOW_SECS)]
        idempotency_window_secs: u64,
    },
    /// List the fleet; a vessel with no container or no kilogram left shows as `full`.
    #[command(after_help = "Examples:\n  shippy vessels\n  shippy vessels -o json")]
    Vessels,
    /// Change the fleet: `shippy vessel add`.
    #[command(subcommand)]
    Vessel(VesselCommand),
    /// Find a vessel that carries this many containers of this total weight.
    #[command(after_help = "Examples:\n  shippy find-vessel --capacity 3 --max-weight 55000")]
    FindVessel {
        /// Containers to carry.
        #[arg(long)]
        capacity: u32,
        /// Total weight to carry, in kilograms.
        #[arg(long)]
        max_weight: u64,
    },
    /// Measure throughput and latency of the services under load, like `nats bench service`.
    #[command(after_help = bench::HELP)]
    Bench(BenchArgs),
    /// Make the NATS keys of every role (README, "Security"); `docker compose up` runs it.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  shippy completions bash > /etc/bash_completion.d/shippy\n  shippy completions zsh > \"${fpath[1]}/_shippy\"\n  shippy completions fish > ~/.config/fish/completions/shippy.fish"
    )]
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

/// `shippy auth`.
#[derive(Debug, Subcommand)]
#[command(after_help = "Examples:\n  shippy auth init nats-auth\n  shippy auth init nats-auth --rotate client")]
pub enum AuthCommand {
    /// Make an nkey for every role in DIR (a seed file each) and the server's users.conf;
    /// keys already there are kept.
    #[command(
        after_help = "Examples:\n  shippy auth init nats-auth                    # nats-auth/<role>/nkey, nats-auth/server/users.conf\n  shippy auth init nats-auth --rotate client    # a new client key; reload nats-server after"
    )]
    Init {
        /// Where to write the keys.
        dir: PathBuf,
        /// Replace these roles' keys (comma-separated or repeated).
        #[arg(long, value_delimiter = ',')]
        rotate: Vec<String>,
        /// Give the role directories and seeds to this user, as UID:GID (for services
        /// that run as another user than this command).
        #[arg(long, value_parser = crate::auth::parse_owner)]
        owner: Option<(u32, u32)>,
    },
    /// Print the gateway's API token that `init` made in DIR (DIR/api/token), for
    /// `Authorization: Bearer`.
    #[command(
        after_help = "Examples:\n  curl -H \"Authorization: Bearer $(shippy auth token nats-auth)\" localhost:8080/v1/vessels"
    )]
    Token {
        /// Where `init` wrote the keys.
        dir: PathBuf,
    },
}

/// `shippy vessel`.
#[derive(Debug, Subcommand)]
#[command(after_help = "Examples:\n  shippy vessel add --id vessel003 --capacity 500 --max-weight 200000")]
pub enum VesselCommand {
    /// Add a vessel to the fleet (`vessel.create`), with nothing booked: the way out of
    /// `no vessel available`.
    #[command(
        after_help = "Examples:\n  shippy vessel add --id vessel003 --capacity 500 --max-weight 200000 --name \"Ever Given\"\n  shippy vessel add --id barge-7 --capacity 20 --max-weight 30000 -o json"
    )]
    Add(VesselAddArgs),
}

/// `shippy vessel add`.
#[derive(Debug, Args)]
pub struct VesselAddArgs {
    /// The vessel's id: letters, digits, `-` and `_`; an id taken is refused.
    #[arg(long)]
    pub id: String,
    /// How many containers it carries.
    #[arg(long)]
    pub capacity: u32,
    /// The heaviest load it carries, in kilograms.
    #[arg(long)]
    pub max_weight: u64,
    /// Its name (default: its id).
    #[arg(long)]
    pub name: Option<String>,
}

/// `shippy create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The consignments: one JSON object, a JSON array of them, or JSON Lines; `-` reads stdin.
    #[arg(default_value = "consignment.json")]
    pub file: PathBuf,
    /// How many creates to have in flight at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
    /// The idempotency key (`Nats-Msg-Id`) of the create; with several consignments,
    /// the n-th gets KEY-n. Default: a fresh key for each consignment. A create is
    /// retried with its key, so it happens once however often it is sent.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// How long to keep sending a create that failed for a passing reason (no reply,
    /// a timeout, no service, a 500/503/504) again, with the same key, waiting
    /// 100ms doubling to 2s between sends, each wait 50-100% of that; long enough by
    /// default to ride out a NATS leader election (README, "Cluster"). With no
    /// service listening, at most 5s. `0s`: no retries.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub retry_for: Duration,
    /// At most this many retries of a create (default: as many as fit in --retry-for).
    #[arg(long)]
    pub retries: Option<u32>,
}

impl CreateArgs {
    /// The retries a create may make.
    pub fn retry(&self) -> crate::client::Retry {
        crate::client::Retry { within: self.retry_for, most: self.retries }
    }
}

/// `shippy list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only consignments booked onto this vessel.
    #[arg(long)]
    pub vessel: Option<String>,
    /// Only consignments with a container of this user.
    #[arg(long)]
    pub user: Option<String>,
    /// Consignments asked for per request (1 to 1000).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub page_size: u32,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn arguments_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_shows_an_example() {
        for command in Cli::command().get_subcommands() {
            let help = command.get_after_help().map(ToString::to_string).unwrap_or_default();
            let name = command.get_name();
            assert!(help.starts_with("Examples:"), "{name} has no examples");
            assert!(help.contains(&format!("shippy {name}")), "{name}'s examples do not run it: {help}");
        }
    }
}
