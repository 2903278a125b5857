//! `shippy watch`: following `consignment.created` in its durable stream.

use std::io::Write;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::DeliverPolicy, stream::ConsumerErrorKind};
use futures::StreamExt as _;
use shared::{
    model::{Consignment, CreatedConsignment},
    store::{CONSUMER_INACTIVE_LIMIT, EVENTS_STREAM, MAX_CONSUMERS},
};

use crate::{
    client::Services,
    output::{self, Format},
};

/// Prints each event as it arrives (from the first stored with `all`, else from
/// now on), until `count` have been printed or the connection ends.
pub async fn follow(
    services: &Services,
    all: bool,
    count: Option<u64>,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let js = jetstream::new(services.nats().clone());
    let stream =
        js.get_stream(EVENTS_STREAM).await.with_context(|| format!("cannot open the stream {EVENTS_STREAM}"))?;
    // An ordered consumer: ephemeral (created without a name, the one way the client
    // role may create consumers), in stream order, no acknowledgements; the server
    // deletes it once it has had no subscriber for its inactive threshold (async-nats
    // gives ordered consumers 30 s, the stream's limit `CONSUMER_INACTIVE_LIMIT`).
    let consumer = stream
        .create_consumer(jetstream::consumer::push::OrderedConfig {
            deliver_subject: services.nats().new_inbox(),
            deliver_policy: if all { DeliverPolicy::All } else { DeliverPolicy::New },
            ..Default::default()
        })
        .await
        .map_err(|error| {
            let at_limit = matches!(error.kind(), ConsumerErrorKind::JetStream(error)
                if error.error_code() == jetstream::ErrorCode::MAXIMUM_CONSUMERS_LIMIT);
            if at_limit {
                anyhow::anyhow!(
                    "cannot follow the events: the stream {EVENTS_STREAM} has as many followers as it allows \
                     (at most {MAX_CONSUMERS}); a follower's place is freed within {}s of its end, try again later",
                    CONSUMER_INACTIVE_LIMIT.as_secs()
                )
            } else {
                anyhow::Error::new(error).context("cannot follow the events")
            }
        })?;
    let mut events = consumer.messages().await.context("cannot follow the events")?;
    let mut printed = 0;
    while count.is_none_or(|count| printed < count) {
        let Some(event) = events.next().await else { break };
        let event = event.context("following the events")?;
        let consignment: Consignment =
            serde_json::from_slice(&event.payload).context("an event that is not a consignment")?;
        match format {
            Format::Table => {
                writeln!(out, "{}", output::created_line(&CreatedConsignment { created: true, consignment }))?;
            }
            Format::Json => output::json_lines(out, std::slice::from_ref(&consignment))?,
        }
        out.flush()?;
        printed += 1;
    }
    Ok(())
}
