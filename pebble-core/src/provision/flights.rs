//! One provisioning or drop per tenant at a time within a process: the
//! others wait here, without holding a connection, instead of each holding
//! one while they queue for the tenant's registry row (the row still
//! serialises processes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

#[derive(Default)]
pub(crate) struct Flights {
    locks: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
}

impl Flights {
    /// Waits for `id`'s turn.
    pub(crate) async fn lock(&self, id: &str) -> Flight<'_> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(locks.entry(id.to_owned()).or_default())
        };
        Flight {
            guard: Some(lock.lock_owned().await),
            flights: self,
            id: id.to_owned(),
        }
    }
}

/// `id`'s turn; the next caller's starts when it is dropped.
pub(crate) struct Flight<'a> {
    guard: Option<OwnedMutexGuard<()>>,
    flights: &'a Flights,
    id: String,
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        let mut locks = self.flights.locks.lock().unwrap_or_else(|e| e.into_inner());
        // The map's reference and this guard's: nobody else waits, so the
        // entry goes (the map stays as large as the tenants in flight).
        if locks
            .get(&self.id)
            .is_some_and(|lock| Arc::strong_count(lock) <= 2)
        {
            locks.remove(&self.id);
        }
        self.guard.take();
    }
}
