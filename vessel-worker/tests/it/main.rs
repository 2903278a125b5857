//! vessel-worker against a real NATS server: one test binary, a module per area.

mod poison;
mod shutdown;
mod vessel_service;
mod vessel_store;
