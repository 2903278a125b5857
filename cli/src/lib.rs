//! `shippy`: the command-line client of the shippy services.
//!
//! Every command is one NATS request; the reply is printed as JSON on stdout.
//! Any failure (NATS down, no service listening, a timeout, an error reply) ends
//! the program with a non-zero status and a one-line reason on stderr.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context as _;
use async_nats::Client;
use serde::{Serialize, de::DeserializeOwned};
use shared::{
    client::request,
    codec::encode,
    model::{ConsignmentList, CreatedConsignment, NewConsignment, Specification, VesselList, VesselReply},
    subjects::{consignment, vessel},
};

/// Command-line arguments.
#[derive(Debug, clap::Parser)]
#[command(name = "shippy", version, about)]
pub struct Cli {
    /// NATS server to connect to.
    #[arg(long, global = true, env = shared::nats::URL_ENV, default_value = shared::nats::DEFAULT_URL)]
    pub nats_url: String,
    /// How long to wait for NATS and for each reply, in milliseconds.
    #[arg(long, global = true, env = "SHIPPY_TIMEOUT_MS", default_value_t = 5_000)]
    pub timeout_ms: u64,
    #[command(subcommand)]
    pub command: Command,
}

/// What to ask the services.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create a consignment from a JSON file and book it onto a vessel.
    Create {
        /// The consignment: description, weight and containers.
        #[arg(default_value = "consignment.json")]
        file: PathBuf,
    },
    /// List the consignments created so far.
    List,
    /// List the fleet.
    Vessels,
    /// Find a vessel that carries this many containers of this total weight.
    FindVessel {
        #[arg(long)]
        capacity: u32,
        #[arg(long)]
        max_weight: u64,
    },
}

/// Runs one command and returns the reply, pretty-printed.
pub async fn run(cli: Cli) -> anyhow::Result<String> {
    let timeout = Duration::from_millis(cli.timeout_ms);
    let connect = async || {
        shared::nats::connect_client(&cli.nats_url, "shippy-cli", timeout)
            .await
            .with_context(|| format!("cannot reach NATS at {}", cli.nats_url))
    };
    match cli.command {
        Command::Create { file } => {
            // Read the file first: a mistake in it is reported even with NATS down.
            let new = encode(&read_consignment(&file)?);
            ask::<CreatedConsignment>(&connect().await?, consignment::CREATE, new, timeout).await
        }
        Command::List => ask::<ConsignmentList>(&connect().await?, consignment::LIST, Vec::new(), timeout).await,
        Command::Vessels => ask::<VesselList>(&connect().await?, vessel::LIST, Vec::new(), timeout).await,
        Command::FindVessel { capacity, max_weight } => {
            let spec = encode(&Specification { capacity, max_weight, consignment_id: None });
            ask::<VesselReply>(&connect().await?, vessel::FIND_AVAILABLE, spec, timeout).await
        }
    }
}

/// Sends one request and pretty-prints the reply it decodes to.
async fn ask<T: Serialize + DeserializeOwned>(
    client: &Client,
    subject: &str,
    payload: Vec<u8>,
    timeout: Duration,
) -> anyhow::Result<String> {
    let reply: T = request(client, subject, payload.into(), timeout).await?;
    Ok(serde_json::to_string_pretty(&reply)?)
}

fn read_consignment(file: &Path) -> anyhow::Result<NewConsignment> {
    let json = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    serde_json::from_slice(&json).with_context(|| format!("{} is not a consignment", file.display()))
}
