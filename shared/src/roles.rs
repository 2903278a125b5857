//! The NATS users of a shippy deployment: one per role, each with its own inbox prefix.
//!
//! What each role may publish and subscribe is enforced by the server and written in
//! `nats.conf` (README, "Security"); this module names the roles once, for the
//! processes that connect as them and for `shippy auth init`, which makes their keys.
//!
//! Every role receives its replies on an inbox prefix of its own
//! (`custom_inbox_prefix`), and `nats.conf` lets no other user subscribe to it: a
//! client cannot read a worker's replies, nor another role's, by subscribing to
//! `_INBOX.>`.

/// One NATS user of the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Role {
    /// The role's name: its directory under `shippy auth init`'s output.
    pub name: &'static str,
    /// The prefix of every inbox the role's connections make; `nats.conf` lets only
    /// this role subscribe below it.
    pub inbox_prefix: &'static str,
    /// The variable that holds the role's public nkey in the generated
    /// `users.conf`, which `nats.conf` includes and refers to.
    pub nkey_variable: &'static str,
}

/// The vessel-worker: serves `vessel.*` and appends the `vessel.added.*` events.
pub const VESSEL_WORKER: Role =
    Role { name: "vessel-worker", inbox_prefix: "_INBOX_vessel-worker", nkey_variable: "VESSEL_WORKER_NKEY" };

/// The consignment-worker: serves `consignment.*`, asks `vessel.find_available`,
/// and is the one publisher of the `consignment.created.*` events.
pub const CONSIGNMENT_WORKER: Role = Role {
    name: "consignment-worker",
    inbox_prefix: "_INBOX_consignment-worker",
    nkey_variable: "CONSIGNMENT_WORKER_NKEY",
};

/// People and programs using the services: the `shippy` CLI, `nats req`. May ask the
/// public endpoints and the `$SRV` verbs, and follow the `consignment.created.*` events.
pub const CLIENT: Role = Role { name: "client", inbox_prefix: "_INBOX_client", nkey_variable: "CLIENT_NKEY" };

/// The HTTP gateway: a client of the public endpoints on behalf of HTTP callers;
/// may ask them, follow and read back `shippy-feed` (one ordered consumer, direct
/// gets) for `GET /v1/events`, and gather `$SRV.STATS` for the dashboard.
pub const GATEWAY: Role = Role { name: "gateway", inbox_prefix: "_INBOX_gateway", nkey_variable: "GATEWAY_NKEY" };

/// Read-only monitoring: `nats micro ls|info|stats`, the `$SRV` verbs and nothing else.
pub const MONITOR: Role = Role { name: "monitor", inbox_prefix: "_INBOX_monitor", nkey_variable: "MONITOR_NKEY" };

/// Operators: the only role that may delete, purge or reconfigure the streams, or
/// delete an event, and run `shippy bench` (which serves an echo subject of its own).
pub const ADMIN: Role = Role { name: "admin", inbox_prefix: "_INBOX_admin", nkey_variable: "ADMIN_NKEY" };

/// Every role, in the order `users.conf` lists them.
pub const ALL: [Role; 6] = [VESSEL_WORKER, CONSIGNMENT_WORKER, CLIENT, GATEWAY, MONITOR, ADMIN];

/// The role named `name`.
pub fn named(name: &str) -> Option<Role> {
    ALL.into_iter().find(|role| role.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_prefixes_and_variables_are_distinct() {
        for (i, a) in ALL.iter().enumerate() {
            for b in &ALL[i + 1..] {
                assert_ne!(a.name, b.name);
                assert_ne!(a.nkey_variable, b.nkey_variable);
                // Neither prefix may cover the other's inboxes.
                assert!(!a.inbox_prefix.starts_with(b.inbox_prefix) && !b.inbox_prefix.starts_with(a.inbox_prefix));
            }
            assert_eq!(named(a.name), Some(*a));
            assert_eq!(a.inbox_prefix, format!("_INBOX_{}", a.name));
        }
    }
}
