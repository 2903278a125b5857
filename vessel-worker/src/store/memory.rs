//! [`FleetLog`] in memory, for tests and fuzzing without NATS: each vessel added is
//! taken into the fleet projection at once, as a follower of the stream would.

use std::sync::{Arc, Mutex};

use shared::{model::NewVessel, projection::Projection, store::Event, subjects::vessel};

use super::{FleetLog, StoreError};
use crate::fleet::Fleet;

/// The fleet's events in memory, feeding `fleet`.
#[derive(Debug)]
pub struct MemoryLog {
    fleet: Arc<Projection<Fleet>>,
    /// Vessel ids added, and the last sequence.
    appended: Mutex<(std::collections::HashSet<String>, u64)>,
}

impl MemoryLog {
    /// A log feeding `fleet`, empty.
    pub fn new(fleet: Arc<Projection<Fleet>>) -> Self {
        Self { fleet, appended: Mutex::default() }
    }
}

impl FleetLog for MemoryLog {
    async fn add_vessel(&self, added: &NewVessel) -> Result<Option<u64>, StoreError> {
        let event = {
            let mut appended = self.appended.lock().expect("never poisoned");
            if !appended.0.insert(added.id.clone()) {
                return Ok(None);
            }
            appended.1 += 1;
            let payload = shared::store::encode(added);
            Event { sequence: appended.1, subject: vessel::added_event(&added.id), time_ms: 0, payload }
        };
        self.fleet.apply(std::slice::from_ref(&event));
        Ok(Some(event.sequence))
    }

    async fn last_sequence(&self) -> Result<u64, StoreError> {
        Ok(self.appended.lock().expect("never poisoned").1)
    }
}
