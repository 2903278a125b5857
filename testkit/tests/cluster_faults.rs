//! Node loss, partitions and worker crashes on a three-node cluster, under load,
//! lose nothing (issue 10; README.md, "Cluster").
//!
//! Runs against `docker-compose.cluster.yml`, brought up by `.ci/cluster-faults.sh`
//! (which runs this test): creates at a fixed rate, each with a `Nats-Msg-Id` of its
//! own and sent again with the same key while it fails, while the test
//!
//! 1. kills (`kill -9`) the node leading the event stream, then starts it again;
//! 2. kills another node, then starts it again;
//! 3. cuts the node then leading the vessels bucket off the network, then heals it;
//! 4. kills a vessel-worker and a consignment-worker, then starts them again.
//!
//! Then: every create was acknowledged and is stored, once; every node holds the
//! same messages in every stream; events equal consignments; no vessel is booked
//! beyond its capacity and each one's booked totals equal its consignments; every
//! container runs with no restart by its policy, and both services answer with two
//! instances each. It prints the rate, the longest window in which creates failed,
//! the p99 latency during each fault and the share of creates sent more than once.
//!
//! | variable | default |
//! |---|---|
//! | `SHIPPY_CLUSTER_PROJECT` | `shippy-cluster` |
//! | `SHIPPY_CLUSTER_URL` | `nats://127.0.0.1:24222,nats://127.0.0.1:24223,nats://127.0.0.1:24224` |
//! | `SHIPPY_CLUSTER_MONITORS` | `127.0.0.1:28222,127.0.0.1:28223,127.0.0.1:28224` (nodes 1, 2, 3) |
//! | `SHIPPY_FAULT_RATE` | creates a second, `100` |
//! | `SHIPPY_FAULT_SECS` | the least load duration, `40` |
//! | `NATS_NKEY` | the admin's seed file; none without logins |

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::{Client, HeaderMap, jetstream};
use futures::StreamExt as _;
use hdrhistogram::Histogram;
use shared::{
    client::{RequestError, backoff, request, request_with_headers},
    codec::encode,
    model::{Consignment, Container, CreatedConsignment, CreatedVessel, ListConsignments, NewConsignment, NewVessel},
    nats::NatsConfig,
    roles,
    store::{EVENTS_STREAM, FEED_STREAM},
    subjects::{consignment, vessel},
};
use testkit::cluster::{self, Project, StreamState};
use tokio::time::Instant;

/// The NATS services of the compose file, which are also the nodes' server names.
const NODES: [&str; 3] = ["nats-1", "nats-2", "nats-3"];
/// The service that makes the NATS keys when the stack comes up, then exits.
const AUTH_SERVICE: &str = "nats-auth";
/// Each attempt's wait for a reply.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause between two probes for the cluster's coming back. A failed create is
/// sent again (with the same key) after [`backoff`], the policy of `shippy create`.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// How long a create is sent again before it counts as lost.
const CREATE_DEADLINE: Duration = Duration::from_secs(90);
/// How long a node or worker stays down (at least), and a node cut off.
const DOWN_FOR: Duration = Duration::from_secs(5);
/// The quiet time between two faults, so that each failure has one cause.
const QUIET: Duration = Duration::from_secs(3);
/// The longest wait for the cluster to settle (leaders, replicas caught up, workers back).
const SETTLE: Duration = Duration::from_secs(90);
/// The longest any JetStream API or service request of the test's own waits.
const API_TIMEOUT: Duration = Duration::from_secs(2);
/// The vessel the test adds, with room for every create after the default fleet is full.
const BIG_VESSEL: &str = "vessel999";
/// Each create: one container, this heavy (kg).
const WEIGHT: u64 = 100;

struct Settings {
    project: Project,
    url: String,
    monitors: Vec<String>,
    rate: u32,
    duration: Duration,
}

impl Settings {
    fn from_env() -> Self {
        let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        let number = |name: &str, default: &str| {
            var(name, default).parse::<u32>().unwrap_or_else(|error| panic!("{name}: {error}"))
        };
        let monitors = var("SHIPPY_CLUSTER_MONITORS", "127.0.0.1:28222,127.0.0.1:28223,127.0.0.1:28224");
        let monitors: Vec<String> = monitors.split(',').map(|monitor| monitor.trim().to_owned()).collect();
        assert_eq!(monitors.len(), NODES.len(), "SHIPPY_CLUSTER_MONITORS names one monitor per node");
        Self {
            project: Project::new(var("SHIPPY_CLUSTER_PROJECT", "shippy-cluster")),
            url: var("SHIPPY_CLUSTER_URL", "nats://127.0.0.1:24222,nats://127.0.0.1:24223,nats://127.0.0.1:24224"),
            monitors,
            rate: number("SHIPPY_FAULT_RATE", "100"),
            duration: Duration::from_secs(number("SHIPPY_FAULT_SECS", "40").into()),
        }
    }
}

/// The streams of the system: the event stream and its mirror for clients (a
/// worker starting opens both).
fn streams() -> Vec<String> {
    vec![EVENTS_STREAM.to_owned(), FEED_STREAM.to_owned()]
}

/// One sending of a create, in time since the load began.
#[derive(Debug, Clone)]
struct Attempt {
    sent: Duration,
    ok: bool,
}

/// What became of one create.
#[derive(Debug)]
struct Outcome {
    key: String,
    /// When it was due, since the load began.
    due: Duration,
    /// From due to acknowledged, if it was.
    latency: Option<Duration>,
    consignment: Option<Consignment>,
    attempts: Vec<Attempt>,
    /// The last error, if it was never acknowledged.
    error: Option<String>,
}

/// A fault, and when it began and ended (the node or worker back and caught up).
#[derive(Debug, Clone)]
struct Fault {
    name: String,
    from: Duration,
    to: Duration,
}

/// Failures of the attempts, by kind.
type Errors = Arc<Mutex<BTreeMap<String, u64>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs docker-compose.cluster.yml up: run .ci/cluster-faults.sh"]
async fn creates_survive_node_loss_partitions_and_worker_crashes() {
    let settings = Settings::from_env();
    // As the admin (NATS_NKEY, which .ci/cluster-faults.sh copies out of the stack):
    // the test reads the streams and each node's streams, besides creating.
    let config = NatsConfig { nkey: std::env::var_os("NATS_NKEY").map(Into::into), ..NatsConfig::new(&settings.url) };
    let client = shared::nats::connect_client(&config, "shippy-cluster-faults", roles::ADMIN, API_TIMEOUT)
        .await
        .expect("connect to the cluster");
    let mut js = jetstream::new(client.clone());
    js.set_timeout(API_TIMEOUT);

    settle(&client, &js).await;
    let added: CreatedVessel = request(
        &client,
        vessel::CREATE,
        encode(&NewVessel {
            id: BIG_VESSEL.to_owned(),
            capacity: 1_000_000,
            max_weight: 1_000_000 * WEIGHT,
            name: "Cluster Fault".to_owned(),
            available: true,
            owner_id: String::new(),
        })
        .into(),
        API_TIMEOUT,
    )
    .await
    .expect("add the big vessel");
    assert_eq!(added.vessel.id, BIG_VESSEL);

    let start = Instant::now();
    let errors = Errors::default();
    let faults_done = tokio::sync::watch::channel(None::<Duration>);
    let load = tokio::spawn(drive_load(
        client.clone(),
        settings.rate,
        settings.duration,
        start,
        faults_done.1,
        Arc::clone(&errors),
    ));
    let faults = inject_faults(&settings, &client, &js, start).await;
    faults_done.0.send_replace(Some(start.elapsed()));
    let outcomes = load.await.expect("the load ran");
    let load_time = outcomes.iter().map(|outcome| outcome.due).max().unwrap_or_default();

    let lost: Vec<&Outcome> = outcomes.iter().filter(|outcome| outcome.consignment.is_none()).collect();
    report(&settings, &outcomes, &faults, load_time, &errors.lock().unwrap());
    assert!(
        lost.is_empty(),
        "{} creates never acknowledged, such as {:?}",
        lost.len(),
        lost.iter().take(5).map(|outcome| (&outcome.key, &outcome.error)).collect::<Vec<_>>()
    );

    settle(&client, &js).await;
    two_nodes_lost(&settings, &client, &js).await;
    check_state(&settings, &client, &outcomes).await;
    check_workers(&settings, &client).await;
}

/// Creates at `rate` a second, on schedule whatever the replies do, for `duration`
/// and until the faults are over (and [`QUIET`] after); returns every create's outcome.
async fn drive_load(
    client: Client,
    rate: u32,
    duration: Duration,
    start: Instant,
    faults_done: tokio::sync::watch::Receiver<Option<Duration>>,
    errors: Errors,
) -> Vec<Outcome> {
    let mut ticks = tokio::time::interval_at(start, Duration::from_secs(1) / rate);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut creates = tokio::task::JoinSet::new();
    loop {
        let due = ticks.tick().await - start;
        let over = faults_done.borrow().is_some_and(|done| due >= (done + QUIET).max(duration));
        if over {
            break;
        }
        creates.spawn(create_until_acknowledged(client.clone(), start, due, Arc::clone(&errors)));
    }
    creates.join_all().await
}

/// Sends a create, and again with the same key while it fails for a passing
/// reason, until it is acknowledged or [`CREATE_DEADLINE`] has passed.
async fn create_until_acknowledged(client: Client, start: Instant, due: Duration, errors: Errors) -> Outcome {
    let key = uuid::Uuid::new_v4().to_string();
    let mut outcome =
        Outcome { key: key.clone(), due, latency: None, consignment: None, attempts: Vec::new(), error: None };
    loop {
        let sent = start.elapsed();
        let result = create_once(&client, &key).await;
        outcome.attempts.push(Attempt { sent, ok: result.is_ok() });
        match result {
            Ok(created) => {
                outcome.latency = Some(start.elapsed().saturating_sub(due));
                outcome.consignment = Some(created.consignment);
                return outcome;
            }
            Err(error) => {
                *errors.lock().unwrap().entry(error.kind()).or_default() += 1;
                let passing = error.is_passing();
                outcome.error = Some(error.to_string());
                if !passing || start.elapsed() > due + CREATE_DEADLINE {
                    return outcome;
                }
                let retry = u32::try_from(outcome.attempts.len() - 1).unwrap_or(u32::MAX);
                tokio::time::sleep(backoff(retry)).await;
            }
        }
    }
}

/// Sends the create of key `key` once: a consignment described by its key, one
/// container of [`WEIGHT`].
async fn create_once(client: &Client, key: &str) -> Result<CreatedConsignment, RequestError> {
    let body = encode(&NewConsignment {
        description: key.to_owned(),
        weight: WEIGHT,
        containers: vec![Container {
            id: String::new(),
            customer_id: "cluster".to_owned(),
            origin: "fault test".to_owned(),
            user_id: "cluster".to_owned(),
        }],
    });
    let mut headers = HeaderMap::new();
    headers.insert(consignment::IDEMPOTENCY_HEADER, key);
    request_with_headers(client, consignment::CREATE, Some(headers), body.into(), ATTEMPT_TIMEOUT).await
}

/// The faults of the module's documentation, one after another, each undone and
/// waited out before the next; returns when each was in force.
async fn inject_faults(settings: &Settings, client: &Client, js: &jetstream::Context, start: Instant) -> Vec<Fault> {
    let vessels = EVENTS_STREAM.to_owned();
    let faults = Faults { settings, client, js, start };
    tokio::time::sleep(QUIET).await;
    let mut done = vec![Fault { name: "no fault (the first seconds)".to_owned(), from: Duration::ZERO, to: QUIET }];

    let led = leader(js, &vessels, None).await;
    done.push(faults.lose_node(&led, Loss::Kill).await);
    tokio::time::sleep(QUIET).await;

    let led = leader(js, &vessels, None).await;
    let other = NODES.into_iter().find(|node| *node != led).expect("another node");
    done.push(faults.lose_node(other, Loss::Kill).await);
    tokio::time::sleep(QUIET).await;

    let led = leader(js, &vessels, None).await;
    done.push(faults.lose_node(&led, Loss::Partition).await);
    tokio::time::sleep(QUIET).await;

    done.push(faults.kill_workers().await);
    done
}

/// How a node is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loss {
    /// `kill -9`, then `docker start`.
    Kill,
    /// `docker network disconnect`, then `connect`.
    Partition,
}

/// What the faults act on, and when the load began.
struct Faults<'a> {
    settings: &'a Settings,
    client: &'a Client,
    js: &'a jetstream::Context,
    start: Instant,
}

impl Faults<'_> {
    /// Loses `node` for [`DOWN_FOR`] (and, if it led the event stream, until
    /// another node does), brings it back and waits for the cluster to settle.
    async fn lose_node(&self, node: &str, loss: Loss) -> Fault {
        let vessels = EVENTS_STREAM.to_owned();
        let led = leader(self.js, &vessels, None).await == node;
        let container = self.settings.project.container(node).await;
        let from = self.start.elapsed();
        let partition = match loss {
            Loss::Kill => {
                cluster::kill(&container).await;
                None
            }
            Loss::Partition => Some(self.settings.project.partition(node).await),
        };
        let role = if led {
            format!("leading {vessels}; {} took over", leader(self.js, &vessels, Some(node)).await)
        } else {
            format!("a follower of {vessels}")
        };
        tokio::time::sleep(DOWN_FOR.saturating_sub(self.start.elapsed().saturating_sub(from))).await;
        match partition {
            Some(partition) => partition.heal().await,
            None => cluster::start(&container).await,
        }
        settle(self.client, self.js).await;
        let what = match loss {
            Loss::Kill => format!("kill -9 {node}"),
            Loss::Partition => format!("partition {node} from the others"),
        };
        Fault { name: format!("{what} ({role})"), from, to: self.start.elapsed() }
    }

    /// Kills a worker of each kind, starts them again after [`DOWN_FOR`] and waits
    /// for the cluster to settle.
    async fn kill_workers(&self) -> Fault {
        let from = self.start.elapsed();
        let mut killed = Vec::new();
        for service in ["vessel-worker", "consignment-worker"] {
            let container = self.settings.project.containers(service).await.into_iter().next().expect("a worker");
            cluster::kill(&container).await;
            killed.push(container);
        }
        tokio::time::sleep(DOWN_FOR).await;
        for container in &killed {
            cluster::start(container).await;
        }
        settle(self.client, self.js).await;
        Fault { name: "kill -9 a vessel-worker and a consignment-worker".to_owned(), from, to: self.start.elapsed() }
    }
}

/// With two of the three nodes down (killed), after the load: a create fails at
/// once, with an error, and a read is still answered (by the node left); once both
/// are started again, creates succeed. Prints what the client got.
async fn two_nodes_lost(settings: &Settings, client: &Client, js: &jetstream::Context) {
    let mut down = Vec::new();
    for node in &NODES[1..] {
        let container = settings.project.container(node).await;
        cluster::kill(&container).await;
        down.push(container);
    }
    // The workers connected to the lost nodes are back on the one left.
    let back = async {
        while (instances(client, vessel::SERVICE).await, instances(client, consignment::SERVICE).await) != (2, 2) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(SETTLE, back).await.expect("every worker on the node left");
    let sent = Instant::now();
    let created = create_once(client, &uuid::Uuid::new_v4().to_string()).await;
    let took = sent.elapsed();
    let read: Result<shared::model::VesselList, _> = request(client, vessel::LIST, "".into(), API_TIMEOUT).await;
    println!(
        "two of three nodes lost: a create got {} after {:.0} ms; vessel.list {}",
        created.as_ref().map_or_else(ToString::to_string, |created| format!("created {}", created.consignment.id)),
        took.as_secs_f64() * 1000.0,
        read.as_ref().map_or_else(|error| format!("failed: {error}"), |_| "was answered".to_owned()),
    );
    assert!(created.is_err(), "no create succeeds without a majority");
    assert!(read.is_ok(), "a list is answered without a majority");
    for container in &down {
        cluster::start(container).await;
    }
    settle(client, js).await;
    let again = async {
        while create_once(client, &uuid::Uuid::new_v4().to_string()).await.is_err() {
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    };
    tokio::time::timeout(SETTLE, again).await.expect("creates succeed once the nodes are back");
}

/// The server leading `stream`, once there is one (other than `not`, if given).
async fn leader(js: &jetstream::Context, stream: &str, not: Option<&str>) -> String {
    let found = async {
        loop {
            if let Ok(info) = js.get_stream(stream).await.map(|stream| stream.cached_info().clone())
                && let Some(leader) = info.cluster.and_then(|cluster| cluster.leader)
                && Some(leader.as_str()) != not
            {
                return leader;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(SETTLE, found).await.unwrap_or_else(|_| panic!("{stream} has no leader"))
}

/// Waits until every stream has a leader and two followers, current and online,
/// and both services answer with two instances each.
async fn settle(client: &Client, js: &jetstream::Context) {
    let mut waiting_for = String::new();
    let settled = async {
        loop {
            waiting_for = match replicas_current(js).await {
                Err(stream) => format!("{stream}: a leader and two current followers"),
                Ok(()) => {
                    match (instances(client, vessel::SERVICE).await, instances(client, consignment::SERVICE).await) {
                        (2, 2) => return,
                        (vessels, consignments) => {
                            format!("two instances of each service, not {vessels} and {consignments}")
                        }
                    }
                }
            };
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let settled = tokio::time::timeout(SETTLE, settled).await;
    assert!(settled.is_ok(), "the cluster did not settle within {SETTLE:?}: waiting for {waiting_for}");
}

/// Whether every stream has a leader and two followers, current and online; if not,
/// the first stream that has not.
async fn replicas_current(js: &jetstream::Context) -> Result<(), String> {
    for name in streams() {
        let Ok(stream) = js.get_stream(&name).await else { return Err(name) };
        let Some(cluster) = &stream.cached_info().cluster else { return Err(name) };
        let current = cluster.replicas.iter().filter(|peer| peer.current && !peer.offline).count();
        if cluster.leader.is_none() || current != NODES.len() - 1 {
            return Err(name);
        }
    }
    Ok(())
}

/// Every stream's state, if every node holds the same state of every stream.
async fn nodes_agree(settings: &Settings) -> Option<BTreeMap<String, StreamState>> {
    let mut agreed: Option<BTreeMap<String, StreamState>> = None;
    for monitor in &settings.monitors {
        let held = cluster::node_streams(monitor, API_TIMEOUT).await.ok()?;
        let held: BTreeMap<String, StreamState> = streams()
            .into_iter()
            .map(|name| (held.get(&name).copied().unwrap_or_default(), name))
            .map(|(state, name)| (name, state))
            .collect();
        match &agreed {
            Some(agreed) if *agreed != held => return None,
            _ => agreed = Some(held),
        }
    }
    agreed
}

/// How many instances of `service` answer `$SRV.PING` within [`API_TIMEOUT`].
async fn instances(client: &Client, service: &str) -> usize {
    let inbox = client.new_inbox();
    let Ok(mut replies) = client.subscribe(inbox.clone()).await else { return 0 };
    if client.publish_with_reply(format!("$SRV.PING.{service}"), inbox, "".into()).await.is_err() {
        return 0;
    }
    let mut ids = HashSet::new();
    let deadline = tokio::time::sleep(API_TIMEOUT);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            Some(reply) = replies.next() => {
                let ping: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap_or_default();
                ids.insert(ping["id"].as_str().unwrap_or_default().to_owned());
                if ids.len() == 2 {
                    return ids.len();
                }
            }
            () = &mut deadline => return ids.len(),
        }
    }
}

/// Every acknowledged create is stored once, on every node; booked totals equal
/// the consignments and fit every vessel.
async fn check_state(settings: &Settings, client: &Client, outcomes: &[Outcome]) {
    let agreed = async {
        loop {
            if let Some(agreed) = nodes_agree(settings).await {
                return agreed;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let Ok(held) = tokio::time::timeout(SETTLE, agreed).await else {
        for monitor in &settings.monitors {
            eprintln!("{monitor}: {:?}", cluster::node_streams(monitor, API_TIMEOUT).await);
        }
        panic!("the nodes do not hold the same streams within {SETTLE:?}");
    };

    let (stored, fleet) = lists_that_agree(client).await;
    let mut by_id = HashMap::new();
    let mut by_key: HashMap<&str, u32> = HashMap::new();
    for consignment in &stored {
        assert!(by_id.insert(consignment.id.as_str(), consignment).is_none(), "{} listed twice", consignment.id);
        *by_key.entry(consignment.description.as_str()).or_default() += 1;
    }
    let missing: Vec<&Outcome> = outcomes
        .iter()
        .filter(|outcome| {
            outcome.consignment.as_ref().is_some_and(|acknowledged| !by_id.contains_key(acknowledged.id.as_str()))
        })
        .collect();
    if !missing.is_empty() {
        explain_missing(settings, client, &missing, &by_key).await;
    }
    for outcome in outcomes {
        let acknowledged = outcome.consignment.as_ref().expect("every create acknowledged");
        assert_eq!(
            by_id.get(acknowledged.id.as_str()),
            Some(&acknowledged),
            "acknowledged create {} stored",
            outcome.key
        );
        assert_eq!(by_key.get(outcome.key.as_str()), Some(&1), "create {} stored once", outcome.key);
    }
    let count = u64::try_from(stored.len()).unwrap();
    for listed in &fleet {
        let vessel = &listed.vessel;
        let (carried, containers, weight) = carried(&stored, &vessel.id);
        assert_eq!(u64::from(vessel.booked.containers), containers, "{} containers booked", vessel.id);
        assert_eq!(vessel.booked.weight, weight, "{} weight booked", vessel.id);
        assert!(
            vessel.booked.containers <= vessel.capacity && vessel.booked.weight <= vessel.max_weight,
            "{} overbooked",
            vessel.id
        );
        println!(
            "  {}: {} consignments, {}/{} containers, {}/{} kg",
            vessel.id, carried, vessel.booked.containers, vessel.capacity, vessel.booked.weight, vessel.max_weight
        );
    }
    println!("stored: {count} consignments, the same event stream on every node:");
    for (name, state) in &held {
        println!("  {name}: {} messages, last sequence {}", state.messages, state.last_seq);
    }
}

/// The consignments of `stored` on vessel `vessel_id`: how many, and their
/// containers and weight.
fn carried(stored: &[Consignment], vessel_id: &str) -> (usize, u64, u64) {
    stored.iter().filter(|consignment| consignment.vessel_id == vessel_id).fold(
        (0, 0, 0),
        |(n, containers, weight), consignment| {
            let more = u64::try_from(consignment.containers.len()).unwrap();
            (n + 1, containers + more, weight + consignment.weight)
        },
    )
}

/// The consignments and the fleet, listed until every vessel's bookings equal the
/// consignments listed on it, bounded by SETTLE (then the last reading, for the
/// caller's assertions to say what is off). A page answered 503 (a worker still
/// following the stream again after the faults: "try again") is asked again. Lists
/// show every write acknowledged before them (README, "How stale each read can be"),
/// so one reading should do; yet two runs' first reading found a vessel booked a
/// container above the consignments listed on it: the consignment list had taken a
/// replica's answer lacking the newest event as whole (README, "Cluster"). Each
/// reading that does not agree is printed, the first (and the last) with what the
/// stream itself books ([`explain_disagreement`]).
async fn lists_that_agree(client: &Client) -> (Vec<Consignment>, Vec<shared::model::ListedVessel>) {
    let booked_as_stored = |stored: &[Consignment], fleet: &[shared::model::ListedVessel]| {
        fleet.iter().all(|listed| {
            let (_, containers, weight) = carried(stored, &listed.vessel.id);
            u64::from(listed.vessel.booked.containers) == containers && listed.vessel.booked.weight == weight
        })
    };
    let read = || async {
        let stored = testkit::list_all(client, ListConsignments::default(), SETTLE).await;
        (stored, testkit::list_vessels(client, SETTLE).await)
    };
    let caught_up = async {
        for reading in 1.. {
            let (stored, fleet) = read().await;
            if booked_as_stored(&stored, &fleet) {
                return (stored, fleet);
            }
            let booked: Vec<_> = fleet.iter().map(|listed| (&listed.vessel.id, listed.vessel.booked)).collect();
            println!("reading {reading}: {} consignments listed, bookings {booked:?} do not agree", stored.len());
            if reading == 1 {
                explain_disagreement(client, &stored, &fleet).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await; // polling the projections' state
        }
        unreachable!("read until they agree")
    };
    if let Ok(read) = tokio::time::timeout(SETTLE, caught_up).await {
        return read;
    }
    // Not within SETTLE: the caller's assertions say what is off.
    let (stored, fleet) = read().await;
    explain_disagreement(client, &stored, &fleet).await;
    (stored, fleet)
}

/// Every created event of the stream, read from the first by a consumer of the
/// test's own (as far as it could: an error is printed).
async fn created_events(client: &Client) -> Vec<shared::store::StoredMessage> {
    let mut events = Vec::new();
    loop {
        let from = events.last().map_or(1, |message: &shared::store::StoredMessage| message.sequence + 1);
        let request = shared::store::BatchRequest {
            from,
            subject: consignment::CREATED_EVENTS.to_owned(),
            batch: shared::store::MAX_BATCH,
            max_bytes: None,
            min_last_seq: None,
        };
        match shared::store::direct_batch(client, EVENTS_STREAM, &request, API_TIMEOUT).await {
            Ok(messages) if !messages.is_empty() => events.extend(messages),
            Ok(_) => return events,
            Err(error) => {
                eprintln!("cannot read the event stream from {from}: {error}");
                return events;
            }
        }
    }
}

/// For a reading whose lists disagree: folds the created events into a ledger of
/// the test's (`shared::ledger`, as both workers fold them) and prints, for each
/// vessel whose listed bookings differ from the consignments listed on it or from
/// the stream, what the stream books on it, and each consignment the stream books
/// more than once; so that the reading tells which worker's view is off, and
/// whether the stream is.
async fn explain_disagreement(client: &Client, stored: &[Consignment], fleet: &[shared::model::ListedVessel]) {
    // Every event of the run is within the window: their times are not needed.
    let window = Duration::from_secs(shared::config::DEFAULT_IDEMPOTENCY_WINDOW_SECS);
    let mut ledger = shared::ledger::Ledger::new(window);
    let mut booked_at: HashMap<String, Vec<u64>> = HashMap::new();
    for message in &created_events(client).await {
        let Some(vessel_id) = consignment::created_vessel(&message.subject) else { continue };
        let Ok(event) = serde_json::from_slice::<shared::ledger::EventView>(&message.payload) else {
            ledger.touch(message.sequence, vessel_id);
            continue;
        };
        let counted = ledger.apply(message.sequence, 0, vessel_id, &event.consignments);
        for (entry, counts) in event.consignments.iter().zip(counted) {
            if counts {
                booked_at.entry(entry.consignment.id.clone()).or_default().push(message.sequence);
            }
        }
    }
    println!("  the stream, folded by the test up to sequence {}:", ledger.position());
    for listed in fleet {
        let (_, containers, _) = carried(stored, &listed.vessel.id);
        let folded = ledger.vessel(&listed.vessel.id);
        if u64::from(listed.vessel.booked.containers) != containers || listed.vessel.booked != folded.booked {
            println!(
                "  {}: listed booked {:?}, {containers} containers in the consignments listed on it; the stream books {:?} (last event {})",
                listed.vessel.id, listed.vessel.booked, folded.booked, folded.last_sequence
            );
        }
    }
    for (id, sequences) in booked_at.iter().filter(|(_, sequences)| sequences.len() > 1) {
        println!("  consignment {id} is booked by the events at {sequences:?}");
    }
}

/// Says, for acknowledged creates that no list shows, what the event stream holds
/// of their keys (read from its first event by a consumer of the test's own) and
/// what a get of each answers, so that a failure tells a lost write from a read
/// that misses a stored one.
async fn explain_missing(
    settings: &Settings,
    client: &Client,
    missing: &[&Outcome],
    listed_by_key: &HashMap<&str, u32>,
) {
    let mut held: HashMap<String, Vec<String>> = HashMap::new();
    let mut sequences = std::collections::BTreeSet::new();
    for message in &created_events(client).await {
        let Ok(created) = serde_json::from_slice::<shared::model::ConsignmentsCreated>(&message.payload) else {
            continue;
        };
        for (entry, created) in created.consignments.iter().enumerate() {
            let key = &created.consignment.description;
            if missing.iter().any(|outcome| &outcome.key == key) {
                let place =
                    format!("{} at {}.{entry} on {}", created.consignment.id, message.sequence, message.subject);
                held.entry(key.clone()).or_default().push(place);
                sequences.insert(message.sequence);
            }
        }
    }
    // What each node holds at those sequences: a direct get goes to the replica of
    // the server the client is connected to first.
    for url in settings.url.split(',') {
        let config = NatsConfig { nkey: std::env::var_os("NATS_NKEY").map(Into::into), ..NatsConfig::new(url) };
        let Ok(node) = shared::nats::connect_client(&config, "shippy-cluster-faults", roles::ADMIN, API_TIMEOUT).await
        else {
            eprintln!("{url}: cannot connect");
            continue;
        };
        for &sequence in sequences.iter().take(8) {
            let request = shared::store::BatchRequest {
                from: sequence,
                subject: ">".to_owned(),
                batch: 1,
                max_bytes: None,
                min_last_seq: None,
            };
            let held = shared::store::direct_batch(&node, EVENTS_STREAM, &request, API_TIMEOUT).await.map(|messages| {
                messages
                    .iter()
                    .map(|message| {
                        let text = String::from_utf8_lossy(&message.payload);
                        format!("{} {} {}", message.sequence, message.subject, &text[..text.len().min(120)])
                    })
                    .collect::<Vec<_>>()
            });
            eprintln!("{url} ({}): at {sequence}: {held:?}", node.server_info().server_name);
        }
    }
    for outcome in missing.iter().take(5) {
        let acknowledged = outcome.consignment.as_ref().map(|consignment| consignment.id.clone()).unwrap_or_default();
        let mut gets = Vec::new();
        for _ in 0..4 {
            let get = shared::model::GetConsignment { id: acknowledged.clone() };
            let got: Result<shared::model::ConsignmentReply, _> =
                request(client, consignment::GET, encode(&get).into(), API_TIMEOUT).await;
            gets.push(got.map_or_else(|error| error.to_string(), |reply| reply.consignment.id));
        }
        eprintln!(
            "acknowledged {acknowledged} for key {} ({} attempts) is not listed; the list holds the key {} times; \
             the stream holds, for the key: {:?}; gets answered {gets:?}",
            outcome.key,
            outcome.attempts.len(),
            listed_by_key.get(outcome.key.as_str()).copied().unwrap_or(0),
            held.get(&outcome.key),
        );
    }
}

/// Every container runs, none restarted by its policy, both services answer with two instances.
async fn check_workers(settings: &Settings, client: &Client) {
    for state in settings.project.states().await {
        println!("  {}: running {}, restarts {}", state.name, state.running, state.restart_count);
        if state.service == AUTH_SERVICE {
            // A one-shot: it made the keys and exited.
            assert!(!state.running && state.exit_code == 0, "{state:?}");
        } else {
            assert!(state.running && state.restart_count == 0, "{state:?}");
        }
    }
    assert_eq!(instances(client, vessel::SERVICE).await, 2, "two vessel-workers answer");
    assert_eq!(instances(client, consignment::SERVICE).await, 2, "two consignment-workers answer");
}

/// Prints the figures: the load, and for each fault the failed attempts, the
/// longest window in which creates failed and the p99 latency of the creates due
/// while it was in force.
fn report(
    settings: &Settings,
    outcomes: &[Outcome],
    faults: &[Fault],
    load_time: Duration,
    errors: &BTreeMap<String, u64>,
) {
    let retried = outcomes.iter().filter(|outcome| outcome.attempts.len() > 1).count();
    let acknowledged = outcomes.iter().filter(|outcome| outcome.consignment.is_some()).count();
    println!("\n=== cluster fault test");
    println!(
        "load: {} creates/s for {:.1} s: {} creates, {acknowledged} acknowledged, {retried} ({:.2} %) sent more than once",
        settings.rate,
        load_time.as_secs_f64(),
        outcomes.len(),
        percent(retried, outcomes.len())
    );
    let windows = failure_windows(outcomes);
    let all = histogram(outcomes.iter());
    println!(
        "latency (due → acknowledged), all creates: p50 {} p99 {} max {}",
        ms(all.value_at_quantile(0.5)),
        ms(all.value_at_quantile(0.99)),
        ms(all.max())
    );
    for fault in faults {
        let during: Vec<&Outcome> =
            outcomes.iter().filter(|outcome| outcome.due >= fault.from && outcome.due <= fault.to).collect();
        let latency = histogram(during.iter().copied());
        let retried = during.iter().filter(|outcome| outcome.attempts.len() > 1).count();
        let failed: usize =
            during.iter().map(|outcome| outcome.attempts.iter().filter(|attempt| !attempt.ok).count()).sum();
        let outage = windows
            .iter()
            .filter(|(from, _)| *from >= fault.from && *from <= fault.to)
            .map(|(from, to)| to.saturating_sub(*from))
            .max()
            .unwrap_or_default();
        // From a create's first failed attempt to its acknowledgement.
        let kept_failing = during
            .iter()
            .filter(|outcome| outcome.attempts.len() > 1)
            .filter_map(|outcome| Some((outcome.due + outcome.latency?).saturating_sub(outcome.attempts.first()?.sent)))
            .max()
            .unwrap_or_default();
        println!(
            "{}\n  at {:.1}–{:.1} s: {} creates due, {retried} retried ({:.1} %), {failed} failed attempts; \
             no create succeeded for {:.2} s at most; a create kept failing for {:.2} s at most; p99 {} (max {})",
            fault.name,
            fault.from.as_secs_f64(),
            fault.to.as_secs_f64(),
            during.len(),
            percent(retried, during.len()),
            outage.as_secs_f64(),
            kept_failing.as_secs_f64(),
            ms(latency.value_at_quantile(0.99)),
            ms(latency.max()),
        );
    }
    let longest = windows.iter().map(|(from, to)| to.saturating_sub(*from)).max().unwrap_or_default();
    println!("longest window in which no create succeeded: {:.2} s", longest.as_secs_f64());
    println!("failed attempts by kind:");
    for (kind, count) in errors {
        println!("  {count:>6}  {kind}");
    }
}

/// The windows in which no create succeeded: from the sending of an attempt that
/// failed to the sending of the next attempt (of any create) that succeeded.
fn failure_windows(outcomes: &[Outcome]) -> Vec<(Duration, Duration)> {
    let mut attempts: Vec<&Attempt> = outcomes.iter().flat_map(|outcome| &outcome.attempts).collect();
    attempts.sort_by_key(|attempt| attempt.sent);
    let mut windows = Vec::new();
    let mut failing_since = None;
    for attempt in attempts {
        match (attempt.ok, failing_since) {
            (false, None) => failing_since = Some(attempt.sent),
            (true, Some(since)) => {
                windows.push((since, attempt.sent));
                failing_since = None;
            }
            _ => {}
        }
    }
    windows
}

/// Latencies of the acknowledged creates among `outcomes`, in microseconds.
fn histogram<'a>(outcomes: impl Iterator<Item = &'a Outcome>) -> Histogram<u64> {
    let mut histogram = Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
    for latency in outcomes.filter_map(|outcome| outcome.latency) {
        histogram.saturating_record(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1));
    }
    histogram
}

fn ms(micros: u64) -> String {
    format!("{:.1} ms", Duration::from_micros(micros).as_secs_f64() * 1000.0)
}

fn percent(part: usize, whole: usize) -> f64 {
    let (part, whole) = (u32::try_from(part).unwrap_or(u32::MAX), u32::try_from(whole).unwrap_or(u32::MAX));
    if whole == 0 { 0.0 } else { f64::from(part) * 100.0 / f64::from(whole) }
}
