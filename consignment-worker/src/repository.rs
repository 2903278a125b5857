//! Where consignments are kept.

use std::{future::Future, sync::Mutex};

use shared::model::Consignment;

/// A storage failure; the in-memory store never fails, a database-backed one may.
#[derive(Debug, thiserror::Error)]
#[error("consignment storage failed: {0}")]
pub struct RepositoryError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Stores consignments.
pub trait ConsignmentRepository: Send + Sync + 'static {
    fn create(&self, consignment: Consignment) -> impl Future<Output = Result<(), RepositoryError>> + Send;
    fn list(&self) -> impl Future<Output = Result<Vec<Consignment>, RepositoryError>> + Send;
}

/// Keeps consignments in this process's memory, in the order they were created.
#[derive(Debug, Default)]
pub struct InMemoryRepository {
    consignments: Mutex<Vec<Consignment>>,
}

impl ConsignmentRepository for InMemoryRepository {
    async fn create(&self, consignment: Consignment) -> Result<(), RepositoryError> {
        self.consignments.lock().expect("repository lock poisoned").push(consignment);
        Ok(())
    }

    async fn list(&self) -> Result<Vec<Consignment>, RepositoryError> {
        Ok(self.consignments.lock().expect("repository lock poisoned").clone())
    }
}
