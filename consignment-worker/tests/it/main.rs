//! consignment-worker against a real NATS server: one test binary, a module per area.
//! (`tests/trace.rs` stays a binary of its own: it installs the process's tracing
//! subscriber, which would collect the spans of every other test here too.)

mod consignment_service;
mod durable_state;
mod graceful_shutdown;
mod micro_schema;
mod poison;
