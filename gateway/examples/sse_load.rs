//! Holds many `GET /v1/events` connections open against one running gateway and
//! reports the gateway's memory (RSS) as they grow, then checks that one event
//! reaches every connection. Loopback only; bounded by its arguments.
//!
//! `cargo run -p gateway --example sse_load -- ADDR TOKEN GATEWAY_PID 1000,5000,10000`
//! (raise `ulimit -n` above twice the largest count first; the gateway needs a rate
//! limit above it: `GATEWAY_RATE_PER_SECOND`, `GATEWAY_RATE_BURST`).

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

const SEED: &str = include_str!("../../consignment.json");

/// The gateway's resident memory, in MiB, from `/proc/<pid>/status`.
fn rss_mib(pid: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the gateway's /proc status");
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).expect("VmRSS");
    let kib: u32 = line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).expect("VmRSS in kB");
    f64::from(kib) / 1024.0
}

/// One open event stream, its response head read.
async fn open(addr: &str, token: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect to the gateway");
    let request = format!(
        "GET /v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.expect("the response head");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&head));
    stream
}

/// Reads until the stream has carried an event.
async fn event(stream: &mut TcpStream) -> bool {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let Ok(read) = stream.read(&mut buffer).await else { return false };
        if read == 0 {
            return false;
        }
        seen.extend_from_slice(&buffer[..read]);
        if seen.windows(26).any(|window| window == b"event: consignment.created") {
            return true;
        }
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, token, pid, steps] = args.as_slice() else {
        panic!("usage: sse_load ADDR TOKEN GATEWAY_PID COUNT,COUNT,...");
    };
    let steps: Vec<usize> = steps.split(',').map(|count| count.parse().expect("a count")).collect();
    println!("connections  gateway RSS (MiB)");
    println!("{:>11}  {:>8.1}", 0, rss_mib(pid));
    let mut streams = Vec::new();
    for &count in &steps {
        while streams.len() < count {
            streams.push(open(addr, token).await);
        }
        // Let the gateway settle what the connections cost before reading it.
        tokio::time::sleep(Duration::from_secs(1)).await;
        println!("{count:>11}  {:>8.1}", rss_mib(pid));
    }
    let http = reqwest::Client::new();
    let started = Instant::now();
    let created = http
        .post(format!("http://{addr}/v1/consignments"))
        .bearer_auth(token)
        .header("Content-Type", "application/json")
        .body(SEED)
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    let mut reached = 0;
    for stream in &mut streams {
        if tokio::time::timeout(Duration::from_secs(60), event(stream)).await.unwrap_or(false) {
            reached += 1;
        }
    }
    println!(
        "one create reached {reached} of {} connections; the last read {:?} after the create",
        streams.len(),
        started.elapsed()
    );
    println!("gateway RSS after the event: {:.1} MiB", rss_mib(pid));
}
