//! The gateway's HTTP API against the real stack: a NATS server in a container,
//! both workers in-process, the gateway on 127.0.0.1:0, and a real HTTP client.

use std::{
    num::NonZeroU32,
    time::{Duration, Instant},
};

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use shared::model::NewConsignment;
use testkit::{GUARD, Nats, Running};

const TOKEN: &str = "test-token-0123456789";
use testkit::SEED_CONSIGNMENT as SEED;

/// A gateway serving on a task of its own, and how to reach it.
struct Gateway {
    base: String,
    http: reqwest::Client,
    running: Running<anyhow::Result<()>>,
    _tokens: tempfile::TempDir,
}

impl Gateway {
    /// A gateway on `nats_url` that accepts [`TOKEN`] (none if `tokens` is false),
    /// with `configure` applied to its configuration.
    async fn start(nats_url: &str, tokens: bool, configure: impl FnOnce(&mut gateway::Config)) -> Self {
        let dir = tempfile::tempdir().expect("a scratch directory");
        let mut config = gateway::Config::new(nats_url);
        config.addr = "127.0.0.1:0".parse().unwrap();
        if tokens {
            let file = dir.path().join("api-tokens");
            std::fs::write(&file, format!("# test\n{}\n", shared::api_token::hash_line(TOKEN))).unwrap();
            config.tokens_file = Some(file);
        }
        configure(&mut config);
        let gateway = gateway::Gateway::start(&config).await.expect("start the gateway");
        let base = format!("http://{}", gateway.local_addr().unwrap());
        let running = Running::spawn(|shutdown| gateway.serve(shutdown));
        let http = reqwest::Client::builder().timeout(GUARD).build().unwrap();
        Self { base, http, running, _tokens: dir }
    }

    /// A request to `path`, with the token.
    fn call(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base)).bearer_auth(TOKEN)
    }

    /// A request to `path`, with no token.
    fn anonymous(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// Waits until `/readyz` answers `status`: the gateway's view of its NATS connection.
    async fn wait_ready(&self, status: StatusCode) {
        let ready = async {
            let mut poll = tokio::time::interval(Duration::from_millis(20));
            loop {
                poll.tick().await;
                if self.anonymous(Method::GET, "/readyz").send().await.unwrap().status() == status {
                    return;
                }
            }
        };
        tokio::time::timeout(GUARD, ready).await.unwrap_or_else(|_| panic!("/readyz never answered {status}"));
    }
}

/// NATS, both workers, and a gateway in front of them.
struct Stack {
    nats: Nats,
    workers: Vec<Running<Result<(), shared::service::Error>>>,
    gateway: Gateway,
}

impl Stack {
    async fn start(configure: impl FnOnce(&mut gateway::Config)) -> Self {
        let nats = Nats::start().await;
        let vessels = vessel_worker::start(&vessel_worker::Config::new(nats.url())).await.expect("vessel-worker");
        let consignments =
            consignment_worker::start(&consignment_worker::Config::new(nats.url())).await.expect("consignment-worker");
        let workers = vec![testkit::serve(vessels), testkit::serve(consignments)];
        let gateway = Gateway::start(nats.url(), true, configure).await;
        gateway.wait_ready(StatusCode::OK).await;
        Self { nats, workers, gateway }
    }
}

/// The response's status and JSON body.
async fn json(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|error| panic!("{status}: not JSON ({error}): {text:?}"));
    (status, body)
}

/// Checks an error response: `status`, the error body with that code, and a
/// message containing `needle`.
#[track_caller]
fn assert_error(response: &(StatusCode, Value), status: StatusCode, needle: &str) {
    let (got, body) = response;
    assert_eq!(*got, status, "{body}");
    assert_eq!(body["error"]["code"], status.as_u16(), "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_else(|| panic!("no message: {body}"));
    assert!(message.contains(needle), "{message:?} does not contain {needle:?}");
    assert_eq!(body.as_object().unwrap().len(), 1, "only `error`: {body}");
}

/// The OpenAPI document, checked to be OpenAPI 3.1 with valid JSON Schema
/// (2020-12, the 3.1 dialect) for every component.
async fn openapi(gateway: &Gateway) -> Value {
    let (status, doc) = json(gateway.anonymous(Method::GET, "/openapi.json").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."), "{}", doc["openapi"]);
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/v1/consignments", &["get", "post"][..]),
        ("/v1/consignments/{id}", &["get"]),
        ("/v1/vessels", &["get", "post"]),
        ("/v1/vessels/available", &["get"]),
        ("/v1/events", &["get"]),
        ("/v1/services", &["get"]),
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
    ] {
        for method in methods {
            let operation = &paths[path][method];
            assert!(operation["responses"].is_object(), "{method} {path} is not documented");
        }
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        let mut schema = schema.clone();
        schema["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
        if let Err(error) = jsonschema::meta::validate(&schema) {
            panic!("components.schemas.{name} is not JSON Schema 2020-12: {error}");
        }
    }
    doc
}

/// Checks `instance` against the component schema `name` of the OpenAPI document.
#[track_caller]
fn assert_matches_schema(doc: &Value, name: &str, instance: &Value) {
    let mut root = doc.clone();
    root["$ref"] = json!(format!("#/components/schemas/{name}"));
    let validator = jsonschema::draft202012::new(&root).unwrap_or_else(|error| panic!("schema {name}: {error}"));
    let errors: Vec<String> = validator.iter_errors(instance).map(|error| error.to_string()).collect();
    assert!(errors.is_empty(), "{instance} does not match {name}: {errors:?}");
}

#[tokio::test]
async fn every_route_answers_and_its_body_matches_the_openapi_document() {
    let stack = Stack::start(|_| {}).await;
    let gateway = &stack.gateway;
    let doc = openapi(gateway).await;

    let (status, health) = json(gateway.anonymous(Method::GET, "/healthz").send().await.unwrap()).await;
    assert_eq!((status, health["status"].as_str()), (StatusCode::OK, Some("ok")));

    // Create, with a key: 201, Location, the consignment booked onto a vessel.
    let seed: NewConsignment = serde_json::from_str(SEED).unwrap();
    let created = gateway
        .call(Method::POST, "/v1/consignments")
        .header("Idempotency-Key", "order-1")
        .json(&seed)
        .send()
        .await
        .unwrap();
    let location = created.headers()[header::LOCATION].to_str().unwrap().to_owned();
    assert_eq!(created.headers()["idempotency-key"], "order-1");
    let (status, consignment) = json(created).await;
    assert_eq!(status, StatusCode::CREATED, "{consignment}");
    assert_matches_schema(&doc, "Consignment", &consignment);
    let id = consignment["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/v1/consignments/{id}"));
    assert_eq!(consignment["description"], seed.description);
    assert_eq!(consignment["vessel_id"], "vessel001");

    // The same key again: the same consignment.
    let again = gateway
        .call(Method::POST, "/v1/consignments")
        .header("Idempotency-Key", "order-1")
        .json(&seed)
        .send()
        .await
        .unwrap();
    let (status, replayed) = json(again).await;
    assert_eq!((status, &replayed), (StatusCode::CREATED, &consignment));

    // No key: the gateway makes one and says which, so a retry is safe.
    let unkeyed = gateway.call(Method::POST, "/v1/consignments").json(&seed).send().await.unwrap();
    let key = unkeyed.headers()["idempotency-key"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&key).is_ok(), "{key}");
    let (status, second) = json(unkeyed).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(second["id"], consignment["id"]);

    // Read back.
    let (status, read) = json(gateway.call(Method::GET, &location).send().await.unwrap()).await;
    assert_eq!((status, &read), (StatusCode::OK, &consignment));

    // Pages: one at a time, the next named by the body's cursor and the Link header.
    let first = gateway.call(Method::GET, "/v1/consignments?limit=1").send().await.unwrap();
    let link = first.headers()[header::LINK].to_str().unwrap().to_owned();
    let (status, page) = json(first).await;
    assert_eq!(status, StatusCode::OK);
    assert_matches_schema(&doc, "ConsignmentList", &page);
    assert_eq!(page["consignments"][0]["id"], consignment["id"]);
    let next = page["next"].as_str().unwrap();
    let target = link.strip_prefix('<').and_then(|rest| rest.split_once(">; rel=\"next\"")).unwrap().0;
    assert!(target.starts_with("/v1/consignments?limit=1&cursor="), "{link}");
    let (status, page) = json(gateway.call(Method::GET, target).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["consignments"][0]["id"], second["id"]);
    assert_ne!(page["next"].as_str(), Some(next));
    // Filters pass through.
    let (status, page) =
        json(gateway.call(Method::GET, "/v1/consignments?vessel_id=nowhere").send().await.unwrap()).await;
    assert_eq!((status, page["consignments"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)));
    let (status, page) =
        json(gateway.call(Method::GET, "/v1/consignments?user_id=user001").send().await.unwrap()).await;
    assert_eq!((status, page["consignments"].as_array().map(Vec::len)), (StatusCode::OK, Some(2)));

    // Vessels: the fleet, paged; one added; one found.
    let (status, fleet) = json(gateway.call(Method::GET, "/v1/vessels").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_matches_schema(&doc, "VesselList", &fleet);
    assert!(fleet["vessels"].as_array().unwrap().iter().any(|vessel| vessel["id"] == "vessel001"), "{fleet}");
    let paged = gateway.call(Method::GET, "/v1/vessels?limit=1").send().await.unwrap();
    assert!(paged.headers()[header::LINK].to_str().unwrap().starts_with("</v1/vessels?limit=1&cursor="));
    let big = json!({"id": "gw-big", "capacity": 10_000, "max_weight": 100_000_000, "name": "Big"});
    let (status, added) = json(gateway.call(Method::POST, "/v1/vessels").json(&big).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_matches_schema(&doc, "Vessel", &added);
    assert_eq!(added["id"], "gw-big");
    let (status, found) = json(
        gateway.call(Method::GET, "/v1/vessels/available?capacity=5000&max_weight=50000000").send().await.unwrap(),
    )
    .await;
    assert_eq!((status, &found["id"]), (StatusCode::OK, &json!("gw-big")), "{found}");

    // The running instances, with what they served, from $SRV.STATS.
    let (status, services) = json(gateway.call(Method::GET, "/v1/services").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{services}");
    assert_matches_schema(&doc, "ServiceList", &services);
    let names: Vec<&str> =
        services["services"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["consignment", "vessel"]);
    let create_stats = services["services"][0]["endpoints"].as_array().unwrap().iter().find(|e| e["name"] == "create");
    assert!(create_stats.unwrap()["num_requests"].as_u64().unwrap() >= 3, "{services}");

    // The dashboard: its page, stylesheet and script, under a strict CSP.
    for (path, media) in [("/", "text/html"), ("/app.css", "text/css"), ("/app.js", "text/javascript")] {
        let response = gateway.anonymous(Method::GET, path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(response.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with(media), "{path}");
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(response.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }

    // Shuts down cleanly: in-flight requests done, NATS drained.
    stack.gateway.running.stop().await.expect("a clean shutdown");
    for worker in stack.workers {
        worker.stop().await.unwrap();
    }
    drop(stack.nats);
}

/// An open `GET /v1/events` response, read event by event.
struct Events(std::pin::Pin<Box<dyn futures::Stream<Item = eventsource_stream::Event> + Send>>);

impl Events {
    /// Opens the events, resuming after `last_event_id` if given.
    async fn open(gateway: &Gateway, last_event_id: Option<&str>) -> Self {
        let mut request = gateway.call(Method::GET, "/v1/events");
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        // The response must outlive reqwest's whole-request timeout.
        let response = request.timeout(Duration::from_secs(3600)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/event-stream");
        Self::read(response.bytes_stream())
    }

    /// The events of an SSE body, read as it is polled.
    fn read<B, E>(body: impl futures::Stream<Item = Result<B, E>> + Send + 'static) -> Self
    where
        B: AsRef<[u8]> + Send + 'static,
        E: std::fmt::Debug + Send + 'static,
    {
        use eventsource_stream::Eventsource as _;
        use futures::StreamExt as _;
        Self(Box::pin(body.eventsource().map(|event| event.expect("a well-formed event"))))
    }

    /// The next event: its id (a stream sequence) and its data.
    async fn next(&mut self) -> (u64, Value) {
        use futures::StreamExt as _;
        let event = tokio::time::timeout(GUARD, self.0.next()).await.expect("an event in time").expect("open");
        assert_eq!(event.event, "consignment.created");
        (event.id.parse().expect("a sequence as id"), serde_json::from_str(&event.data).expect("JSON data"))
    }
}

/// The seed consignment, light enough that many fit, described as `description`.
fn light(description: &str) -> NewConsignment {
    let mut seed: NewConsignment = serde_json::from_str(SEED).unwrap();
    description.clone_into(&mut seed.description);
    seed.weight = 100;
    seed
}

/// Creates a [`light`] consignment and returns its id.
async fn create(gateway: &Gateway, description: &str) -> String {
    let body = light(description);
    let (status, created) =
        json(gateway.call(Method::POST, "/v1/consignments").json(&body).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn events_resume_after_last_event_id_each_once_in_order() {
    let stack = Stack::start(|_| {}).await;
    let gateway = &stack.gateway;
    let doc = openapi(gateway).await;

    // Live: each create is an event, its id the stream sequence, rising.
    let mut live = Events::open(gateway, None).await;
    let mut created = Vec::new();
    for n in 0..3 {
        created.push(create(gateway, &format!("live {n}")).await);
    }
    let mut seen = Vec::new();
    for id in &created {
        let (sequence, data) = live.next().await;
        assert_matches_schema(&doc, "FeedEvent", &data);
        assert_eq!(
            (data["sequence"].as_u64(), data["consignments"][0]["id"].as_str()),
            (Some(sequence), Some(id.as_str()))
        );
        assert!(seen.last().is_none_or(|last| *last < sequence), "in order: {seen:?} then {sequence}");
        seen.push(sequence);
    }

    // Resume after the first while more are created: the read back and the live
    // events meet with no gap and no duplicate.
    let more = {
        let (base, http) = (gateway.base.clone(), gateway.http.clone());
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..5 {
                let body = light(&format!("more {n}"));
                let response = http.post(format!("{base}/v1/consignments")).bearer_auth(TOKEN).json(&body).send();
                let (status, body) = json(response.await.unwrap()).await;
                assert_eq!(status, StatusCode::CREATED, "{body}");
                ids.push(body["id"].as_str().unwrap().to_owned());
            }
            ids
        })
    };
    let mut resumed = Events::open(gateway, Some(&seen[0].to_string())).await;
    created.extend(more.await.unwrap());
    for _ in 3..created.len() {
        seen.push(live.next().await.0);
    }
    let mut resumed_ids = Vec::new();
    for _ in 1..created.len() {
        let (sequence, data) = resumed.next().await;
        resumed_ids.push((sequence, data["consignments"][0]["id"].as_str().unwrap().to_owned()));
    }
    let expected: Vec<(u64, String)> = seen[1..].iter().copied().zip(created[1..].iter().cloned()).collect();
    assert_eq!(resumed_ids, expected);
    // Nothing else was queued: the next event on both is the next create.
    let last = create(gateway, "last").await;
    for events in [&mut live, &mut resumed] {
        let (sequence, data) = events.next().await;
        assert!(sequence > *seen.last().unwrap());
        assert_eq!(data["consignments"][0]["id"].as_str(), Some(last.as_str()));
    }

    // From the start: every event, the first one included.
    let mut all = Events::open(gateway, Some("0")).await;
    assert_eq!(all.next().await.0, seen[0]);

    // A bad Last-Event-ID is a 400.
    let bad = gateway.call(Method::GET, "/v1/events").header("Last-Event-ID", "nine").send().await.unwrap();
    assert_error(&json(bad).await, StatusCode::BAD_REQUEST, "Last-Event-ID");

    // Shutdown ends the open responses: the gateway stops in time.
    stack.gateway.running.stop().await.expect("a clean shutdown");
    for worker in stack.workers {
        worker.stop().await.unwrap();
    }
}

/// A connection more than the fan-out channel's capacity behind (its broadcast
/// receiver lagged) reads what it missed back from the stream and delivers each
/// event once, in order, then goes on live. Driven in-process, where the lag is
/// certain: the connection's SSE body is not polled at all while the events are
/// handed out (an HTTP response would be, by hyper, into the socket's buffers).
#[tokio::test]
async fn a_connection_further_behind_than_the_channel_reads_back_each_event_once_in_order() {
    use axum::response::{IntoResponse as _, sse::Sse};
    use futures::StreamExt as _;
    use gateway::events::{CHANNEL_CAPACITY, Feed};

    let stack = Stack::start(|config| {
        config.rate_per_second = NonZeroU32::new(1_000_000).unwrap();
        config.rate_burst = NonZeroU32::new(1_000_000).unwrap();
    })
    .await;
    let gateway = &stack.gateway;
    // Room for every create below, first in id order.
    let roomy = json!({"id": "lag", "capacity": 100_000, "max_weight": 1_000_000_000, "name": "Lag"});
    assert_eq!(gateway.call(Method::POST, "/v1/vessels").json(&roomy).send().await.unwrap().status(), 201);

    // A feed of the test's own, as the gateway runs it, with two connections: one
    // read as the events come, one not read until they have all been handed out.
    let stop = tokio_util::sync::CancellationToken::new();
    let client = async_nats::connect(stack.nats.url()).await.unwrap();
    let feed = Feed::start(client, Duration::from_secs(5), stop.clone());
    let connect = async || {
        let events = feed.subscribe(None).await.expect("the feed follows the stream");
        let body = Sse::new(events.map(Ok::<_, std::convert::Infallible>)).into_response().into_body();
        Events::read(body.into_data_stream())
    };
    let mut live = connect().await;
    let mut behind = connect().await;
    assert_eq!(feed.connections(), 2);

    // More events than the channel holds, one create (one event) at a time, each
    // read by the live connection before the next: the unread one falls behind.
    let mut handed_out = Vec::new();
    while handed_out.len() < CHANNEL_CAPACITY + 50 {
        let id = create(gateway, &format!("lag {}", handed_out.len())).await;
        let (sequence, data) = live.next().await;
        assert_eq!(data["consignments"][0]["id"].as_str(), Some(id.as_str()), "one create, one event");
        handed_out.push((sequence, id));
    }

    // Each event once, in stream order: the first ones read back, the rest as kept.
    let mut delivered = Vec::new();
    for _ in 0..handed_out.len() {
        let (sequence, data) = behind.next().await;
        delivered.push((sequence, data["consignments"][0]["id"].as_str().unwrap().to_owned()));
    }
    assert_eq!(delivered, handed_out);
    // Nothing else was queued: the next event on both is the next create.
    let last = create(gateway, "after the lag").await;
    for events in [&mut live, &mut behind] {
        let (sequence, data) = events.next().await;
        assert!(sequence > handed_out.last().unwrap().0);
        assert_eq!(data["consignments"][0]["id"].as_str(), Some(last.as_str()));
    }
    stop.cancel();
}

#[tokio::test]
async fn every_error_has_its_status_and_the_error_body() {
    let stack = Stack::start(|config| config.max_request_bytes = 4096).await;
    let gateway = &stack.gateway;
    let seed: NewConsignment = serde_json::from_str(SEED).unwrap();
    let post = |body: &'static str| {
        gateway.call(Method::POST, "/v1/consignments").header(header::CONTENT_TYPE, "application/json").body(body)
    };

    // 400: malformed JSON, a field of the wrong type, a service rule broken.
    assert_error(&json(post(r#"{"description": "#).send().await.unwrap()).await, StatusCode::BAD_REQUEST, "invalid");
    assert_error(
        &json(post(r#"{"description":"d","weight":-5,"containers":[]}"#).send().await.unwrap()).await,
        StatusCode::BAD_REQUEST,
        "weight",
    );
    assert_error(&json(post("[1, 2]").send().await.unwrap()).await, StatusCode::BAD_REQUEST, "array");
    // 415: not JSON, or no content type at all.
    let text = gateway.call(Method::POST, "/v1/consignments").header(header::CONTENT_TYPE, "text/plain").body(SEED);
    assert_error(&json(text.send().await.unwrap()).await, StatusCode::UNSUPPORTED_MEDIA_TYPE, "application/json");
    let bare = gateway.call(Method::POST, "/v1/vessels").body("{}");
    assert_error(&json(bare.send().await.unwrap()).await, StatusCode::UNSUPPORTED_MEDIA_TYPE, "application/json");
    // 413: larger than the limit, with or without a Content-Length.
    let big = format!(r#"{{"description":"{}","weight":1,"containers":[]}}"#, "x".repeat(8192));
    let oversized = gateway.call(Method::POST, "/v1/consignments").header(header::CONTENT_TYPE, "application/json");
    assert_error(&json(oversized.body(big.clone()).send().await.unwrap()).await, StatusCode::PAYLOAD_TOO_LARGE, "");
    let stream = chunked_body(big.as_bytes());
    let chunked = gateway.call(Method::POST, "/v1/consignments").header(header::CONTENT_TYPE, "application/json");
    assert_error(&json(chunked.body(stream).send().await.unwrap()).await, StatusCode::PAYLOAD_TOO_LARGE, "4096");
    // 400: a bad cursor, a bad limit, a missing or bad query parameter, a bad key.
    let bad_cursor = gateway.call(Method::GET, "/v1/consignments?cursor=not-a-cursor").send().await.unwrap();
    assert_error(&json(bad_cursor).await, StatusCode::BAD_REQUEST, "cursor");
    assert_error(
        &json(gateway.call(Method::GET, "/v1/consignments?limit=lots").send().await.unwrap()).await,
        StatusCode::BAD_REQUEST,
        "limit",
    );
    assert_error(
        &json(gateway.call(Method::GET, "/v1/vessels/available?capacity=3").send().await.unwrap()).await,
        StatusCode::BAD_REQUEST,
        "max_weight",
    );
    let spaced_key = gateway.call(Method::POST, "/v1/consignments").header("Idempotency-Key", "a b").json(&seed);
    assert_error(&json(spaced_key.send().await.unwrap()).await, StatusCode::BAD_REQUEST, "Idempotency-Key");
    // 400: a path segment that is not UTF-8.
    assert_error(
        &json(gateway.call(Method::GET, "/v1/consignments/%FF").send().await.unwrap()).await,
        StatusCode::BAD_REQUEST,
        "",
    );
    // 404: an unknown id, an unknown path; none fits.
    assert_error(
        &json(gateway.call(Method::GET, "/v1/consignments/no-such-id").send().await.unwrap()).await,
        StatusCode::NOT_FOUND,
        "no such consignment",
    );
    assert_error(
        &json(gateway.call(Method::GET, "/v1/nothing/here").send().await.unwrap()).await,
        StatusCode::NOT_FOUND,
        "/v1/nothing/here",
    );
    assert_error(
        &json(gateway.call(Method::GET, "/v1/vessels/available?capacity=3&max_weight=999999999").send().await.unwrap())
            .await,
        StatusCode::NOT_FOUND,
        "no vessel available",
    );
    // 405 for a method the route lacks.
    assert_error(
        &json(gateway.call(Method::DELETE, "/v1/vessels").send().await.unwrap()).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "DELETE",
    );
    // 409: a key reused for another consignment.
    let keyed = |body: &NewConsignment| {
        gateway.call(Method::POST, "/v1/consignments").header("Idempotency-Key", "order-9").json(body)
    };
    assert_eq!(keyed(&seed).send().await.unwrap().status(), StatusCode::CREATED);
    let other = NewConsignment { weight: seed.weight + 1, ..seed.clone() };
    assert_error(&json(keyed(&other).send().await.unwrap()).await, StatusCode::CONFLICT, "");

    // 503: no instance of the service (the consignment-worker stopped).
    let mut workers = stack.workers;
    workers.pop().unwrap().stop().await.unwrap();
    let started = Instant::now();
    let refused = json(gateway.call(Method::GET, "/v1/consignments").send().await.unwrap()).await;
    assert_error(&refused, StatusCode::SERVICE_UNAVAILABLE, "consignment.list");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    // A create is sent again a few times with its key (safe), then refused alike.
    let started = Instant::now();
    let refused_create = json(gateway.call(Method::POST, "/v1/consignments").json(&seed).send().await.unwrap()).await;
    assert_error(&refused_create, StatusCode::SERVICE_UNAVAILABLE, "consignment.create");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    // Error bodies match the document's ErrorBody.
    let doc = openapi(gateway).await;
    assert_matches_schema(&doc, "ErrorBody", &refused.1);
    drop(stack.nats);
}

/// `bytes` as a body of unknown length (chunked): no Content-Length to refuse it by.
fn chunked_body(bytes: &[u8]) -> reqwest::Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = bytes.chunks(1024).map(|chunk| Ok(chunk.to_vec())).collect();
    reqwest::Body::wrap_stream(futures::stream::iter(chunks))
}

#[tokio::test]
async fn nats_down_is_503_at_once_and_readyz_says_so() {
    let stack = Stack::start(|config| config.nats_timeout_ms = 30_000).await;
    let gateway = &stack.gateway;
    stack.nats.stop().await;
    gateway.wait_ready(StatusCode::SERVICE_UNAVAILABLE).await;
    let seed: NewConsignment = serde_json::from_str(SEED).unwrap();
    for request in [
        gateway.call(Method::POST, "/v1/consignments").json(&seed),
        gateway.call(Method::GET, "/v1/consignments"),
        gateway.call(Method::GET, "/v1/vessels"),
    ] {
        let started = Instant::now();
        assert_error(&json(request.send().await.unwrap()).await, StatusCode::SERVICE_UNAVAILABLE, "NATS");
        // Far under the NATS request timeout: the request was never sent.
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    }
    let (status, health) = json(gateway.anonymous(Method::GET, "/healthz").send().await.unwrap()).await;
    assert_eq!((status, health["status"].as_str()), (StatusCode::OK, Some("ok")));
}

#[tokio::test]
async fn requests_need_a_valid_token_and_are_rate_limited_per_token() {
    let stack = Stack::start(|config| {
        config.rate_per_second = NonZeroU32::new(1).unwrap();
        config.rate_burst = NonZeroU32::new(3).unwrap();
    })
    .await;
    let gateway = &stack.gateway;
    // 401 without a token, with a wrong one, with another scheme; never counted.
    for request in [
        gateway.anonymous(Method::GET, "/v1/vessels"),
        gateway.anonymous(Method::GET, "/v1/vessels").bearer_auth("wrong-token"),
        gateway.anonymous(Method::GET, "/v1/vessels").basic_auth("user", Some(TOKEN)),
        gateway.anonymous(Method::POST, "/v1/consignments").bearer_auth("").json(&json!({})),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert_error(&json(response).await, StatusCode::UNAUTHORIZED, "");
    }
    // Past the burst: 429, with a Retry-After of at least a second.
    let mut limited = None;
    for _ in 0..20 {
        let response = gateway.call(Method::GET, "/v1/vessels").send().await.unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(response);
            break;
        }
        assert_eq!(response.status(), StatusCode::OK);
    }
    let limited = limited.expect("a 429 past the burst");
    let retry_after: u64 = limited.headers()[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After: {retry_after}");
    assert_error(&json(limited).await, StatusCode::TOO_MANY_REQUESTS, "too many requests");
    // Health and the document need no token.
    assert_eq!(gateway.anonymous(Method::GET, "/healthz").send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(gateway.anonymous(Method::GET, "/openapi.json").send().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn without_tokens_it_starts_and_refuses_every_v1_route() {
    // No NATS at all: the gateway starts anyway, and says it is not ready.
    let gateway = Gateway::start("nats://127.0.0.1:1", false, |_| {}).await;
    gateway.wait_ready(StatusCode::SERVICE_UNAVAILABLE).await;
    for (method, path) in [
        (Method::GET, "/v1/consignments"),
        (Method::POST, "/v1/consignments"),
        (Method::GET, "/v1/consignments/x"),
        (Method::GET, "/v1/vessels"),
        (Method::POST, "/v1/vessels"),
        (Method::GET, "/v1/vessels/available?capacity=1&max_weight=1"),
    ] {
        let response = gateway.call(method.clone(), path).send().await.unwrap();
        assert_error(&json(response).await, StatusCode::UNAUTHORIZED, "no API tokens");
    }
    openapi(&gateway).await;
    gateway.running.stop().await.expect("a clean shutdown");
}

#[tokio::test]
async fn the_binary_serves_until_sigterm_and_exits_cleanly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let gateway = testkit::Process::start(
        "gateway",
        env!("CARGO_BIN_EXE_gateway"),
        &[("NATS_URL", "nats://127.0.0.1:1"), ("GATEWAY_ADDR", &addr), ("SHUTDOWN_GRACE_MS", "2000")],
        "gateway listening",
    )
    .await;
    let health = reqwest::get(format!("http://{addr}/healthz")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert!(gateway.terminate().await, "the gateway did not exit cleanly on SIGTERM");
}

/// chromedriver, as Debian's `chromium-driver` installs it (or first on `PATH`).
fn chromedriver() -> std::path::PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("chromedriver"))
        .find(|candidate| candidate.is_file());
    on_path.unwrap_or_else(|| {
        panic!(
            "the dashboard test drives a real browser and needs chromedriver on PATH: \
             install the Debian packages `chromium` and `chromium-driver` (apt-get install chromium chromium-driver)"
        )
    })
}

/// chromedriver on a free loopback port, and a headless Chromium session through it.
async fn browser() -> (tokio::process::Child, fantoccini::Client) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let driver = tokio::process::Command::new(chromedriver())
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start chromedriver");
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--window-size=1200,1500"]}),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let session = async {
        let mut poll = tokio::time::interval(Duration::from_millis(50));
        loop {
            poll.tick().await;
            let mut builder = fantoccini::ClientBuilder::new(connector.clone());
            if let Ok(client) =
                builder.capabilities(capabilities.clone()).connect(&format!("http://127.0.0.1:{port}")).await
            {
                return client;
            }
        }
    };
    let client = tokio::time::timeout(GUARD, session).await.expect("a Chromium session through chromedriver in time");
    (driver, client)
}

#[tokio::test]
async fn the_dashboard_works_in_a_real_browser() {
    use fantoccini::Locator::Css;
    let stack = Stack::start(|_| {}).await;
    let gateway = &stack.gateway;
    let (_driver, browser) = browser().await;
    let wait = || browser.wait().at_most(GUARD);

    // The token, once: then both default vessels.
    browser.goto(&format!("{}/", gateway.base)).await.unwrap();
    wait().for_element(Css("#token")).await.unwrap().send_keys(TOKEN).await.unwrap();
    browser.find(Css("#login-form button")).await.unwrap().click().await.unwrap();
    for vessel in ["vessel001", "vessel002"] {
        wait().for_element(Css(&format!("#vessels li[data-vessel='{vessel}']"))).await.unwrap();
    }
    // The instances, from $SRV.STATS.
    wait().for_element(Css("#services tr[data-service='consignment']")).await.unwrap();
    wait().for_element(Css("#services tr[data-service='vessel']")).await.unwrap();

    // A create: it appears in the feed, and its vessel's bar grows.
    let description = browser.find(Css("#description")).await.unwrap();
    description.clear().await.unwrap();
    description.send_keys("Browser consignment").await.unwrap();
    browser.find(Css("#create-form button")).await.unwrap().click().await.unwrap();
    let item = wait().for_element(Css("#feed li[data-consignment]")).await.unwrap();
    assert!(item.text().await.unwrap().contains("Browser consignment"));
    let vessel = item.attr("data-vessel").await.unwrap().expect("the feed names the vessel");
    let bar = wait().for_element(Css(&format!("#vessels li[data-vessel='{vessel}'][data-containers='1']"))).await;
    let bar = bar.expect("the vessel's bar shows the container booked");
    let progress = bar.find(Css("progress.containers")).await.unwrap();
    assert_eq!(progress.attr("value").await.unwrap().as_deref(), Some("1"));

    // A consignment no vessel can carry: the service's message, inline.
    let weight = browser.find(Css("#weight")).await.unwrap();
    weight.clear().await.unwrap();
    weight.send_keys("999999999").await.unwrap();
    browser.find(Css("#create-form button")).await.unwrap().click().await.unwrap();
    let mut too_heavy = light("Browser consignment");
    too_heavy.weight = 999_999_999;
    too_heavy.containers.truncate(1);
    let refused = gateway.call(Method::POST, "/v1/consignments").json(&too_heavy).send().await.unwrap();
    let (status, body) = json(refused).await;
    assert!(status.is_client_error(), "{body}");
    let message = body["error"]["message"].as_str().unwrap().to_owned();
    wait().for_element(Css("#create-error:not(:empty)")).await.expect("the error is shown");
    assert_eq!(browser.find(Css("#create-error")).await.unwrap().text().await.unwrap(), message);

    // A screenshot, for people to look at (target/ is not in git).
    let png = browser.screenshot().await.unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard.png");
    std::fs::write(&path, png).unwrap();
    browser.close().await.unwrap();
}
