//! The `shippy` binary and the roles of `nats.conf`, against a real NATS server: one
//! test binary, a module per area.

mod causes;
mod commands;
mod common;
mod fleet;
mod permissions;
