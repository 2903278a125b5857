//! `shippy bench`: throughput and tail latency of the services under load, each
//! scenario set against a bare NATS echo measured in the same run.

mod lag;
mod load;
mod report;
mod target;

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::Duration,
};

use clap::Args;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use shared::nats::NatsConfig;

use self::target::{Echo, Failure, Target};
pub use self::{
    lag::Lag,
    load::{Load, OPEN_LOOP_MAX_IN_FLIGHT, Window},
    report::{Outcome, Report},
};
use crate::{client::Services, input, output::Format};

/// `shippy bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure; several run one after another, `all` is `raw find create`
    /// (`http-create` is asked for by name: it needs a gateway).
    #[arg(value_enum, default_value = "all")]
    pub scenarios: Vec<Choice>,
    /// Closed loop: this many requests in flight at all times (1 to 1024).
    #[arg(long, default_value_t = 16, conflicts_with = "rate")]
    pub clients: u32,
    /// Open loop: send this many requests per second (1 to 50000), whatever the replies do;
    /// latency counts from each request's scheduled send time.
    #[arg(long)]
    pub rate: Option<u32>,
    /// How long to measure each scenario, e.g. `5s`, `500ms` (100ms to 10m).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Load before measuring each scenario, not counted (0s to 1m).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// The consignment the `create` scenario sends (default: ./consignment.json).
    #[arg(long, default_value = "consignment.json")]
    pub file: PathBuf,
    /// Before measuring, store this many more consignments (copies of --file on the
    /// vessel `bench-fill`), appended straight to the event stream, 500 to an event:
    /// how the services fare as data grows (up to 10000000).
    #[arg(long, default_value_t = 0)]
    pub fill: u64,
    /// Before measuring, grow the fleet to at least this many vessels, adding vessels
    /// `0-fleet-NNNNNNN` (first in id order, each too small for --file) through
    /// vessel.create: how the services fare as the fleet grows (up to 1000000).
    #[arg(long, default_value_t = 0)]
    pub fleet: u64,
    /// The HTTP gateway `http-create` sends to.
    #[arg(long, env = "SHIPPY_GATEWAY_URL", default_value = DEFAULT_GATEWAY, value_name = "URL")]
    pub gateway: String,
    /// The gateway's API token for `http-create` (`shippy auth token DIR`); better
    /// given in the environment than on the command line.
    #[arg(long, env = "SHIPPY_GATEWAY_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub gateway_token: Option<String>,
}

/// Where `http-create` finds the gateway unless told: compose's.
pub const DEFAULT_GATEWAY: &str = "http://127.0.0.1:8080";

/// Closed loop: the most clients; one connection carries them all.
pub const MAX_CLIENTS: u32 = 1_024;
/// Open loop: the highest rate one process schedules on time.
pub const MAX_RATE: u32 = 50_000;
/// The shortest measured window that gives a p99.9 worth reading.
pub const MIN_DURATION: Duration = Duration::from_millis(100);
/// The longest measured window per scenario.
pub const MAX_DURATION: Duration = Duration::from_secs(600);
/// The longest warm-up per scenario.
pub const MAX_WARMUP: Duration = Duration::from_secs(60);
/// The most consignments `--fill` stores.
pub const MAX_FILL: u64 = 10_000_000;
/// The largest fleet `--fleet` grows.
pub const MAX_FLEET: u64 = 1_000_000;

/// `shippy bench --help`, after the flags.
pub const HELP: &str = "Examples:
  shippy bench all --duration 5s                # raw, find, create; 16 clients each
  shippy bench find create --clients 64         # closed loop: 64 requests always in flight
  shippy bench create --rate 2000 --duration 30s --file big.json
                                                # open loop: 2000 requests/s on schedule
  shippy bench raw --json | jq '.scenarios[0].throughput'
  SHIPPY_GATEWAY_TOKEN=\"$(shippy auth token DIR)\" shippy bench all http-create --clients 1
                                                # the same create over HTTP, against create

Scenarios:
  raw     a bare echo responder the bench starts on its own connection, answering
          with a vessel-sized reply: what NATS request-reply costs, the ceiling
  find    vessel.find_available (one hop, vessel-worker)
  create  consignment.create with the seed consignment, or --file (two hops; each
          request stores and books a consignment, on the vessel `bench`, which the
          bench adds with room for all of them, first in id order)
  all     raw, find, create, one after another
  http-create
          POST /v1/consignments to the HTTP gateway (--gateway, default
          http://127.0.0.1:8080) with its API token (SHIPPY_GATEWAY_TOKEN), the same
          consignment as create; each bench client keeps one keep-alive connection.
          Set against create when both run: P50 VS CREATE. The gateway's per-token
          rate limit (GATEWAY_RATE_PER_SECOND, GATEWAY_RATE_BURST) must be above the
          bench's rate, or its 429s count as errors

Figures: REQ/S counts successful replies; P50..MAX is their latency (HDR histogram)
from the moment each request was sent (closed loop) or scheduled (open loop, so a
stall is never hidden); VS RAW sets each scenario against raw from the same run,
and http-create's p50 and req/s are set against create's on a line of their own.
During create, a probe creates every 20ms and a follower of the event stream of the
bench's own times each probe's event from its reply: the follow lag, how stale a
find through an instance other than the writer's can be.

Growth: --fill N stores N more consignments before measuring (appended straight to
the event stream), --fleet N grows the fleet to N vessels that come first in id
order and take nothing: repeat a run with and without to see what data and fleet
size cost.

Limits: --clients 1 to 1024; --rate 1 to 50000 (at most 10000 in flight; beyond
that the schedule waits and the wait counts as latency); --duration 100ms to 10m;
--warmup 0s to 1m. Each request waits at most --timeout-ms.";

/// What the command line can ask for: a scenario, or `all` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Choice {
    /// A bare echo responder: the transport's ceiling.
    Raw,
    /// `vessel.find_available`.
    Find,
    /// `consignment.create`.
    Create,
    /// `raw`, `find` and `create`, one after another.
    All,
    /// `POST /v1/consignments` through the HTTP gateway.
    HttpCreate,
}

impl Choice {
    fn scenarios(self) -> &'static [Scenario] {
        match self {
            Self::Raw => &[Scenario::Raw],
            Self::Find => &[Scenario::Find],
            Self::Create => &[Scenario::Create],
            Self::All => &[Scenario::Raw, Scenario::Find, Scenario::Create],
            Self::HttpCreate => &[Scenario::HttpCreate],
        }
    }
}

/// What can be measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Raw,
    Find,
    Create,
    HttpCreate,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Find => "find",
            Self::Create => "create",
            Self::HttpCreate => "http-create",
        }
    }
}

/// Arguments the bench cannot honour.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("--clients must be at least 1")]
    NoClients,
    #[error("--clients {0} is more than {MAX_CLIENTS}, the most one connection keeps in flight; run several benches")]
    TooManyClients(u32),
    #[error("--rate must be at least 1 request a second")]
    NoRate,
    #[error("--rate {0} is more than {MAX_RATE} requests a second, the most one process schedules on time")]
    RateTooHigh(u32),
    #[error("--duration {0} is shorter than 100ms, too short for tail latencies")]
    TooShort(String),
    #[error("--duration {0} is longer than 10m; a bench must end by itself")]
    TooLong(String),
    #[error("--warmup {0} is longer than 1m")]
    WarmupTooLong(String),
    #[error("--fill {0} is more than {MAX_FILL}")]
    FillTooLarge(u64),
    #[error("--fleet {0} is more than {MAX_FLEET}")]
    FleetTooLarge(u64),
    #[error("http-create needs the gateway's API token: set SHIPPY_GATEWAY_TOKEN (`shippy auth token DIR` prints it)")]
    NoGatewayToken,
    #[error("--gateway {0}: expected an http:// or https:// URL, such as {DEFAULT_GATEWAY}")]
    BadGateway(String),
}

/// A bench the arguments describe, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub scenarios: Vec<Scenario>,
    pub load: Load,
    pub warmup: Duration,
    pub duration: Duration,
    /// Consignments to store before measuring.
    pub fill: u64,
    /// Vessels the fleet is grown to before measuring.
    pub fleet: u64,
    /// Where `http-create` sends, when it runs.
    pub gateway: Option<GatewayPlan>,
}

/// The gateway `http-create` sends to, and the token it sends.
#[derive(Clone, PartialEq, Eq)]
pub struct GatewayPlan {
    pub url: reqwest::Url,
    pub token: String,
}

/// Shows where, never the token.
impl std::fmt::Debug for GatewayPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayPlan").field("url", &self.url.as_str()).finish_non_exhaustive()
    }
}

impl Plan {
    /// Checks the arguments and expands `all`, in the order given, each scenario once.
    pub fn new(args: &BenchArgs) -> Result<Self, Refused> {
        let load = match args.rate {
            Some(0) => return Err(Refused::NoRate),
            Some(rate) if rate > MAX_RATE => return Err(Refused::RateTooHigh(rate)),
            Some(rate) => Load::Open { rate },
            None if args.clients == 0 => return Err(Refused::NoClients),
            None if args.clients > MAX_CLIENTS => return Err(Refused::TooManyClients(args.clients)),
            None => Load::Closed { clients: args.clients },
        };
        let shown = |duration| humantime::format_duration(duration).to_string();
        if args.duration < MIN_DURATION {
            return Err(Refused::TooShort(shown(args.duration)));
        }
        if args.duration > MAX_DURATION {
            return Err(Refused::TooLong(shown(args.duration)));
        }
        if args.warmup > MAX_WARMUP {
            return Err(Refused::WarmupTooLong(shown(args.warmup)));
        }
        if args.fill > MAX_FILL {
            return Err(Refused::FillTooLarge(args.fill));
        }
        if args.fleet > MAX_FLEET {
            return Err(Refused::FleetTooLarge(args.fleet));
        }
        let mut scenarios = Vec::new();
        for choice in &args.scenarios {
            for scenario in choice.scenarios() {
                if !scenarios.contains(scenario) {
                    scenarios.push(*scenario);
                }
            }
        }
        let gateway = if scenarios.contains(&Scenario::HttpCreate) {
            let url = reqwest::Url::parse(&args.gateway)
                .ok()
                .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
                .ok_or_else(|| Refused::BadGateway(args.gateway.clone()))?;
            let token = args.gateway_token.clone().filter(|token| !token.trim().is_empty());
            Some(GatewayPlan { url, token: token.ok_or(Refused::NoGatewayToken)?.trim().to_owned() })
        } else {
            None
        };
        Ok(Self {
            scenarios,
            load,
            warmup: args.warmup,
            duration: args.duration,
            fill: args.fill,
            fleet: args.fleet,
            gateway,
        })
    }
}

/// Runs `plan` and prints its report (a table unless JSON is asked); the `create`
/// scenario sends the consignment in `file`.
pub async fn run(
    services: &Services,
    nats: &NatsConfig,
    plan: &Plan,
    file: &Path,
    format: Option<Format>,
    out: &mut impl Write,
) -> anyhow::Result<Report> {
    let consignment = single(file)?;
    if plan.fleet > 0 {
        let added = target::grow_fleet(services, plan.fleet).await?;
        eprintln!("shippy bench: {} vessels 0-fleet-* in the fleet ({added} added now)", plan.fleet);
    }
    if plan.fill > 0 {
        target::fill(services, &consignment, plan.fill).await?;
        eprintln!("shippy bench: {} more consignments stored", plan.fill);
    }
    let mut echo = None;
    let mut targets = Vec::new();
    for scenario in &plan.scenarios {
        let target = match scenario {
            Scenario::Raw => {
                let started = Echo::start(nats, services.timeout()).await?;
                let target = Target::echo(started.subject.clone());
                echo = Some(started);
                target
            }
            Scenario::Find => Target::find(),
            Scenario::Create => {
                target::add_bench_vessel(services).await?;
                Target::create(&consignment)
            }
            Scenario::HttpCreate => {
                target::add_bench_vessel(services).await?;
                // A plan with http-create has its gateway (Plan::new).
                let gateway = plan.gateway.as_ref().ok_or(Refused::NoGatewayToken)?;
                Target::http_create(&gateway.url, &gateway.token, &consignment, services.timeout())?
            }
        };
        targets.push((scenario.name(), target));
    }
    let window = Window { warmup: plan.warmup, duration: plan.duration };
    let mut outcomes = Vec::new();
    let mut follow_lag = None;
    for (name, target) in targets {
        // One request first: a service that is not there is a clear error, not a table of failures.
        target.call(services).await.map_err(|error| match error {
            Failure::Request(shared::client::RequestError::Denied { .. }) => {
                anyhow::anyhow!("{name}: {error}; the bench runs as the admin: NATS_NKEY=nats-auth/admin/nkey")
            }
            Failure::Refused { status: 401, .. } => {
                anyhow::anyhow!("{name}: {error}; SHIPPY_GATEWAY_TOKEN: `shippy auth token DIR` prints the token")
            }
            error => anyhow::anyhow!("{name}: {error}"),
        })?;
        let progress = progress_bar(name, window);
        let probe =
            if name == Scenario::Create.name() { Some(lag::Probe::start(services, &consignment).await?) } else { None };
        let samples = load::drive(services, &target, plan.load, window, &progress).await;
        if let Some(probe) = probe {
            follow_lag = Some(probe.finish().await);
        }
        progress.finish_and_clear();
        outcomes.push(Outcome::new(name, target.subject.clone(), &samples, window));
    }
    drop(echo);
    let report = Report::new(&nats.redacted_url(), plan.load, window, outcomes, follow_lag);
    match format {
        Some(Format::Json) => writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?,
        Some(Format::Table) | None => write!(out, "{}", report.to_table())?,
    }
    Ok(report)
}

/// The one consignment in `file`.
fn single(file: &Path) -> anyhow::Result<shared::model::NewConsignment> {
    match input::read(file)?.as_slice() {
        [(_, Ok(new))] => Ok(new.clone()),
        _ => anyhow::bail!("{} holds more than one consignment; the create scenario sends one", file.display()),
    }
}

fn progress_bar(name: &str, window: Window) -> ProgressBar {
    let total = u64::try_from((window.warmup + window.duration).as_millis()).unwrap_or(u64::MAX);
    ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
        .with_style(
            ProgressStyle::with_template("{prefix:>8} [{bar:40}] {msg}").expect("valid template").progress_chars("=> "),
        )
        .with_prefix(name.to_owned())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::args::{Cli, Command};

    fn plan(args: &[&str]) -> Result<Plan, Refused> {
        let cli = Cli::try_parse_from(["shippy", "bench"].iter().chain(args)).unwrap();
        let Command::Bench(bench) = cli.command else { unreachable!() };
        Plan::new(&bench)
    }

    #[test]
    fn all_expands_in_order_once() {
        let plan = plan(&["find", "all"]).unwrap();
        assert_eq!(plan.scenarios, [Scenario::Find, Scenario::Raw, Scenario::Create]);
        assert_eq!(plan.load, Load::Closed { clients: 16 });
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        assert_eq!(plan(&["--clients", "0"]), Err(Refused::NoClients));
        assert_eq!(plan(&["--clients", "5000"]), Err(Refused::TooManyClients(5000)));
        assert_eq!(plan(&["--rate", "0"]), Err(Refused::NoRate));
        assert_eq!(plan(&["--rate", "1000000"]), Err(Refused::RateTooHigh(1_000_000)));
        assert_eq!(plan(&["--duration", "0s"]), Err(Refused::TooShort("0s".into())));
        assert_eq!(plan(&["--duration", "2h"]), Err(Refused::TooLong("2h".into())));
        assert_eq!(plan(&["--warmup", "5m"]), Err(Refused::WarmupTooLong("5m".into())));
        assert_eq!(plan(&["--rate", "100"]).unwrap().load, Load::Open { rate: 100 });
        assert_eq!(plan(&["--fill", "10000001"]), Err(Refused::FillTooLarge(10_000_001)));
        assert_eq!(plan(&["--fleet", "1000001"]), Err(Refused::FleetTooLarge(1_000_001)));
        assert_eq!(plan(&["--fill", "5", "--fleet", "7"]).map(|plan| (plan.fill, plan.fleet)), Ok((5, 7)));
    }

    #[test]
    fn http_create_needs_a_gateway_and_its_token() {
        // Not part of `all`: no gateway is asked for unless named.
        assert_eq!(plan(&["all", "--gateway", "nowhere"]).unwrap().gateway, None);
        let token = ["--gateway-token", "t0k3n"];
        let chosen = plan(&[&["raw", "create", "http-create"][..], &token].concat()).unwrap();
        assert_eq!(chosen.scenarios, [Scenario::Raw, Scenario::Create, Scenario::HttpCreate]);
        let gateway = chosen.gateway.unwrap();
        assert_eq!((gateway.url.as_str(), gateway.token.as_str()), ("http://127.0.0.1:8080/", "t0k3n"));
        assert!(!format!("{gateway:?}").contains("t0k3n"));
        let elsewhere = plan(&[&["http-create", "--gateway", "http://[::1]:18080"][..], &token].concat()).unwrap();
        assert_eq!(elsewhere.gateway.unwrap().url.as_str(), "http://[::1]:18080/");
        for bad in ["localhost:8080", "ftp://host/", "http://"] {
            let refused = plan(&[&["http-create", "--gateway", bad][..], &token].concat());
            assert_eq!(refused, Err(Refused::BadGateway(bad.to_owned())));
        }
        assert_eq!(plan(&["http-create", "--gateway-token", " "]), Err(Refused::NoGatewayToken));
    }
}
