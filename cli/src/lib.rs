//! `shippy`: the command-line client of the shippy services.
//!
//! Each command is a few NATS requests through [`client::Services`]. On a terminal
//! replies print as tables ([`output`]); piped, or with `-o json`, as JSON Lines
//! (one object a line), except a single create's reply and the bench report, each
//! one pretty-printed object; one shape per kind of thing (a consignment from `get`
//! as from `list`). Any
//! failure (NATS down, a login refused, a permission denied, no service listening,
//! a timeout, an error reply, a consignment not created) ends the program with a
//! one-line reason on stderr and status 1, or 2 for bad arguments ([`exit_code`]).
//!
//! | module | what |
//! |---|---|
//! | [`args`] | the command line and its `--help` examples |
//! | [`client`] | the connection every request goes through |
//! | [`output`] | tables and JSON |
//! | [`input`], [`bulk`] | reading consignments; creating many at once |
//! | [`bench`] | `shippy bench` |
//! | [`watch`] | `shippy watch` |
//! | [`auth`] | `shippy auth init`: the NATS keys of every role |

pub mod args;
pub mod auth;
pub mod bench;
pub mod bulk;
pub mod client;
pub mod input;
pub mod output;
pub mod watch;

use std::io::Write;

use clap::CommandFactory as _;
use shared::{
    codec::encode,
    model::{
        ConsignmentList, ConsignmentReply, CreatedVessel, GetConsignment, ListConsignments, ListVessels, ListedVessel,
        NewVessel, Specification, VesselList, VesselReply,
    },
    subjects::{consignment, vessel},
};

pub use crate::args::{AuthCommand, Cli, Command, VesselCommand};
use crate::args::{ListArgs, VesselAddArgs};
use crate::{client::Services, output::Format};

/// Prints every consignment `args` asks for, page by page: JSON Lines as each page
/// comes, or one table at the end.
async fn list(services: &Services, args: &ListArgs, format: Format, out: &mut impl Write) -> anyhow::Result<()> {
    let mut query = ListConsignments {
        limit: Some(args.page_size),
        cursor: None,
        vessel_id: args.vessel.clone(),
        user_id: args.user.clone(),
    };
    let mut all = Vec::new();
    loop {
        let page: ConsignmentList = services.request(consignment::LIST, encode(&query).into()).await?;
        match format {
            Format::Json => output::json_lines(out, &page.consignments)?,
            Format::Table => all.extend(page.consignments),
        }
        match page.next {
            Some(next) => query.cursor = Some(next),
            None => break,
        }
    }
    if format == Format::Table {
        output::consignments(out, format, &all)?;
    }
    Ok(())
}

/// Adds the vessel `args` describes through `vessel.create` and prints it as
/// `shippy vessels` prints a vessel: a table of one row, or one JSON object.
async fn add_vessel(
    services: &Services,
    args: &VesselAddArgs,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let vessel = NewVessel {
        id: args.id.clone(),
        capacity: args.capacity,
        max_weight: args.max_weight,
        name: args.name.clone().unwrap_or_else(|| args.id.clone()),
        available: true,
        owner_id: String::new(),
    };
    let added: CreatedVessel = services.request(vessel::CREATE, encode(&vessel).into()).await?;
    output::vessels(out, format, &[ListedVessel::from(added.vessel)])?;
    Ok(())
}

/// The exit status of a failure: 2 for arguments refused (as for clap's own usage
/// errors), such as a bench `--duration` out of range; 1 for anything else.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    if error.downcast_ref::<bench::Refused>().is_some() { 2 } else { 1 }
}

/// Runs one command, printing what it produces on `out`, in the root span of its
/// trace: every request it sends carries that trace on (`shared::telemetry`).
pub async fn run(cli: Cli, out: &mut impl Write) -> anyhow::Result<()> {
    use tracing::Instrument as _;

    let span = tracing::info_span!("shippy", otel.name = "shippy");
    if cli.verbose
        && let Some(id) = shared::telemetry::trace_id(&span)
    {
        eprintln!("trace id: {id}");
    }
    run_command(cli, out).instrument(span).await
}

async fn run_command(cli: Cli, out: &mut impl Write) -> anyhow::Result<()> {
    let format = Format::resolve(cli.format());
    let connect = || Services::connect(&cli.nats, cli.timeout());
    match &cli.command {
        Command::Create(args) => {
            // Read the input first: a mistake in it is reported even with NATS down.
            let parsed = input::read(&args.file)?;
            let summary = bulk::create(&connect().await?, parsed, args, format, out).await?;
            if summary.failures() > 0 {
                anyhow::bail!("{} of {} consignments not created", summary.failures(), summary.total);
            }
        }
        Command::List(args) => list(&connect().await?, args, format, out).await?,
        Command::Get { id } => {
            let body = encode(&GetConsignment { id: id.clone() });
            let found: ConsignmentReply = connect().await?.request(consignment::GET, body.into()).await?;
            // As `list` prints it: `shippy get ID | jq .vessel_id` works.
            output::consignments(out, format, std::slice::from_ref(&found.consignment))?;
        }
        Command::Watch { all, count, idempotency_window_secs } => {
            let window = std::time::Duration::from_secs(*idempotency_window_secs);
            watch::follow(&connect().await?, watch::Follow { all: *all, count: *count, window }, format, out).await?;
        }
        Command::Vessels => {
            let services = connect().await?;
            let mut query = ListVessels::default();
            let mut vessels = Vec::new();
            loop {
                let page: VesselList = services.request(vessel::LIST, encode(&query).into()).await?;
                vessels.extend(page.vessels);
                match page.next {
                    Some(next) => query.cursor = Some(next),
                    None => break,
                }
            }
            output::vessels(out, format, &vessels)?;
        }
        Command::Vessel(VesselCommand::Add(args)) => add_vessel(&connect().await?, args, format, out).await?,
        Command::FindVessel { capacity, max_weight } => {
            let spec = encode(&Specification { capacity: *capacity, max_weight: *max_weight, sequence: None });
            let found: VesselReply = connect().await?.request(vessel::FIND_AVAILABLE, spec.into()).await?;
            // As `vessels` prints it, with what it can still take.
            output::vessels(out, format, &[ListedVessel::from(found.vessel)])?;
        }
        Command::Bench(args) => {
            // Refuse what cannot be honoured before reaching for NATS.
            let plan = bench::Plan::new(args)?;
            // A report reads the same in a terminal and in a file: a table unless JSON is asked.
            bench::run(&connect().await?, &cli.nats, &plan, &args.file, cli.format(), out).await?;
        }
        Command::Auth(AuthCommand::Init { dir, rotate, owner }) => {
            let keys = auth::init(dir, rotate, *owner)?;
            output::keys(out, format, &keys)?;
        }
        Command::Auth(AuthCommand::Token { dir }) => {
            writeln!(out, "{}", auth::token(dir)?)?;
        }
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "shippy", out);
        }
    }
    Ok(())
}
