//! `shippy watch`: following the `consignment.created.<vessel_id>` events in the
//! durable event stream, one line per consignment.

use std::io::Write;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::DeliverPolicy};
use futures::StreamExt as _;
use shared::{
    model::{ConsignmentsCreated, CreatedConsignment},
    store::EVENTS_STREAM,
    subjects::consignment,
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
    // An ordered consumer: in stream order, no acknowledgements, gone when this ends.
    let consumer = stream
        .create_consumer(jetstream::consumer::push::OrderedConfig {
            deliver_subject: services.nats().new_inbox(),
            filter_subject: consignment::CREATED_EVENTS.to_owned(),
            deliver_policy: if all { DeliverPolicy::All } else { DeliverPolicy::New },
            ..Default::default()
        })
        .await
        .context("cannot follow the events")?;
    let mut events = consumer.messages().await.context("cannot follow the events")?;
    let mut printed = 0;
    while count.is_none_or(|count| printed < count) {
        let Some(event) = events.next().await else { break };
        let event = event.context("following the events")?;
        let created: ConsignmentsCreated =
            serde_json::from_slice(&event.payload).context("an event that is not a consignment.created event")?;
        for entry in created.consignments {
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
