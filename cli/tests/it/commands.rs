//! The `shippy` binary against real workers and a real NATS server.

use std::{
    process::Output,
    time::{Duration, Instant},
};

use crate::common::{
    GATEWAY_TOKEN, Gateway, failure, poll, shippy, shippy_with, shippy_with_stdin, spawn_workers, stdout,
};
use futures::StreamExt as _;
use shared::{
    client::{FIRST_BACKOFF, LONGEST_BACKOFF},
    subjects::consignment::{CREATE, IDEMPOTENCY_HEADER},
};

use serde_json::{Value, json};
use testkit::Nats;

/// Each line of stdout as JSON, after checking shippy succeeded.
fn json_lines(output: &Output) -> Vec<Value> {
    stdout(output).lines().map(|line| serde_json::from_str(line).expect("each line is JSON")).collect()
}

fn json(output: &Output) -> Value {
    assert!(output.status.success(), "shippy failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("stdout is JSON")
}

#[tokio::test]
async fn create_prints_the_consignment_with_its_vessel() {
    let nats = Nats::start().await;
    let (vessels, consignments) = spawn_workers(&nats).await;

    let created = json(&shippy(nats.url(), &["create"]).await);
    assert_eq!(created["created"], true);
    assert_eq!(created["consignment"]["vessel_id"], "vessel001");
    assert_eq!(created["consignment"]["containers"].as_array().unwrap().len(), 3);

    // Piped, lists are JSON Lines: one consignment, one vessel a line.
    let listed = json_lines(&shippy(nats.url(), &["list"]).await);
    assert_eq!(listed, [created["consignment"].clone()]);

    // A vessel prints one way, found or listed: with what it can still take, once
    // the vessel-worker has followed the create (polled: it may lag by its follow delay).
    let remaining = json!({"containers": 497, "weight": 145_000});
    let find = ["find-vessel", "--capacity", "3", "--max-weight", "55000"];
    let found =
        poll(|| async { json(&shippy(nats.url(), &find).await) }, |found| found["remaining"] == remaining).await;
    assert_eq!(found["name"], "Boaty McBoatface");
    let fleet = json_lines(&shippy(nats.url(), &["vessels"]).await);
    assert!(fleet.len() >= 2);
    assert_eq!(fleet[0], found);
    // A container without an id has none, rather than `"id":""`.
    assert!(
        created["consignment"]["containers"].as_array().unwrap().iter().all(|container| container.get("id").is_none())
    );

    consignments.stop().await.unwrap();
    vessels.stop().await.unwrap();
}

#[tokio::test]
async fn failures_exit_non_zero_with_a_one_line_reason() {
    let nats = Nats::start().await;

    let down = failure(&shippy("nats://127.0.0.1:1", &["list"]).await);
    assert!(down.starts_with("shippy: cannot reach NATS at nats://127.0.0.1:1"), "{down}");

    let missing = failure(&shippy(nats.url(), &["create", "no-such-file.json"]).await);
    assert!(missing.starts_with("shippy: cannot read no-such-file.json"), "{missing}");

    let nobody = failure(&shippy(nats.url(), &["create", "--retry-for", "0s"]).await);
    assert_eq!(nobody, "shippy: no service is listening on consignment.create");
    // Retried for a few seconds at most, whatever --retry-for, saying so once.
    let started = Instant::now();
    let output = shippy(nats.url(), &["create", "--retry-for", "1m"]).await;
    let took = started.elapsed();
    assert!(!output.status.success());
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        "shippy: consignment.create: no service is listening; retrying for up to 5s (--retry-for)\n\
         shippy: no service is listening on consignment.create\n"
    );
    let cap = cli::client::NO_RESPONDERS_FOR;
    assert!(took >= cap && took < cap + Duration::from_secs(10), "took {took:?}");

    // A consignment service that takes requests and never answers.
    let client = async_nats::connect(nats.url()).await.unwrap();
    let _silent = client.subscribe(shared::subjects::consignment::LIST).await.unwrap();
    shared::nats::round_trip(&client).await.unwrap();
    let slow = failure(&shippy(nats.url(), &["--timeout-ms", "300", "list"]).await);
    assert_eq!(slow, "shippy: consignment.list did not answer within 300ms");

    let (vessels, consignments) = spawn_workers(&nats).await;
    let unfit = failure(&shippy(nats.url(), &["find-vessel", "--capacity", "100000", "--max-weight", "1"]).await);
    assert!(unfit.starts_with("shippy: no vessel available for 100000 containers weighing 1 kg: "), "{unfit}");

    consignments.stop().await.unwrap();
    vessels.stop().await.unwrap();
}

/// Every create a never-answering consignment service takes while `shippy` runs
/// `args`: its idempotency key and when it arrived, and how long `shippy` took.
async fn creates_sent(nats: &Nats, args: &[&str]) -> (Vec<(String, Instant)>, Duration, Output) {
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut creates = client.subscribe(CREATE).await.unwrap();
    shared::nats::round_trip(&client).await.unwrap();
    let heard = tokio::spawn(async move {
        let mut heard = Vec::new();
        while let Some(create) = creates.next().await {
            let key = create.headers.as_ref().and_then(|headers| headers.get(IDEMPOTENCY_HEADER));
            match key {
                Some(key) => heard.push((key.to_string(), Instant::now())),
                // The marker sent after shippy ended: every create shippy sent came before it.
                None => return heard,
            }
        }
        heard
    });
    let started = Instant::now();
    let output = shippy(nats.url(), args).await;
    let took = started.elapsed();
    client.publish(CREATE, "end".into()).await.unwrap();
    let heard = tokio::time::timeout(testkit::GUARD, heard).await.expect("the marker arrives").unwrap();
    (heard, took, output)
}

#[tokio::test]
async fn a_failing_create_is_sent_again_with_backoff_until_its_deadline() {
    let nats = Nats::start().await;
    let timeout = Duration::from_millis(200);
    let retry_for = Duration::from_secs(2);
    // Arrival times are the subscriber's, off the sender's by scheduling noise (on a
    // loaded machine, too).
    let noise = Duration::from_millis(100);
    let (heard, took, output) = creates_sent(&nats, &["--timeout-ms", "200", "create", "--retry-for", "2s"]).await;
    assert_eq!(failure(&output), "shippy: consignment.create did not answer within 200ms");

    // One key throughout, so the create happens once however often it is sent.
    assert!(heard.iter().all(|(key, _)| *key == heard[0].0), "{heard:?}");
    // 0, then at least 250ms, 300ms, 400ms, 600ms apart; at most 300ms, 400ms, 600ms, 1000ms.
    assert!((4..=7).contains(&heard.len()), "{} sends: {heard:?}", heard.len());
    let gaps: Vec<Duration> = heard.windows(2).map(|pair| pair[1].1 - pair[0].1).collect();
    // Each wait is at least half its backoff (the last may be cut short by the deadline).
    for (retry, gap) in gaps.iter().enumerate().take(gaps.len() - 1) {
        let least = timeout + shippy_backoff_floor(retry);
        assert!(*gap + noise >= least, "retry {retry} came {gap:?} after the send before, under {least:?}: {gaps:?}");
    }
    // No send goes out past the deadline, and the last is one whose failure came back
    // past it, so it went out at most a timeout before: the sends span --retry-for
    // less at most one timeout. The deadline runs from just before the first send
    // (which waits for shippy's reply subscription), so the span may fall short by
    // that wait too, and each arrival is off by noise.
    let span = heard.last().unwrap().1 - heard[0].1;
    assert!(span + timeout + 4 * noise >= retry_for, "sends spanned {span:?}, under --retry-for {retry_for:?}");
    assert!(span <= retry_for + 4 * noise, "sends spanned {span:?}, past --retry-for {retry_for:?}");
    // shippy gives up only once a failure came back past the deadline, which runs
    // from after the process started; and at most a timeout after it (and a start).
    assert!(took >= retry_for, "shippy gave up after {took:?}");
    assert!(took <= retry_for + timeout + Duration::from_secs(5), "shippy gave up after {took:?}");

    // --retries bounds the count, and --retry-for 0s sends once.
    let (heard, took, output) =
        creates_sent(&nats, &["--timeout-ms", "200", "create", "--retry-for", "30s", "--retries", "1"]).await;
    failure(&output);
    assert_eq!(heard.len(), 2, "{heard:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    let (heard, _, output) = creates_sent(&nats, &["--timeout-ms", "200", "create", "--retry-for", "0s"]).await;
    failure(&output);
    assert_eq!(heard.len(), 1, "{heard:?}");
}

/// The least wait before retry `retry`: half of 100ms doubled `retry` times, at most 2s.
fn shippy_backoff_floor(retry: usize) -> Duration {
    FIRST_BACKOFF.saturating_mul(1 << retry.min(16)).min(LONGEST_BACKOFF) / 2
}

#[tokio::test]
async fn tables_for_people_json_for_scripts() {
    let nats = Nats::start().await;
    let (vessels, consignments) = spawn_workers(&nats).await;

    let line = stdout(&shippy(nats.url(), &["-o", "table", "create"]).await);
    let id = line.split_whitespace().nth(1).unwrap().to_owned();
    assert_eq!(line, format!("created {id} on vessel001: \"This is a test consignment\", 55000 kg in 3 containers\n"));

    let table = stdout(&shippy(nats.url(), &["list", "-o", "table"]).await);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[0].starts_with("ID  "), "{table}");
    assert_eq!(
        lines[0].split("  ").filter(|cell| !cell.is_empty()).map(str::trim).collect::<Vec<_>>(),
        ["ID", "DESCRIPTION", "WEIGHT", "CONTAINERS", "VESSEL"]
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        [id.as_str(), "This", "is", "a", "test", "consignment", "55000", "3", "vessel001"]
    );
    // Aligned: every column starts where its header does.
    assert_eq!(lines[0].find("VESSEL"), lines[1].find("vessel001"), "{table}");

    let table = stdout(&shippy(nats.url(), &["vessels", "-o", "table"]).await);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["ID", "NAME", "CAPACITY", "MAX", "WEIGHT", "AVAILABLE", "BOOKED", "REMAINING"]
    );
    assert!(lines[1].starts_with("vessel001  Boaty McBoatface"), "{table}");
    assert!(lines[1].contains("500      200000  yes"), "{table}");
    assert_eq!(lines[0].find("AVAILABLE"), lines[2].find("yes"), "{table}");

    // -o json and --json are what a pipe gets anyway.
    let piped = json_lines(&shippy(nats.url(), &["vessels"]).await);
    assert_eq!(json_lines(&shippy(nats.url(), &["vessels", "-o", "json"]).await), piped);
    assert_eq!(json_lines(&shippy(nats.url(), &["--json", "vessels"]).await), piped);
    let created = json(&shippy(nats.url(), &["create", "-o", "json"]).await);
    assert_eq!(created["consignment"]["vessel_id"], "vessel001");
    assert_eq!(json_lines(&shippy(nats.url(), &["list", "--output", "json"]).await).len(), 2);

    consignments.stop().await.unwrap();
    vessels.stop().await.unwrap();
}

/// The seed consignment with another description and weight.
fn consignment(description: &str, weight: u64) -> Value {
    json!({
        "description": description,
        "weight": weight,
        "containers": [{"customer_id": "c1", "user_id": "u1", "origin": "Hull"}],
    })
}

/// A file of its own for this test, removed when dropped.
struct TempFile(tempfile::NamedTempFile);

impl TempFile {
    fn new(contents: &str) -> Self {
        let file = tempfile::Builder::new().prefix("shippy-cli-test-").suffix(".json").tempfile().unwrap();
        std::fs::write(file.path(), contents).unwrap();
        Self(file)
    }

    fn path(&self) -> &str {
        self.0.path().to_str().unwrap()
    }
}

#[tokio::test]
async fn creates_in_bulk_from_an_array_json_lines_and_stdin() {
    let nats = Nats::start().await;
    let (vessels, consignments) = spawn_workers(&nats).await;

    // A JSON array: every one created, printed as JSON Lines in the order given.
    let array: Vec<Value> = (0..20).map(|n| consignment(&format!("array {n}"), 1_000 + n)).collect();
    let file = TempFile::new(&serde_json::to_string_pretty(&array).unwrap());
    let output = shippy(nats.url(), &["create", file.path(), "--concurrency", "4"]).await;
    let created = json_lines(&output);
    let descriptions: Vec<&Value> = created.iter().map(|reply| &reply["consignment"]["description"]).collect();
    let expected: Vec<&Value> = array.iter().map(|new| &new["description"]).collect();
    assert_eq!(descriptions, expected);
    assert!(created.iter().all(|reply| reply["created"] == true));
    let summary = String::from_utf8(output.stderr.clone()).unwrap();
    assert!(summary.starts_with("created 20 of 20 consignments in "), "{summary}");

    // JSON Lines with a bad line and one no vessel carries: the rest are still created,
    // the summary counts each reason, and the exit status says not all went through.
    let lines = [
        consignment("line 1", 10).to_string(),
        String::new(),
        "{\"description\": \"line 3\", \"weight\":".to_owned(),
        consignment("line 4", 10).to_string(),
        consignment("too heavy", 10_000_000).to_string(),
        consignment("too heavy again", 10_000_000).to_string(),
    ];
    let file = TempFile::new(&lines.join("\n"));
    let output = shippy(nats.url(), &["create", file.path(), "-o", "table"]).await;
    assert!(!output.status.success());
    let summary = String::from_utf8(output.stdout.clone()).unwrap();
    let summary: Vec<&str> = summary.lines().collect();
    assert!(summary[0].starts_with("created 2 of 5 consignments in "), "{summary:?}");
    assert_eq!(summary[1], "failed 3:");
    // A failed create by its code and first clause, so that alike failures count together.
    assert_eq!(summary[2], "       2 × 404 no vessel available for 1 container weighing 10000000 kg", "{summary:?}");
    assert!(summary[3].starts_with("       1 × line 3: weight: EOF while parsing"), "{summary:?}");
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    assert_eq!(stderr, "shippy: 3 of 5 consignments not created\n");

    // JSON Lines on stdin.
    let stdin = format!("{}\n{}\n", consignment("stdin 1", 5), consignment("stdin 2", 5));
    let created = json_lines(&shippy_with_stdin(nats.url(), &["create", "-"], &stdin).await);
    assert_eq!(created.len(), 2);
    assert_eq!(created[1]["consignment"]["description"], "stdin 2");

    // One consignment on stdin is a single create, printed as ever.
    let one = json(&shippy_with_stdin(nats.url(), &["create", "-"], &consignment("alone", 5).to_string()).await);
    assert_eq!(one["consignment"]["description"], "alone");

    let listed = json_lines(&shippy(nats.url(), &["list"]).await);
    assert_eq!(listed.len(), 20 + 2 + 2 + 1);

    consignments.stop().await.unwrap();
    vessels.stop().await.unwrap();
}

/// The figures row of `scenario` in a bench table, split into cells.
fn bench_row<'a>(table: &'a str, scenario: &str) -> Vec<&'a str> {
    let row = table.lines().find(|line| line.starts_with(&format!("{scenario} "))).unwrap_or_else(|| panic!("{table}"));
    row.split_whitespace().collect()
}

#[tokio::test]
async fn bench_measures_every_scenario_against_raw() {
    let nats = Nats::start().await;
    let (vessels, consignments) = spawn_workers(&nats).await;

    // Closed loop, every scenario, a table: every figure, and the ratios to raw.
    let table = stdout(&shippy(nats.url(), &["bench", "all", "--duration", "300ms", "--warmup", "100ms"]).await);
    assert!(
        table.starts_with("shippy bench: closed loop, 16 clients in flight, 300ms per scenario after 100ms warm-up")
    );
    let header = table.lines().find(|line| line.starts_with("SCENARIO")).unwrap();
    assert_eq!(
        header.split("  ").filter(|cell| !cell.is_empty()).map(str::trim).collect::<Vec<_>>(),
        ["SCENARIO", "SUBJECT", "REQ/S", "P50", "P90", "P99", "P99.9", "MAX", "ERRORS", "REQ/S VS RAW", "P50 VS RAW"]
    );
    for (scenario, subject) in
        [("raw", "_SHIPPY.bench.echo."), ("find", "vessel.find_available"), ("create", "consignment.create")]
    {
        let row = bench_row(&table, scenario);
        assert_eq!(row.len(), 11, "{table}");
        assert!(row[1].starts_with(subject), "{table}");
        assert!(row[2].parse::<f64>().unwrap() > 0.0, "{table}");
        for latency in &row[3..8] {
            assert!(latency.ends_with("µs") || latency.ends_with("ms") || latency.ends_with('s'), "{table}");
        }
        assert_eq!(row[8], "0", "no errors: {table}");
        assert!(row[9].ends_with('x') && row[10].ends_with('x'), "{table}");
    }
    assert_eq!(bench_row(&table, "raw")[9..], ["1.00x", "1.00x"]);

    // Open loop, JSON, scenarios named one by one.
    let output = shippy(
        nats.url(),
        &["bench", "raw", "find", "create", "--rate", "200", "--duration", "500ms", "--warmup", "0s", "--json"],
    )
    .await;
    let report = json(&output);
    assert_eq!(report["mode"], "open");
    assert_eq!(report["rate"], 200);
    let scenarios = report["scenarios"].as_array().unwrap();
    assert_eq!(
        scenarios.iter().map(|s| s["scenario"].as_str().unwrap()).collect::<Vec<_>>(),
        ["raw", "find", "create"]
    );
    for scenario in scenarios {
        // 200 requests a second for half a second, all on schedule.
        assert!((90..=110).contains(&scenario["ok"].as_u64().unwrap()), "{scenario}");
        assert_eq!(scenario["errors"], json!({}));
        for figure in ["p50", "p90", "p99", "p99.9", "max"] {
            assert!(scenario["latency_us"][figure].as_u64().unwrap() > 0, "{figure}: {scenario}");
        }
        assert!(scenario["vs_raw"]["throughput"].as_f64().unwrap() > 0.0, "{scenario}");
        assert!(scenario["vs_raw"]["p50"].as_f64().unwrap() > 0.0, "{scenario}");
    }

    // Without raw in the run there is nothing to compare with.
    let table = stdout(
        &shippy(nats.url(), &["bench", "find", "--clients", "2", "--duration", "100ms", "--warmup", "0s"]).await,
    );
    assert_eq!(bench_row(&table, "find")[9..], ["-", "-"]);

    consignments.stop().await.unwrap();
    vessels.stop().await.unwrap();
}

#[tokio::test]
async fn bench_http_create_goes_through_the_gateway_against_create() {
    let nats = Nats::start().await;
    let (vessels, consignments) = spawn_workers(&nats).await;
    // Its rate limit above the bench's rate, as a bench's gateway must have it.
    let mut config = gateway::Config::new(nats.url());
    config.rate_per_second = std::num::NonZeroU32::new(1_000_000).unwrap();
    config.rate_burst = std::num::NonZeroU32::new(1_000_000).unwrap();
    let gateway = Gateway::start(config).await;
    let token = [("SHIPPY_GATEWAY_TOKEN", GATEWAY_TOKEN)];
    let (url, base) = (nats.url(), gateway.base.as_str());
    let bench = |args: &'static [&'static str]| async move {
        shippy_with(url, &token, &[&["bench"], args, &["--gateway", base]].concat(), "").await
    };

    // A table: http-create measured like the others, set against raw and create.
    let table = stdout(
        &bench(&["raw", "create", "http-create", "--clients", "2", "--duration", "300ms", "--warmup", "100ms"]).await,
    );
    let row = bench_row(&table, "http-create");
    assert_eq!(row[1..3], ["POST", "/v1/consignments"], "{table}");
    assert!(row[3].parse::<f64>().unwrap() > 0.0, "{table}");
    assert_eq!(row[9], "0", "no errors: {table}");
    assert!(row[10].ends_with('x') && row[11].ends_with('x'), "{table}");
    let against = table.lines().find(|line| line.starts_with("http-create against create")).expect(&table);
    assert!(against.contains(": p50 ") && against.ends_with('x'), "{against}");

    // JSON: the ratio to create on http-create only.
    let report = json(
        &bench(&["create", "http-create", "--rate", "100", "--duration", "300ms", "--warmup", "0s", "--json"]).await,
    );
    let scenarios = report["scenarios"].as_array().unwrap();
    assert_eq!(scenarios[0]["scenario"], "create");
    assert!(scenarios[0].get("vs_create").is_none(), "{report}");
    assert_eq!((&scenarios[1]["scenario"], &scenarios[1]["errors"]), (&json!("http-create"), &json!({})));
    assert!((20..=40).contains(&scenarios[1]["ok"].as_u64().unwrap()), "{report}");
    assert!(scenarios[1]["vs_create"]["p50"].as_f64().unwrap() > 0.0, "{report}");
    // Each create, over NATS or through the gateway, is stored on the bench's vessel.
    let stored = json_lines(&shippy(nats.url(), &["list", "--vessel", "bench"]).await).len();
    let answered = scenarios.iter().map(|scenario| scenario["ok"].as_u64().unwrap()).sum::<u64>();
    assert!(u64::try_from(stored).unwrap() >= answered, "{stored} stored, {answered} answered");

    // A wrong token stops the bench at once, saying where the token comes from.
    let output = shippy_with(
        nats.url(),
        &[("SHIPPY_GATEWAY_TOKEN", "wrong")],
        &["bench", "http-create", "--gateway", &gateway.base, "--duration", "100ms"],
        "",
    )
    .await;
    assert_eq!(
        failure(&output),
        "shippy: http-create: 401 invalid token; SHIPPY_GATEWAY_TOKEN: `shippy auth token DIR` prints the token"
    );
    // No token: refused before anything is sent.
    let output = shippy(nats.url(), &["bench", "http-create"]).await;
    assert_eq!(
        failure(&output),
        "shippy: http-create needs the gateway's API token: set SHIPPY_GATEWAY_TOKEN (`shippy auth token DIR` prints it)"
    );
    assert_eq!(output.status.code(), Some(2));
    // No gateway there: the cause, at once.
    let output = shippy_with(
        nats.url(),
        &token,
        &["bench", "http-create", "--gateway", "http://127.0.0.1:1", "--duration", "100ms"],
        "",
    )
    .await;
    let said = failure(&output);
    assert!(said.starts_with("shippy: http-create: POST http://127.0.0.1:1/v1/consignments: "), "{said}");
    assert!(said.to_lowercase().contains("refused"), "{said}");
    gateway.stop().await;

    // A gateway whose rate limit is below the bench's rate: its 429s are counted, and the report says why.
    let mut config = gateway::Config::new(nats.url());
    config.rate_per_second = std::num::NonZeroU32::new(1).unwrap();
    config.rate_burst = std::num::NonZeroU32::new(2).unwrap();
    let limited = Gateway::start(config).await;
    let table = stdout(
        &shippy_with(
            nats.url(),
            &token,
            &[
                "bench",
                "http-create",
                "--gateway",
                &limited.base,
                "--rate",
                "50",
                "--duration",
                "200ms",
                "--warmup",
                "0s",
            ],
            "",
        )
        .await,
    );
    assert!(table.contains("http-create errors: "), "{table}");
    assert!(table.contains(" × 429 too many requests"), "{table}");
    assert!(table.contains("raise its GATEWAY_RATE_PER_SECOND and GATEWAY_RATE_BURST"), "{table}");
    limited.stop().await;

    consignments.stop().await.unwrap();
    vessels.stop().await.unwrap();
}

#[tokio::test]
async fn bench_refuses_what_it_cannot_honour() {
    let nats = Nats::start().await;
    for (args, reason) in [
        (&["--clients", "0"][..], "shippy: --clients must be at least 1"),
        (
            &["--clients", "100000"],
            "shippy: --clients 100000 is more than 1024, the most one connection keeps in flight; run several benches",
        ),
        (&["--rate", "0"], "shippy: --rate must be at least 1 request a second"),
        (
            &["--rate", "10000000"],
            "shippy: --rate 10000000 is more than 50000 requests a second, the most one process schedules on time",
        ),
        (&["--duration", "0s"], "shippy: --duration 0s is shorter than 100ms, too short for tail latencies"),
        (&["--duration", "2h"], "shippy: --duration 2h is longer than 10m; a bench must end by itself"),
        (&["--warmup", "1h"], "shippy: --warmup 1h is longer than 1m"),
    ] {
        let output = shippy(nats.url(), &[&["bench"], args].concat()).await;
        assert_eq!(failure(&output), reason);
        // Bad arguments, as those clap refuses: exit status 2.
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
    // Refused before NATS is asked for anything.
    let output = shippy("nats://127.0.0.1:1", &["bench", "--clients", "0"]).await;
    assert_eq!(failure(&output), "shippy: --clients must be at least 1");
    assert_eq!(output.status.code(), Some(2));

    // A scenario with no service behind it stops the bench at once, naming it.
    let output = shippy(nats.url(), &["bench", "find", "--duration", "100ms"]).await;
    assert_eq!(failure(&output), "shippy: find: no service is listening on vessel.find_available");
    // A failure that is not the arguments': exit status 1.
    assert_eq!(output.status.code(), Some(1));

    // Arguments clap refuses: exit status 2 and a usage message.
    for args in [
        &["bench", "--clients", "4", "--rate", "10"][..],
        &["bench", "--duration", "soon"],
        &["create", "--concurrency", "0"],
        &["create", "--retry-for", "soon"],
    ] {
        let output = shippy(nats.url(), args).await;
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("error:"), "{args:?}");
    }
}

#[tokio::test]
async fn completions_and_examples() {
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout(&shippy("nats://127.0.0.1:1", &["completions", shell]).await);
        assert!(script.contains("shippy") && script.contains("find-vessel") && script.contains("bench"), "{shell}");
    }
    for command in ["create", "list", "vessels", "find-vessel", "bench", "completions"] {
        let help = stdout(&shippy("nats://127.0.0.1:1", &[command, "--help"]).await);
        assert!(help.contains(&format!("Examples:\n  shippy {command}")), "{command}: {help}");
    }
}

#[tokio::test]
async fn get_paged_list_watch_and_idempotency_keys() {
    let nats = Nats::start().await;
    let (vessels, consignments) = spawn_workers(&nats).await;

    // The same key twice: one consignment, the same reply.
    let first = json(&shippy(nats.url(), &["-o", "json", "create", "--idempotency-key", "order-7"]).await);
    let again = json(&shippy(nats.url(), &["-o", "json", "create", "--idempotency-key", "order-7"]).await);
    assert_eq!(first, again);
    // Without a key each create is its own: five consignments in all.
    for _ in 0..4 {
        json(&shippy(nats.url(), &["-o", "json", "create"]).await);
    }
    let id = first["consignment"]["id"].as_str().unwrap();

    // A consignment prints one way, got or listed: `get ID | jq .vessel_id` works.
    let got = json(&shippy(nats.url(), &["-o", "json", "get", id]).await);
    assert_eq!(got, first["consignment"]);
    assert_eq!(got["vessel_id"], "vessel001");
    let missing = failure(&shippy(nats.url(), &["get", "no-such-id"]).await);
    assert_eq!(missing, "shippy: no such consignment (code 404)");

    // Pages of two are followed to the end, oldest first.
    let listed = json_lines(&shippy(nats.url(), &["-o", "json", "list", "--page-size", "2"]).await);
    assert_eq!(listed.len(), 5);
    assert_eq!(listed[0], got);
    let on_vessel002 = json_lines(&shippy(nats.url(), &["-o", "json", "list", "--vessel", "vessel002"]).await);
    assert_eq!(on_vessel002.len(), 2, "vessel001 takes three seed consignments, vessel002 the rest");
    let of_nobody = json_lines(&shippy(nats.url(), &["-o", "json", "list", "--user", "nobody"]).await);
    assert!(of_nobody.is_empty());

    // Every event from the start, one per consignment.
    let events = json_lines(&shippy(nats.url(), &["-o", "json", "watch", "--all", "--count", "5"]).await);
    assert_eq!(events, listed);

    let fleet = stdout(&shippy(nats.url(), &["-o", "table", "vessels"]).await);
    let header: Vec<&str> = fleet.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header[header.len() - 2..], ["BOOKED", "REMAINING"], "{fleet}");
    assert!(fleet.contains("9 ctr, 165000 kg"), "vessel001 booked by three: {fleet}");

    consignments.stop().await.unwrap();
    vessels.stop().await.unwrap();
}
