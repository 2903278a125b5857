//! The permission matrix of `nats.conf` (README, "Security"), against a real
//! nats-server running the project's own `nats.conf`, with keys made by
//! `shippy auth init`: each allowed action works, each denied one is refused by the
//! server with a permissions violation.

use std::{path::PathBuf, time::Duration};

use async_nats::{
    Client, Event, HeaderMap,
    jetstream::{self, consumer::push, stream::ConsumerErrorKind},
};
use futures::StreamExt as _;
use shared::{
    client::request,
    model::{ConsignmentList, ConsignmentReply, ConsignmentsCreated, CreatedConsignment, GetConsignment, VesselList},
    nats::NatsConfig,
    roles::{self, Role},
    store,
    subjects::{consignment, vessel},
};
use testkit::{GUARD, Nats};
use tokio::sync::mpsc;

use crate::common::{GATEWAY_TOKEN, Gateway};

const TIMEOUT: Duration = Duration::from_secs(10);
use testkit::SEED_CONSIGNMENT as SEED;

/// Keys for every role, as `shippy auth init` writes them, and a server that knows them.
struct Deployment {
    keys: tempfile::TempDir,
    nats: Nats,
}

impl Deployment {
    async fn start() -> Self {
        let keys = Self::keys().await;
        let users = std::fs::read_to_string(keys.path().join("server").join("users.conf")).expect("users.conf");
        let nats = Nats::start_with_project_config(&users).await;
        Self { keys, nats }
    }

    /// [`Deployment::start`] with TLS on (`nats-tls.conf`), and the directory of the
    /// CA (`ca.pem`) and the server's certificate, as `scripts/tls-certs.sh` makes them.
    async fn start_tls() -> (Self, tempfile::TempDir) {
        let keys = Self::keys().await;
        let tls = tempfile::tempdir().expect("a scratch directory");
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/tls-certs.sh");
        let status = tokio::process::Command::new(script)
            .arg(tls.path())
            .stdout(std::process::Stdio::null())
            .status()
            .await
            .expect("run scripts/tls-certs.sh");
        assert!(status.success(), "scripts/tls-certs.sh failed");
        let read = |name: &str| std::fs::read_to_string(tls.path().join(name)).expect("a TLS file");
        let users = std::fs::read_to_string(keys.path().join("server").join("users.conf")).expect("users.conf");
        let nats = Nats::start_with_project_tls(&users, &read("server.pem"), &read("server-key.pem")).await;
        (Self { keys, nats }, tls)
    }

    /// Keys for every role, made by `shippy auth init`.
    async fn keys() -> tempfile::TempDir {
        let keys = tempfile::tempdir().expect("a scratch directory");
        let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_shippy"))
            .args(["auth", "init", "-o", "json"])
            .arg(keys.path())
            .stdout(std::process::Stdio::null())
            .status()
            .await
            .expect("run shippy auth init");
        assert!(status.success(), "shippy auth init failed");
        keys
    }

    /// Runs `shippy args` from the repository root (where consignment.json is)
    /// against this server with `env` (and no other NATS setting): its exit status,
    /// its one line on stderr, and how long it took, after checking it failed.
    async fn shippy(&self, env: &[(&str, &std::ffi::OsStr)], args: &[&str]) -> (Option<i32>, String, Duration) {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_shippy"));
        for variable in ["NATS_NKEY", "NATS_CREDS", "NATS_USER", "NATS_PASSWORD", "NATS_CA", "NATS_INBOX_PREFIX"] {
            command.env_remove(variable);
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        command.env("NATS_URL", self.nats.url()).envs(env.iter().copied()).args(args).current_dir(root);
        let started = std::time::Instant::now();
        let output = command.output().await.expect("run shippy");
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&output.stderr).trim_end().to_owned();
        assert!(!output.status.success(), "shippy {args:?} succeeded");
        (output.status.code(), stderr, took)
    }

    fn config(&self, role: Role) -> NatsConfig {
        NatsConfig { nkey: Some(self.seed(role)), ..NatsConfig::new(self.nats.url()) }
    }

    fn seed(&self, role: Role) -> PathBuf {
        self.keys.path().join(role.name).join("nkey")
    }

    /// A connection as `role`, and the errors the server sends it.
    async fn connect(&self, role: Role) -> Connection {
        let (errors, received) = mpsc::unbounded_channel();
        let options = self.config(role).options(role.name, role).await.expect("connect options");
        let client = options
            .event_callback(move |event| {
                let errors = errors.clone();
                async move {
                    if let Event::ServerError(error) = event {
                        let _ = errors.send(error.to_string());
                    }
                }
            })
            .connect(self.nats.url())
            .await
            .unwrap_or_else(|error| panic!("connect as {}: {error}", role.name));
        Connection { role, client, errors: received }
    }

    /// Both workers, each with its own key, serving until dropped.
    async fn workers(&self) -> Vec<testkit::Running<Result<(), shared::service::Error>>> {
        let mut vessels = vessel_worker::Config::new(self.nats.url());
        vessels.worker.nats = self.config(roles::VESSEL_WORKER);
        let mut consignments = consignment_worker::Config::new(self.nats.url());
        consignments.worker.nats = self.config(roles::CONSIGNMENT_WORKER);
        vec![
            testkit::serve(vessel_worker::start(&vessels).await.expect("start vessel-worker")),
            testkit::serve(consignment_worker::start(&consignments).await.expect("start consignment-worker")),
        ]
    }
}

struct Connection {
    role: Role,
    client: Client,
    errors: mpsc::UnboundedReceiver<String>,
}

impl Connection {
    /// Waits for the server's next error to this connection and checks it is the
    /// permissions violation `expected` (as the server words it, after "for").
    async fn refused(&mut self, expected: &str) {
        let error = tokio::time::timeout(GUARD, self.errors.recv())
            .await
            .unwrap_or_else(|_| panic!("{}: no error from the server for {expected}", self.role.name))
            .expect("the connection's events");
        let wanted = format!("Permissions Violation for {expected}");
        assert!(error.contains(&wanted), "{}: expected {wanted:?}, got {error:?}", self.role.name);
    }

    async fn subscribe_refused(&mut self, subject: &str, queue: Option<&str>) {
        if let Some(queue) = queue {
            self.client.queue_subscribe(subject.to_owned(), queue.to_owned()).await.expect("send SUB");
            self.refused(&format!("Subscription to \"{subject}\" using queue \"{queue}\"")).await;
        } else {
            self.client.subscribe(subject.to_owned()).await.expect("send SUB");
            self.refused(&format!("Subscription to \"{subject}\"")).await;
        }
    }

    async fn publish_refused(&mut self, subject: &str) {
        self.client.publish(subject.to_owned(), "{}".into()).await.expect("send PUB");
        self.refused(&format!("Publish to \"{subject}\"")).await;
    }
}

/// Every message in the event stream: vessels added and created events.
async fn events_stored(admin: &Client) -> u64 {
    let js = jetstream::new(admin.clone());
    js.get_stream(store::EVENTS_STREAM).await.expect("events stream").info().await.expect("stream info").state.messages
}

/// Every `$SRV.PING` reply that arrives for `expected` services, as the monitor asks.
async fn ping(monitor: &Client, expected: usize) -> Vec<String> {
    let inbox = monitor.new_inbox();
    let mut replies = monitor.subscribe(inbox.clone()).await.expect("subscribe");
    monitor.publish_with_reply("$SRV.PING", inbox, "".into()).await.expect("ping");
    let mut names = Vec::new();
    while names.len() < expected {
        let reply = tokio::time::timeout(GUARD, replies.next()).await.expect("a PING reply").expect("open");
        let pong: serde_json::Value = serde_json::from_slice(&reply.payload).expect("JSON");
        names.push(pong["name"].as_str().expect("a name").to_owned());
    }
    names.sort();
    names
}

#[tokio::test]
async fn each_role_can_do_its_job() {
    let deployment = Deployment::start().await;
    let _workers = deployment.workers().await;
    let client = deployment.connect(roles::CLIENT).await.client;

    // The client creates (with a key), reads and lists, and hears the event live.
    let mut live = client.subscribe(consignment::CREATED_EVENTS).await.expect("client may listen to events");
    shared::nats::round_trip(&client).await.expect("round trip on the client's inbox");
    let mut headers = HeaderMap::new();
    headers.insert(consignment::IDEMPOTENCY_HEADER, "order-1");
    let keyed_create = || {
        shared::client::request_with_headers::<CreatedConsignment>(
            &client,
            consignment::CREATE,
            Some(headers.clone()),
            SEED.into(),
            TIMEOUT,
        )
    };
    let created = keyed_create().await.expect("create");
    assert_eq!(created.consignment.vessel_id, "vessel001");
    // A repeat finds its key taken and reads the first create's answer back from
    // its event (a direct get), and a vessel id taken is refused by the server.
    assert_eq!(keyed_create().await.expect("the same create again").consignment, created.consignment);
    let vessel001 =
        shared::codec::encode(&serde_json::json!({"id": "vessel001", "name": "again", "capacity": 1, "max_weight": 1}));
    let taken = request::<serde_json::Value>(&client, vessel::CREATE, vessel001.into(), TIMEOUT).await;
    assert_eq!(testkit::service_error(taken).code, shared::ErrorCode::Conflict);
    let id = created.consignment.id.clone();
    let got: ConsignmentReply =
        request(&client, consignment::GET, shared::codec::encode(&GetConsignment { id: id.clone() }).into(), TIMEOUT)
            .await
            .expect("get");
    assert_eq!(got.consignment, created.consignment);
    let listed: ConsignmentList = request(&client, consignment::LIST, "".into(), TIMEOUT).await.expect("list");
    assert_eq!(listed.consignments, vec![created.consignment.clone()]);
    let fleet: VesselList = request(&client, vessel::LIST, "".into(), TIMEOUT).await.expect("vessels");
    assert_eq!(fleet.vessels[0].vessel.booked.containers, 3);
    let heard: ConsignmentsCreated =
        serde_json::from_slice(&tokio::time::timeout(GUARD, live.next()).await.unwrap().unwrap().payload).unwrap();
    assert_eq!(heard.consignments[0].consignment.id, id);

    // ... and replays the durable events, as `shippy watch --all` does.
    let watched = tokio::process::Command::new(env!("CARGO_BIN_EXE_shippy"))
        .args(["watch", "--all", "--count", "1", "-o", "json"])
        .env("NATS_URL", deployment.nats.url())
        .env("NATS_NKEY", deployment.seed(roles::CLIENT))
        .output()
        .await
        .expect("run shippy watch");
    assert!(watched.status.success(), "shippy watch: {}", String::from_utf8_lossy(&watched.stderr));
    assert!(String::from_utf8_lossy(&watched.stdout).contains(&id));

    // The gateway asks the endpoints on behalf of its HTTP callers.
    let gateway = deployment.connect(roles::GATEWAY).await.client;
    let got: ConsignmentReply =
        request(&gateway, consignment::GET, shared::codec::encode(&GetConsignment { id: id.clone() }).into(), TIMEOUT)
            .await
            .expect("the gateway gets a consignment");
    assert_eq!(got.consignment, created.consignment);
    let fleet: VesselList =
        request(&gateway, vessel::LIST, "".into(), TIMEOUT).await.expect("the gateway lists vessels");
    assert!(!fleet.vessels.is_empty());
    // ... and, for /v1/events, reads the events back and follows them (gateway_events).
    gateway_events(&deployment, &id).await;

    // The monitor sees both services, as `nats micro ls` does.
    let monitor = deployment.connect(roles::MONITOR).await.client;
    assert_eq!(ping(&monitor, 2).await, ["consignment", "vessel"]);

    // The admin alone may delete the stream: two vessels added, two creates (the
    // second while the gateway followed).
    let admin = deployment.connect(roles::ADMIN).await.client;
    assert_eq!(events_stored(&admin).await, 4);
    jetstream::new(admin).delete_stream(store::EVENTS_STREAM).await.expect("the admin deletes the stream");
}

/// A gateway logged in as its role gathers `$SRV.STATS` (`GET /v1/services`) and
/// serves `GET /v1/events`: the stored create read
/// back from `Last-Event-ID: 0` (direct gets on `shippy-feed`), then one live (its
/// ordered consumer on `shippy-feed`).
async fn gateway_events(deployment: &Deployment, stored_id: &str) {
    let mut config = gateway::Config::new(deployment.nats.url());
    config.nats = deployment.config(roles::GATEWAY);
    let gateway = Gateway::start(config).await;
    let base = &gateway.base;
    // The dashboard's instances, from $SRV.STATS.
    let services: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/v1/services"))
        .bearer_auth(GATEWAY_TOKEN)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("GET /v1/services")
        .json()
        .await
        .unwrap();
    assert_eq!(services["services"].as_array().map(Vec::len), Some(2), "{services}");
    let response = reqwest::Client::new()
        .get(format!("{base}/v1/events"))
        .bearer_auth(GATEWAY_TOKEN)
        .header("Last-Event-ID", "0")
        .send()
        .await
        .expect("GET /v1/events");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let mut read_until = async |needle: &str| {
        while !text.contains(needle) {
            let chunk = tokio::time::timeout(GUARD, body.next()).await.expect("an event in time");
            text.push_str(&String::from_utf8_lossy(&chunk.expect("open").expect("a chunk")));
        }
    };
    read_until(stored_id).await;
    let client = deployment.connect(roles::CLIENT).await.client;
    let live: CreatedConsignment = request(&client, consignment::CREATE, SEED.into(), TIMEOUT).await.expect("create");
    read_until(&live.consignment.id).await;
    gateway.stop().await;
}

#[tokio::test]
async fn everything_else_is_refused_by_the_server() {
    let deployment = Deployment::start().await;
    let _workers = deployment.workers().await;
    let admin = deployment.connect(roles::ADMIN).await.client;
    let mut client = deployment.connect(roles::CLIENT).await;
    let mut consignments = deployment.connect(roles::CONSIGNMENT_WORKER).await;
    let mut vessels = deployment.connect(roles::VESSEL_WORKER).await;
    let mut monitor = deployment.connect(roles::MONITOR).await;
    let mut gateway = deployment.connect(roles::GATEWAY).await;

    // Answering in a service's place, or reading others' replies.
    client.subscribe_refused(vessel::FIND_AVAILABLE, Some(vessel::QUEUE_GROUP)).await;
    client.subscribe_refused(vessel::FIND_AVAILABLE, None).await;
    client.subscribe_refused("_INBOX.>", None).await;
    client.subscribe_refused("_INBOX_consignment-worker.>", None).await;
    client.subscribe_refused("_INBOX_monitor.>", None).await;
    client.subscribe_refused(">", None).await;
    consignments.subscribe_refused(vessel::FIND_AVAILABLE, Some(vessel::QUEUE_GROUP)).await;
    consignments.subscribe_refused("vessel.>", None).await;
    consignments.subscribe_refused("_INBOX_client.>", None).await;
    vessels.subscribe_refused(consignment::CREATE, Some(consignment::QUEUE_GROUP)).await;
    vessels.subscribe_refused(vessel::FIND_AVAILABLE, Some("impostors")).await;
    monitor.subscribe_refused(consignment::CREATED_EVENTS, None).await;
    gateway.subscribe_refused(consignment::CREATE, Some(consignment::QUEUE_GROUP)).await;
    gateway.subscribe_refused("_INBOX_client.>", None).await;
    gateway.subscribe_refused(consignment::CREATED_EVENTS, None).await;

    // Forging events, or writing what belongs to another role.
    let stored = events_stored(&admin).await;
    client.publish_refused(&consignment::created_event("vessel001")).await;
    vessels.publish_refused(&consignment::created_event("vessel001")).await;
    monitor.publish_refused(vessel::FIND_AVAILABLE).await;
    gateway.publish_refused(&consignment::created_event("vessel001")).await;
    gateway.publish_refused("$SRV.PING").await;
    gateway.publish_refused("$JS.API.INFO").await;
    // It follows the clients' mirror only, never the workers' stream, and makes no durable.
    gateway.publish_refused(&format!("$JS.API.CONSUMER.CREATE.{}", store::EVENTS_STREAM)).await;
    gateway.publish_refused(&format!("$JS.API.DIRECT.GET.{}", store::EVENTS_STREAM)).await;
    gateway.publish_refused(&format!("$JS.API.CONSUMER.CREATE.{}.mine", store::FEED_STREAM)).await;
    gateway.publish_refused(&format!("$JS.API.CONSUMER.DURABLE.CREATE.{}.mine", store::FEED_STREAM)).await;
    gateway.publish_refused(&format!("$JS.API.CONSUMER.DELETE.{}.x", store::FEED_STREAM)).await;
    client.publish_refused(&vessel::added_event("vessel009")).await;
    consignments.publish_refused(&vessel::added_event("vessel009")).await;
    assert_eq!(events_stored(&admin).await, stored, "a refused publish was stored");

    // Deleting, purging or reconfiguring the stream, or deleting its events: the admin's alone.
    for worker in [&mut vessels, &mut consignments] {
        for verb in ["DELETE", "PURGE", "UPDATE", "MSG.DELETE"] {
            worker.publish_refused(&format!("$JS.API.STREAM.{verb}.{}", store::EVENTS_STREAM)).await;
        }
    }
    client.publish_refused(&format!("$JS.API.STREAM.DELETE.{}", store::EVENTS_STREAM)).await;
    let js = jetstream::new(admin.clone());
    js.get_stream(store::EVENTS_STREAM).await.expect("the event stream is still there");
    assert_eq!(events_stored(&admin).await, stored);
}

#[tokio::test]
async fn only_listed_keys_may_connect() {
    let deployment = Deployment::start().await;
    let anonymous = async_nats::ConnectOptions::new().connect(deployment.nats.url()).await;
    assert!(anonymous.is_err(), "an anonymous connection was accepted");

    let stranger = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(stranger.path(), nkeys::KeyPair::new_user().seed().unwrap()).unwrap();
    let config = NatsConfig { nkey: Some(stranger.path().to_owned()), ..NatsConfig::new(deployment.nats.url()) };
    let unknown = shared::nats::connect_client(&config, "stranger", roles::CLIENT, TIMEOUT).await;
    let error = unknown.expect_err("an unknown key was accepted").to_string();
    assert!(error.to_lowercase().contains("authorization"), "{error}");
}

/// The consumer named in a JetStream advisory.
async fn advised_consumer(advisories: &mut async_nats::Subscriber) -> String {
    let advisory = tokio::time::timeout(GUARD, advisories.next()).await.expect("an advisory").expect("subscribed");
    let advisory: serde_json::Value = serde_json::from_slice(&advisory.payload).expect("advisory JSON");
    advisory["consumer"].as_str().expect("a consumer name").to_owned()
}

/// `shippy watch` as the client: new events (`watch`) and every event (`watch --all`)
/// still come through, and the consumer a watch made is deleted by the server within
/// the stream's inactive threshold of the watch's end.
#[tokio::test]
async fn a_watch_works_and_its_consumer_goes_with_it() {
    let deployment = Deployment::start().await;
    let _workers = deployment.workers().await;
    let admin = deployment.connect(roles::ADMIN).await.client;
    let client = deployment.connect(roles::CLIENT).await.client;
    let stream = store::FEED_STREAM;
    let mut created = admin.subscribe(format!("$JS.EVENT.ADVISORY.CONSUMER.CREATED.{stream}.>")).await.unwrap();
    let mut deleted = admin.subscribe(format!("$JS.EVENT.ADVISORY.CONSUMER.DELETED.{stream}.>")).await.unwrap();
    shared::nats::round_trip(&admin).await.unwrap();

    let watch = tokio::process::Command::new(env!("CARGO_BIN_EXE_shippy"))
        .args(["watch", "--count", "1", "-o", "json"])
        .env("NATS_URL", deployment.nats.url())
        .env("NATS_NKEY", deployment.seed(roles::CLIENT))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run shippy watch");
    let consumer = advised_consumer(&mut created).await;
    let created: CreatedConsignment = request(&client, consignment::CREATE, SEED.into(), TIMEOUT).await.unwrap();
    let watched = tokio::time::timeout(GUARD, watch.wait_with_output()).await.expect("watch ends").unwrap();
    let ended = std::time::Instant::now();
    assert!(watched.status.success(), "shippy watch: {}", String::from_utf8_lossy(&watched.stderr));
    assert!(String::from_utf8_lossy(&watched.stdout).contains(&created.consignment.id), "the new event is watched");

    // Its consumer is gone within the threshold (push consumers: exactly it, after the last subscriber).
    assert_eq!(advised_consumer(&mut deleted).await, consumer);
    let after = ended.elapsed();
    assert!(after <= store::CONSUMER_INACTIVE_LIMIT + Duration::from_secs(2), "deleted {after:?} after the watch");
    let mut events = jetstream::new(admin.clone()).get_stream(stream).await.unwrap();
    assert_eq!(events.info().await.unwrap().state.consumer_count, 0, "nothing left behind");

    // `watch --all` replays the stored event.
    let replayed = tokio::process::Command::new(env!("CARGO_BIN_EXE_shippy"))
        .args(["watch", "--all", "--count", "1", "-o", "json"])
        .env("NATS_URL", deployment.nats.url())
        .env("NATS_NKEY", deployment.seed(roles::CLIENT))
        .output()
        .await
        .expect("run shippy watch --all");
    assert!(replayed.status.success(), "shippy watch --all: {}", String::from_utf8_lossy(&replayed.stderr));
    assert!(String::from_utf8_lossy(&replayed.stdout).contains(&created.consignment.id));
}

/// What the client may create on the feed is bounded: ephemeral consumers only, none
/// living past the stream's inactive limit, at most `MAX_CONSUMERS` at once; the next
/// is refused with the server's error, which `shippy watch` reports. None of it
/// touches the event stream the workers follow: a full feed keeps no worker from
/// starting, and the client may create no consumer there.
#[tokio::test]
async fn the_client_cannot_pile_up_consumers() {
    let deployment = Deployment::start().await;
    let _workers = deployment.workers().await;
    let mut client = deployment.connect(roles::CLIENT).await;
    let js = jetstream::new(client.client.clone());
    let mut stream = js.get_stream(store::FEED_STREAM).await.expect("the client may look the feed up");
    let ephemeral = |client: &Client| push::Config {
        deliver_subject: client.new_inbox(),
        inactive_threshold: store::CONSUMER_INACTIVE_LIMIT,
        ..push::Config::default()
    };
    let server_error = |error: async_nats::jetstream::stream::ConsumerError| match error.kind() {
        ConsumerErrorKind::JetStream(error) => error,
        other => panic!("expected a JetStream error, got {other:?}"),
    };

    // Longer-lived than the stream allows: refused (10153).
    let lasting = stream
        .create_consumer(push::Config { inactive_threshold: Duration::from_secs(3_600), ..ephemeral(&client.client) })
        .await;
    let error = server_error(lasting.expect_err("a consumer outliving the limit was created"));
    assert_eq!(error.error_code(), jetstream::ErrorCode(10_153), "{error}");

    // A durable name through the one create the client may use: refused by the server (10020).
    let durable: serde_json::Value = serde_json::from_slice(
        &client
            .client
            .request(
                format!("$JS.API.CONSUMER.CREATE.{}", store::FEED_STREAM),
                serde_json::to_vec(&serde_json::json!({
                    "stream_name": store::FEED_STREAM,
                    "config": {"durable_name": "mine", "deliver_subject": client.client.new_inbox(), "ack_policy": "none"},
                }))
                .unwrap()
                .into(),
            )
            .await
            .expect("a reply")
            .payload,
    )
    .unwrap();
    assert_eq!(durable["error"]["err_code"], 10_020, "{durable}");

    // Up to the limit, and no further (10026).
    let existing = stream.info().await.unwrap().state.consumer_count;
    for _ in existing..usize::try_from(store::MAX_CONSUMERS).unwrap() {
        stream.create_consumer(ephemeral(&client.client)).await.expect("a consumer within the limit");
    }
    let error = server_error(stream.create_consumer(ephemeral(&client.client)).await.expect_err("one too many"));
    assert_eq!(error.error_code(), jetstream::ErrorCode::MAXIMUM_CONSUMERS_LIMIT, "{error}");
    assert!(error.to_string().contains("maximum consumers limit reached"), "{error}");

    let watch = tokio::process::Command::new(env!("CARGO_BIN_EXE_shippy"))
        .args(["watch", "--count", "1"])
        .env("NATS_URL", deployment.nats.url())
        .env("NATS_NKEY", deployment.seed(roles::CLIENT))
        .output()
        .await
        .expect("run shippy watch");
    let stderr = String::from_utf8_lossy(&watch.stderr);
    assert!(!watch.status.success(), "shippy watch past the limit succeeded");
    assert!(stderr.contains("has as many followers as it allows (at most 64)"), "shippy watch said: {stderr}");

    // Named and durable creates are not the client's at all, nor any consumer of the event stream.
    let feed = store::FEED_STREAM;
    client.publish_refused(&format!("$JS.API.CONSUMER.CREATE.{feed}.mine")).await;
    client.publish_refused(&format!("$JS.API.CONSUMER.DURABLE.CREATE.{feed}.mine")).await;
    client.publish_refused(&format!("$JS.API.CONSUMER.DELETE.{feed}.mine")).await;
    client.publish_refused(&format!("$JS.API.CONSUMER.CREATE.{}", store::EVENTS_STREAM)).await;

    // With the feed full, workers still start (each follows the event stream) and serve.
    let _more = deployment.workers().await;
    let created: CreatedConsignment =
        request(&client.client, consignment::CREATE, SEED.into(), TIMEOUT).await.expect("a create");
    assert_eq!(created.consignment.vessel_id, "vessel001");
}

/// A login NATS refuses is reported as such, naming what to set: no key, a key
/// the server does not know, an empty `NATS_NKEY`.
#[tokio::test]
async fn a_refused_login_names_what_to_set() {
    let deployment = Deployment::start().await;
    let url = deployment.nats.url();

    let (code, said, _) = deployment.shippy(&[], &["vessels"]).await;
    assert_eq!(code, Some(1));
    assert!(
        said.starts_with(&format!(
            "shippy: NATS at {url} wants a login: set NATS_NKEY to your role's seed file, such as nats-auth/client/nkey"
        )),
        "{said}"
    );

    let stranger = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(stranger.path(), nkeys::KeyPair::new_user().seed().unwrap()).unwrap();
    let (code, said, _) = deployment.shippy(&[("NATS_NKEY", stranger.path().as_os_str())], &["vessels"]).await;
    assert_eq!(code, Some(1));
    let expected = format!("shippy: NATS at {url} does not accept the key in {}", stranger.path().display());
    assert!(said.starts_with(&expected), "{said}");
    assert!(said.contains("set NATS_NKEY to a current seed file"), "{said}");

    // An empty variable is a bad argument: exit status 2, naming it.
    let (code, said, _) = deployment.shippy(&[("NATS_NKEY", "".as_ref())], &["vessels"]).await;
    assert_eq!(code, Some(2));
    assert!(said.contains("empty: set NATS_NKEY to a file, or unset it"), "{said}");
}

/// A plain client of a TLS server is told to set `NATS_CA`; with it, it gets through.
#[tokio::test]
async fn tls_without_a_ca_names_what_to_set() {
    let (deployment, tls) = Deployment::start_tls().await;
    let url = deployment.nats.url();
    let key = deployment.seed(roles::CLIENT);

    let (code, said, _) = deployment.shippy(&[("NATS_NKEY", key.as_os_str())], &["vessels"]).await;
    assert_eq!(code, Some(1));
    assert!(said.starts_with(&format!("shippy: TLS with NATS at {url} failed")), "{said}");
    assert!(said.ends_with("set NATS_CA to the CA certificate that signed the server's, such as tls/ca.pem"), "{said}");

    // With the CA the login and TLS pass: no vessel-worker runs to answer.
    let ca = tls.path().join("ca.pem");
    let (_, said, _) =
        deployment.shippy(&[("NATS_NKEY", key.as_os_str()), ("NATS_CA", ca.as_os_str())], &["vessels"]).await;
    assert_eq!(said, "shippy: no service is listening on vessel.list");
}

/// A request the login may not make is reported at once, not as a timeout.
#[tokio::test]
async fn a_permission_denial_is_reported_at_once() {
    let deployment = Deployment::start().await;
    let patience = ["--timeout-ms", "30000"];
    // Well under the timeout: the denial, not the wait, ends the command.
    let at_once = Duration::from_secs(10);

    let monitor = deployment.seed(roles::MONITOR);
    let (code, said, took) =
        deployment.shippy(&[("NATS_NKEY", monitor.as_os_str())], &[&patience[..], &["vessels"]].concat()).await;
    assert_eq!(code, Some(1));
    assert_eq!(said, "shippy: permission denied: publish to vessel.list (logged in as monitor)");
    assert!(took < at_once, "took {took:?}");

    // The bench serves and asks an echo subject of its own: the admin's alone.
    let client = deployment.seed(roles::CLIENT);
    let bench = ["bench", "raw", "--duration", "100ms", "--warmup", "0s"];
    let (code, said, took) =
        deployment.shippy(&[("NATS_NKEY", client.as_os_str())], &[&patience[..], &bench].concat()).await;
    assert_eq!(code, Some(1));
    assert!(said.starts_with("shippy: raw: permission denied: publish to _SHIPPY.bench.echo."), "{said}");
    assert!(
        said.ends_with("(logged in as client); the bench runs as the admin: NATS_NKEY=nats-auth/admin/nkey"),
        "{said}"
    );
    assert!(took < at_once, "took {took:?}");
}

/// The server reports a refused reply inbox once a connection: every request of
/// that connection fails with it at once, not the first alone.
#[tokio::test]
async fn a_refused_reply_inbox_fails_every_request_of_its_connection_at_once() {
    let deployment = Deployment::start().await;
    let config =
        NatsConfig { inbox_prefix: Some(roles::MONITOR.inbox_prefix.to_owned()), ..deployment.config(roles::CLIENT) };
    let services = cli::client::Services::connect(&config, Duration::from_secs(30)).await.expect("connect");
    for attempt in 0..3 {
        let started = std::time::Instant::now();
        let error = services.request::<VesselList>(vessel::LIST, "".into()).await.expect_err("denied");
        assert!(
            matches!(&error, shared::client::RequestError::Denied { action, .. } if action == "subscribe to"),
            "attempt {attempt}: {error}"
        );
        assert!(started.elapsed() < TIMEOUT, "attempt {attempt} took {:?}", started.elapsed());
    }
}
