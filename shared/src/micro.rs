//! The ADR-32 micro service protocol, answered here rather than by async-nats.
//!
//! async-nats 0.51 counts `num_errors` and `last_error` only for replies sent down
//! its own error path, which sends an *empty* body; our error replies carry a JSON
//! body as well as the ADR-32 headers, so with async-nats's service every error
//! showed as `"num_errors": 0`. Its endpoint statistics cannot be updated from outside,
//! so this module keeps them and answers the discovery verbs itself:
//!
//! * `$SRV.PING`, `$SRV.INFO` and `$SRV.STATS`, each also at `$SRV.<VERB>.<name>` and
//!   `$SRV.<VERB>.<name>.<id>`, answered by every instance (plain subscriptions);
//! * the statistics of the endpoints, `<name>.<endpoint>`, which [`crate::service`]
//!   subscribes in the service's queue group and counts here ([`Registry::record`]).
//!
//! The replies follow the `io.nats.micro.v1.{ping,info,stats}_response` JSON schemas,
//! which a test checks them against.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::{Client, SubscribeError};
use futures::{StreamExt as _, stream::SelectAll};
use serde_json::{Value, json};

use crate::error::ServiceError;

const PING_TYPE: &str = "io.nats.micro.v1.ping_response";
const INFO_TYPE: &str = "io.nats.micro.v1.info_response";
const STATS_TYPE: &str = "io.nats.micro.v1.stats_response";
const VERBS: [Verb; 3] = [Verb::Ping, Verb::Info, Verb::Stats];

/// A discovery request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Ping,
    Info,
    Stats,
}

impl Verb {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ping => "PING",
            Self::Info => "INFO",
            Self::Stats => "STATS",
        }
    }
}

/// One instance of a service: who it is, its endpoints, and what they have served.
#[derive(Debug)]
pub(crate) struct Registry {
    name: &'static str,
    /// Unique per instance: a UUID without dashes.
    id: String,
    version: &'static str,
    description: &'static str,
    /// When the instance started, RFC 3339 in UTC.
    started: String,
    endpoints: Vec<Endpoint>,
}

#[derive(Debug)]
struct Endpoint {
    name: &'static str,
    subject: String,
    queue_group: &'static str,
    stats: Mutex<Stats>,
    /// Its metrics, while they are recorded.
    meter: Option<crate::meter::Endpoint>,
}

/// What one endpoint has served, as `$SRV.STATS` reports it.
#[derive(Debug, Default)]
struct Stats {
    requests: u64,
    errors: u64,
    /// `code:message` of the last error reply, the message in its header-safe form.
    last_error: String,
    processing: Duration,
}

/// Who a service is, as the discovery verbs report it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Identity {
    pub(crate) name: &'static str,
    pub(crate) version: &'static str,
    pub(crate) description: &'static str,
    pub(crate) queue_group: &'static str,
    pub(crate) endpoints: &'static [&'static str],
}

impl Registry {
    pub(crate) fn new(identity: Identity) -> Self {
        let Identity { name, version, description, queue_group, endpoints } = identity;
        let endpoints = endpoints
            .iter()
            .map(|&endpoint| Endpoint {
                name: endpoint,
                subject: format!("{name}.{endpoint}"),
                queue_group,
                stats: Mutex::default(),
                meter: crate::meter::Endpoint::new(name, endpoint),
            })
            .collect();
        Self {
            name,
            id: uuid::Uuid::new_v4().simple().to_string(),
            version,
            description,
            started: rfc3339_now(),
            endpoints,
        }
    }

    /// The queue group of endpoint `index`.
    ///
    /// # Panics
    /// If `index` is not an endpoint of this service.
    pub(crate) fn queue_group(&self, index: usize) -> &'static str {
        self.endpoints[index].queue_group
    }

    /// The metrics of endpoint `index`, while they are recorded.
    ///
    /// # Panics
    /// If `index` is not an endpoint of this service.
    pub(crate) fn meter(&self, index: usize) -> Option<&crate::meter::Endpoint> {
        self.endpoints[index].meter.as_ref()
    }

    /// The subject and queue group of each endpoint, in endpoint order.
    pub(crate) fn endpoints(&self) -> impl Iterator<Item = (&str, &'static str)> {
        self.endpoints.iter().map(|endpoint| (endpoint.subject.as_str(), endpoint.queue_group))
    }

    /// Counts a request to endpoint `index` answered in `elapsed`, and the error reply if it was one.
    ///
    /// # Panics
    /// If `index` is not an endpoint of this service.
    pub(crate) fn record(&self, index: usize, elapsed: Duration, error: Option<&ServiceError>) {
        let mut stats = self.endpoints[index].stats.lock().expect("stats lock poisoned");
        stats.requests += 1;
        stats.processing += elapsed;
        if let Some(error) = error {
            stats.errors += 1;
            stats.last_error = format!("{}:{}", error.code, error.header_message());
        }
    }

    fn reply(&self, verb: Verb) -> Value {
        let (name, id, version) = (self.name, self.id.as_str(), self.version);
        match verb {
            Verb::Ping => json!({ "type": PING_TYPE, "name": name, "id": id, "version": version, "metadata": {} }),
            Verb::Info => {
                let endpoints: Vec<Value> = self
                    .endpoints
                    .iter()
                    .map(|e| json!({ "name": e.name, "subject": e.subject, "queue_group": e.queue_group, "metadata": {} }))
                    .collect();
                json!({
                    "type": INFO_TYPE, "name": name, "id": id, "version": version,
                    "description": self.description, "metadata": {}, "endpoints": endpoints,
                })
            }
            Verb::Stats => {
                let endpoints: Vec<Value> = self.endpoints.iter().map(Endpoint::stats).collect();
                json!({
                    "type": STATS_TYPE, "name": name, "id": id, "version": version,
                    "metadata": {}, "started": self.started, "endpoints": endpoints,
                })
            }
        }
    }
}

impl Endpoint {
    fn stats(&self) -> Value {
        let stats = self.stats.lock().expect("stats lock poisoned");
        let nanos = |duration: Duration| i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX);
        let average =
            u32::try_from(stats.requests).ok().filter(|&n| n > 0).map_or(Duration::ZERO, |n| stats.processing / n);
        json!({
            "name": self.name,
            "subject": self.subject,
            "queue_group": self.queue_group,
            "num_requests": stats.requests,
            "num_errors": stats.errors,
            "last_error": stats.last_error,
            "processing_time": nanos(stats.processing),
            "average_processing_time": nanos(average),
        })
    }
}

/// Answers `$SRV.PING|INFO|STATS` for `registry` on a task of its own until aborted.
pub(crate) async fn answer_verbs(
    client: &Client,
    registry: Arc<Registry>,
) -> Result<tokio::task::JoinHandle<()>, SubscribeError> {
    let mut requests = SelectAll::new();
    for verb in VERBS {
        let verb_name = verb.as_str();
        for subject in [
            format!("$SRV.{verb_name}"),
            format!("$SRV.{verb_name}.{}", registry.name),
            format!("$SRV.{verb_name}.{}.{}", registry.name, registry.id),
        ] {
            requests.push(client.subscribe(subject).await?.map(move |message| (verb, message)));
        }
    }
    let client = client.clone();
    Ok(tokio::spawn(async move {
        while let Some((verb, message)) = requests.next().await {
            let Some(reply) = message.reply else { continue };
            let body = serde_json::to_vec(&registry.reply(verb)).expect("JSON values always serialize");
            if let Err(error) = client.publish(reply, body.into()).await {
                tracing::warn!(%error, verb = verb.as_str(), "could not answer a service discovery request");
            }
        }
    }))
}

/// Now, as RFC 3339 in UTC with second precision: `2026-05-04T12:34:56Z`.
fn rfc3339_now() -> String {
    rfc3339(std::time::SystemTime::now())
}

fn rfc3339(time: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        let rfc3339 = |seconds| rfc3339(std::time::UNIX_EPOCH + Duration::from_secs(seconds));
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(rfc3339(4_102_444_800), "2100-01-01T00:00:00Z");
    }

    #[test]
    fn stats_count_errors_with_a_header_safe_last_error() {
        let registry = Registry::new(Identity {
            name: "svc",
            version: "1.2.3",
            description: "d",
            queue_group: "q",
            endpoints: &["a", "b"],
        });
        registry.record(1, Duration::from_millis(2), None);
        registry.record(1, Duration::from_millis(4), Some(&ServiceError::bad_request("a\nb")));
        let stats = registry.reply(Verb::Stats);
        assert_eq!(stats["endpoints"][0]["num_requests"], 0);
        let b = &stats["endpoints"][1];
        assert_eq!(
            (b["subject"].as_str(), b["num_requests"].as_u64(), b["num_errors"].as_u64()),
            (Some("svc.b"), Some(2), Some(1))
        );
        assert_eq!(b["last_error"], r"400:a\nb");
        assert_eq!(b["processing_time"], 6_000_000);
        assert_eq!(b["average_processing_time"], 3_000_000);
    }
}
