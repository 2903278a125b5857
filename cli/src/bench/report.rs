//! The figures of a bench run: a table for people, JSON for machines.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::{
    Scenario,
    lag::Lag,
    load::{Load, Samples, Window},
};
use crate::output::{Kind, render, table};

/// One scenario's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub scenario: &'static str,
    pub subject: String,
    /// Successful replies.
    pub ok: u64,
    /// Failed requests by kind: `timeout`, `no responders`, `429 too many requests`,
    /// `404 no vessel available for 3 containers weighing 55000 kg` (over NATS or HTTP alike), ...
    pub errors: BTreeMap<String, u64>,
    /// Successful replies a second over the measured window.
    pub throughput: f64,
    /// Latency of the successful replies, in microseconds.
    pub latency_us: Latency,
    /// Throughput and p50 as a ratio to `raw` in the same run; absent when `raw` did not run.
    pub vs_raw: Option<Ratio>,
    /// `http-create` only: throughput and p50 as a ratio to `create` (the same
    /// create over NATS) in the same run, when `create` ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_create: Option<Ratio>,
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    #[serde(rename = "p99.9")]
    pub p99_9: u64,
    pub max: u64,
}

impl Latency {
    /// The percentiles of `histogram` (all zero when it is empty).
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let at = |quantile| if histogram.is_empty() { 0 } else { histogram.value_at_quantile(quantile) };
        Self { p50: at(0.5), p90: at(0.9), p99: at(0.99), p99_9: at(0.999), max: histogram.max() }
    }
}

/// A scenario against another of the same run (`raw`, or `create` for
/// `http-create`): throughput as a fraction of the other's, p50 as a multiple of it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Ratio {
    pub throughput: f64,
    pub p50: f64,
}

impl Ratio {
    /// `outcome` against `base`; `None` when `base` has no figures to divide by.
    #[expect(clippy::cast_precision_loss, reason = "latencies in µs stay far below 2^52")]
    fn of(outcome: &Outcome, base: &Outcome) -> Option<Self> {
        (base.throughput > 0.0 && base.latency_us.p50 > 0).then(|| Self {
            throughput: outcome.throughput / base.throughput,
            p50: outcome.latency_us.p50 as f64 / base.latency_us.p50 as f64,
        })
    }
}

impl Outcome {
    #[expect(clippy::cast_precision_loss, reason = "request counts stay far below 2^52")]
    pub fn new(scenario: &'static str, subject: String, samples: &Samples, window: Window) -> Self {
        let histogram = &samples.latency;
        Self {
            scenario,
            subject,
            ok: histogram.len(),
            errors: samples.errors.clone(),
            throughput: histogram.len() as f64 / window.duration.as_secs_f64(),
            latency_us: Latency::of(histogram),
            vs_raw: None,
            vs_create: None,
        }
    }

    /// How many requests failed.
    pub fn failures(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// A whole run: how it loaded the services and what each scenario measured.
#[derive(Debug, Serialize)]
pub struct Report {
    pub nats_url: String,
    /// `closed` (with `clients`) or `open` (with `rate`).
    pub mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clients: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<u32>,
    pub warmup_ms: u128,
    pub duration_ms: u128,
    pub scenarios: Vec<Outcome>,
    /// How far another follower of the event stream was behind the creates' replies
    /// during `create` ([`super::lag`]); absent when `create` did not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow_lag: Option<Lag>,
}

impl Report {
    pub fn new(
        nats_url: &str,
        load: Load,
        window: Window,
        mut scenarios: Vec<Outcome>,
        follow_lag: Option<Lag>,
    ) -> Self {
        let named = |name: Scenario| scenarios.iter().find(|outcome| outcome.scenario == name.name()).cloned();
        let (raw, create) = (named(Scenario::Raw), named(Scenario::Create));
        for outcome in &mut scenarios {
            outcome.vs_raw = raw.as_ref().and_then(|raw| Ratio::of(outcome, raw));
            if outcome.scenario == Scenario::HttpCreate.name() {
                outcome.vs_create = create.as_ref().and_then(|create| Ratio::of(outcome, create));
            }
        }
        let (mode, clients, rate) = match load {
            Load::Closed { clients } => ("closed", Some(clients), None),
            Load::Open { rate } => ("open", None, Some(rate)),
        };
        Self {
            nats_url: nats_url.to_owned(),
            mode,
            clients,
            rate,
            warmup_ms: window.warmup.as_millis(),
            duration_ms: window.duration.as_millis(),
            scenarios,
            follow_lag,
        }
    }

    /// The report as people read it: what was run, a table, then any errors by kind.
    pub fn to_table(&self) -> String {
        let load = match (self.clients, self.rate) {
            (Some(clients), _) => format!("closed loop, {clients} clients in flight"),
            (_, Some(rate)) => format!("open loop, {rate} requests/s on schedule"),
            _ => unreachable!("a report has clients or a rate"),
        };
        let mut text = format!(
            "shippy bench: {load}, {} per scenario after {} warm-up, {}\n\n",
            humantime::format_duration(Duration::from_millis(u64::try_from(self.duration_ms).unwrap_or(u64::MAX))),
            humantime::format_duration(Duration::from_millis(u64::try_from(self.warmup_ms).unwrap_or(u64::MAX))),
            self.nats_url,
        );
        let columns = [
            ("SCENARIO", Kind::Text),
            ("SUBJECT", Kind::Text),
            ("REQ/S", Kind::Number),
            ("P50", Kind::Number),
            ("P90", Kind::Number),
            ("P99", Kind::Number),
            ("P99.9", Kind::Number),
            ("MAX", Kind::Number),
            ("ERRORS", Kind::Number),
            ("REQ/S VS RAW", Kind::Number),
            ("P50 VS RAW", Kind::Number),
        ];
        let rows = self.scenarios.iter().map(|outcome| {
            let latency = outcome.latency_us;
            let ratio = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.2}x"));
            vec![
                outcome.scenario.to_owned(),
                outcome.subject.clone(),
                format!("{:.0}", outcome.throughput),
                micros(latency.p50),
                micros(latency.p90),
                micros(latency.p99),
                micros(latency.p99_9),
                micros(latency.max),
                outcome.failures().to_string(),
                ratio(outcome.vs_raw.map(|vs| vs.throughput)),
                ratio(outcome.vs_raw.map(|vs| vs.p50)),
            ]
        });
        text.push_str(&render(&table(&columns, rows)));
        text.push('\n');
        for outcome in &self.scenarios {
            if let Some(vs) = outcome.vs_create {
                let _ = writeln!(
                    text,
                    "{} against create (the same create through the gateway, and over NATS): p50 {:.2}x, req/s {:.2}x",
                    outcome.scenario, vs.p50, vs.throughput,
                );
            }
        }
        for outcome in &self.scenarios {
            for (kind, count) in &outcome.errors {
                let _ = writeln!(text, "{} errors: {count} × {kind}", outcome.scenario);
            }
            if outcome.errors.keys().any(|kind| kind.starts_with("429 ")) {
                let _ = writeln!(
                    text,
                    "{}: the gateway's per-token rate limit refused requests; raise its GATEWAY_RATE_PER_SECOND \
                     and GATEWAY_RATE_BURST above the bench's rate",
                    outcome.scenario,
                );
            }
        }
        if let Some(lag) = &self.follow_lag {
            let after_reply_us = lag.after_reply_us;
            let _ = writeln!(
                text,
                "follow lag (a create's reply → its event at another follower of the event stream; how stale a \
                 find through another instance can be), {} probes: p50 {} p99 {} max {}{}",
                lag.probes,
                micros(after_reply_us.p50),
                micros(after_reply_us.p99),
                micros(after_reply_us.max),
                if lag.unseen == 0 { String::new() } else { format!("; {} never seen", lag.unseen) },
            );
        }
        text
    }
}

/// A latency for people: `412µs`, `1.25ms`, `2.50s`.
#[expect(clippy::cast_precision_loss, reason = "latencies in µs stay far below 2^52")]
fn micros(us: u64) -> String {
    match us {
        0..1_000 => format!("{us}µs"),
        1_000..1_000_000 => format!("{:.2}ms", us as f64 / 1e3),
        _ => format!("{:.2}s", us as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_read_at_a_glance() {
        assert_eq!(micros(412), "412µs");
        assert_eq!(micros(1_250), "1.25ms");
        assert_eq!(micros(2_500_000), "2.50s");
    }
}
