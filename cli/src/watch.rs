//! `shippy watch`: following the `consignment.created.<vessel_id>` events, one line
//! per consignment, in `shippy-feed`, the mirror of the event stream kept for clients.

use std::io::Write;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::DeliverPolicy, stream::ConsumerErrorKind};
use futures::StreamExt as _;
use shared::{
    ledger::{EntryView, Ledger},
    model::{ConsignmentsCreated, CreatedConsignment},
    store::{CONSUMER_INACTIVE_LIMIT, FEED_STREAM, MAX_CONSUMERS},
    subjects::consignment,
};

use crate::{
    client::Services,
    output::{self, Format},
};

/// What to follow: from the start (`all`) or from now, how many (`count`), and the
/// workers' idempotency window (`window`), by which repeats of a key are told apart.
#[derive(Debug, Clone, Copy)]
pub struct Follow {
    pub all: bool,
    pub count: Option<u64>,
    pub window: std::time::Duration,
}

/// Prints each consignment as its event arrives (from the first stored with `all`,
/// else from now on), until `count` have been printed or the connection ends.
///
/// A void entry (a repeat of an idempotency key that two instances wrote at once,
/// `shared::ledger`) is not printed: the watch folds a ledger of its own, so with
/// `all` it prints exactly the stored consignments; from now on, a repeat of a key
/// taken before the watch began could show once.
pub async fn follow(services: &Services, follow: Follow, format: Format, out: &mut impl Write) -> anyhow::Result<()> {
    let Follow { all, count, window } = follow;
    let js = jetstream::new(services.nats().clone());
    let stream = js.get_stream(FEED_STREAM).await.with_context(|| format!("cannot open the stream {FEED_STREAM}"))?;
    // An ordered consumer: ephemeral (created without a name, the one way the client
    // role may create consumers), in stream order, no acknowledgements; the server
    // deletes it once it has had no subscriber for its inactive threshold (async-nats
    // gives ordered consumers 30 s, the stream's limit `CONSUMER_INACTIVE_LIMIT`).
    let consumer = stream
        .create_consumer(jetstream::consumer::push::OrderedConfig {
            deliver_subject: services.nats().new_inbox(),
            filter_subject: consignment::CREATED_EVENTS.to_owned(),
            deliver_policy: if all { DeliverPolicy::All } else { DeliverPolicy::New },
            ..Default::default()
        })
        .await
        .map_err(|error| {
            let at_limit = matches!(error.kind(), ConsumerErrorKind::JetStream(error)
                if error.error_code() == jetstream::ErrorCode::MAXIMUM_CONSUMERS_LIMIT);
            if at_limit {
                anyhow::anyhow!(
                    "cannot follow the events: the stream {FEED_STREAM} has as many followers as it allows \
                     (at most {MAX_CONSUMERS}); a follower's place is freed within {}s of its end, try again later",
                    CONSUMER_INACTIVE_LIMIT.as_secs()
                )
            } else {
                anyhow::Error::new(error).context("cannot follow the events")
            }
        })?;
    let mut events = consumer.messages().await.context("cannot follow the events")?;
    let mut ledger = Ledger::new(window);
    let mut printed = 0;
    while count.is_none_or(|count| printed < count) {
        let Some(event) = events.next().await else { break };
        let event = event.context("following the events")?;
        let info = event.info().map_err(|error| anyhow::anyhow!("following the events: {error}"))?;
        let (sequence, time_ms) = (info.stream_sequence, info.published.unix_timestamp_nanos() / 1_000_000);
        let created: ConsignmentsCreated =
            serde_json::from_slice(&event.payload).context("an event that is not a consignment.created event")?;
        let vessel_id = consignment::created_vessel(&event.subject).unwrap_or_default();
        let views: Vec<EntryView> = created.consignments.iter().map(EntryView::from).collect();
        let counted = ledger.apply(sequence, u64::try_from(time_ms).unwrap_or(0), vessel_id, &views);
        for (entry, counts) in created.consignments.into_iter().zip(counted) {
            if !counts {
                continue;
            }
            if count.is_some_and(|count| printed >= count) {
                break;
            }
            let consignment = entry.consignment;
            match format {
                Format::Table => {
                    writeln!(out, "{}", output::created_line(&CreatedConsignment { created: true, consignment }))?;
                }
                Format::Json => output::json_lines(out, std::slice::from_ref(&consignment))?,
            }
            printed += 1;
        }
        out.flush()?;
    }
    Ok(())
}
