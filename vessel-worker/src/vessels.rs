//! The vessel service's operations, over the fleet projection and the fleet log.
//!
//! Reads (`find`, `list`) come from the [`Fleet`] in memory, kept current with the
//! event stream; writes (`add`) append to the stream and return once this
//! instance's projection has taken the write in, so that a vessel is listed and
//! found here as soon as it is added. A list first catches up with the stream's
//! last sequence as the server has it when asked ([`Projection::catch_up`]), so it
//! shows every write acknowledged before it, through any instance; a find does not
//! (it is on every create's path), unless it names a sequence.

use std::{sync::Arc, time::Duration};

use shared::{
    model::{ListedVessel, Load, NewVessel, Vessel},
    projection::{Behind, Projection},
};
use tokio_util::sync::DropGuard;

use crate::{
    fleet::{Fleet, FleetError, assign_id, validate},
    store::{FleetLog, StoreError},
};

/// How long a request waits for the projection to reach a sequence it must see.
const FRESHNESS: Duration = Duration::from_secs(2);

/// Why a vessel operation failed.
#[derive(Debug, thiserror::Error)]
pub enum VesselError {
    #[error(transparent)]
    Fleet(#[from] FleetError),
    #[error("the fleet is catching up with the event stream: {0}")]
    Behind(#[from] Behind),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Finds, adds and lists vessels.
#[derive(Debug)]
pub struct Vessels<L> {
    log: L,
    fleet: Arc<Projection<Fleet>>,
    /// Keeps the projection following the stream while the service lives.
    _following: Option<DropGuard>,
}

impl<L: FleetLog> Vessels<L> {
    /// Over `fleet`, kept current while `following` lives, adding to `log`.
    pub fn new(log: L, fleet: Arc<Projection<Fleet>>, following: Option<DropGuard>) -> Self {
        Self { log, fleet, _following: following }
    }

    /// The first vessel, in id order, with room for `load`, in a fleet that has taken
    /// in the event stream at least up to `sequence`, if given. Books nothing. None
    /// has room: [`FleetError::NoVesselAvailable`], saying what the fleet has left.
    #[tracing::instrument(level = "debug", skip(self), err(level = "debug"))]
    pub async fn find(&self, load: Load, sequence: Option<u64>) -> Result<Vessel, VesselError> {
        // Waiting is for what the stream holds, as the server answering says: a
        // sequence beyond it (made up, or seen on a node this one's server is behind)
        // is waited for only as far as the stream goes, rather than hold a request
        // for nothing. A create that is offered a full vessel this way asks again.
        if let Some(sequence) = sequence.filter(|&sequence| sequence > self.fleet.position()) {
            let last = self.log.last_sequence().await?;
            self.fleet.wait_for(sequence.min(last), FRESHNESS).await?;
        }
        Ok(self.fleet.read(|fleet| fleet.find(load))?)
    }

    /// Adds `vessel` to the fleet, with an assigned id if it has none; a vessel with
    /// its id exists already: [`FleetError::Duplicate`].
    #[tracing::instrument(level = "debug", skip_all, fields(vessel = %vessel.id), err(level = "debug"))]
    pub async fn add(&self, mut vessel: NewVessel) -> Result<Vessel, VesselError> {
        assign_id(&mut vessel);
        validate(&vessel)?;
        let sequence = self.log.add_vessel(&vessel).await?.ok_or_else(|| FleetError::Duplicate(vessel.id.clone()))?;
        self.fleet.wait_for(sequence, FRESHNESS).await?;
        tracing::info!(vessel = %vessel.id, sequence, "vessel added");
        Ok(vessel.into_vessel())
    }

    /// Adds each vessel of `fleet` whose id is not in the stream yet (several
    /// appends in flight at once); returns how many it added.
    pub async fn seed(log: &L, fleet: &[NewVessel]) -> Result<usize, StoreError> {
        use futures::{StreamExt as _, TryStreamExt as _};
        futures::stream::iter(fleet)
            .map(|vessel| log.add_vessel(vessel))
            .buffer_unordered(256)
            .try_fold(0, |added, sequence| async move { Ok(added + usize::from(sequence.is_some())) })
            .await
    }

    /// Up to `limit` vessels after id `after`, in id order, whose encoding takes at
    /// most `max_bytes` in all (at least one, so that paging always moves on), and
    /// whether more follow, as the stream stood when asked.
    #[tracing::instrument(level = "debug", skip(self), err(level = "debug"))]
    pub async fn list(
        &self,
        after: Option<&str>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<(Vec<ListedVessel>, bool), VesselError> {
        self.fleet.catch_up(self.log.last_sequence(), FRESHNESS).await?;
        let (mut page, mut more) = self.fleet.read(|fleet| fleet.page(after, limit));
        let mut bytes = 0;
        let fits = page
            .iter()
            .position(|vessel| {
                bytes += shared::codec::encode(vessel).len() + 1;
                bytes > max_bytes
            })
            .unwrap_or(page.len())
            .max(1);
        if fits < page.len() {
            page.truncate(fits);
            more = true;
        }
        Ok((page, more))
    }
}

/// The vessel service over its log in memory: no NATS.
#[cfg(test)]
mod tests {
    use shared::store::Event;

    use super::*;
    use crate::{fleet::default_fleet, store::MemoryLog};

    /// A fleet in memory and the service over it.
    fn service() -> (Vessels<MemoryLog>, Arc<Projection<Fleet>>) {
        let fleet = Projection::new(Fleet::new(Duration::from_secs(3600)));
        (Vessels::new(MemoryLog::new(Arc::clone(&fleet)), Arc::clone(&fleet), None), fleet)
    }

    /// Vessel v1: room for 3 containers, 100 kg.
    fn v1() -> NewVessel {
        NewVessel {
            id: "v1".into(),
            capacity: 3,
            max_weight: 100,
            name: "v1".into(),
            available: true,
            owner_id: String::new(),
        }
    }

    #[tokio::test]
    async fn an_id_is_added_once_and_a_vessel_without_one_gets_one() {
        let (vessels, fleet) = service();
        let new = v1();
        assert_eq!(vessels.add(new.clone()).await.unwrap().id, "v1");
        let again = vessels.add(new.clone()).await;
        assert!(matches!(&again, Err(VesselError::Fleet(FleetError::Duplicate(id))) if id == "v1"), "{again:?}");
        let assigned = vessels.add(NewVessel { id: String::new(), ..new }).await.unwrap();
        assert!(uuid::Uuid::parse_str(&assigned.id).is_ok(), "{}", assigned.id);
        assert_eq!(fleet.read(Fleet::len), 2);
        let found = vessels.find(Load { containers: 3, weight: 100 }, None).await.unwrap();
        assert!([assigned.id.as_str(), "v1"].contains(&found.id.as_str()), "found as soon as added");
    }

    /// A list through an instance whose fleet has not taken in a vessel the stream
    /// holds waits for it, and never answers without it.
    #[tokio::test(start_paused = true)]
    async fn a_list_waits_for_what_the_stream_held_when_asked() {
        let new = v1();
        // Another instance adds v1: the stream holds it, this fleet has not taken it in.
        let log = MemoryLog::new(Projection::new(Fleet::new(Duration::from_secs(3600))));
        let sequence = log.add_vessel(&new).await.unwrap().unwrap();
        let lagging = Projection::new(Fleet::new(Duration::from_secs(3600)));
        let vessels = Vessels::new(log, Arc::clone(&lagging), None);

        let stale = vessels.list(None, 10, 1 << 20).await;
        assert!(matches!(stale, Err(VesselError::Behind(_))), "{stale:?}");

        let added = Event {
            sequence,
            subject: shared::subjects::vessel::added_event(&new.id),
            time_ms: 0,
            payload: shared::store::encode(&new),
        };
        let take_in = async {
            tokio::task::yield_now().await;
            lagging.apply(&[added]);
        };
        let (listed, ()) = tokio::join!(vessels.list(None, 10, 1 << 20), take_in);
        let (page, more) = listed.unwrap();
        assert_eq!(page.iter().map(|listed| listed.vessel.id.as_str()).collect::<Vec<_>>(), ["v1"]);
        assert!(!more);
    }

    #[tokio::test]
    async fn seeding_twice_adds_each_vessel_once() {
        let (_, fleet) = service();
        let log = MemoryLog::new(Arc::clone(&fleet));
        let seed = default_fleet();
        assert_eq!(Vessels::seed(&log, &seed).await.unwrap(), seed.len());
        assert_eq!(Vessels::seed(&log, &seed).await.unwrap(), 0, "every id is stored already");
        assert_eq!(fleet.read(Fleet::len), seed.len());
    }
}
