//! The open tenant login pools, by role: each opened at most once at a time
//! (one task opens, the others wait on its slot), at most `max` open, the
//! least recently used idle one closed to make room.
//!
//! The map lock is only held for map operations, never across a login, so
//! opening one tenant never blocks the lookups or opens of others. An
//! opener first reserves room under the bound; pools open plus
//! reservations never exceed it, and a pool in use is never closed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use super::db::Db;

/// One tenant login's pool, opened on first use.
pub(crate) struct Slot {
    /// Held by the one task opening the pool; the others wait on it.
    opening: tokio::sync::Mutex<()>,
    /// Set once, under the map lock, by the opener.
    db: OnceLock<Db>,
    /// Milliseconds since the map's epoch at the last lookup.
    last_used: AtomicU64,
}

impl Slot {
    /// Waits for the right to open this slot.
    pub(crate) async fn lock_opening(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.opening.lock().await
    }

    /// Nobody uses the pool: no handle or builder on it outside the map,
    /// no connection checked out or awaited.
    fn is_idle(&self) -> bool {
        self.db.get().is_none_or(|db| {
            let status = db.status();
            db.handles() == 1 && status.size == status.available && status.waiting == 0
        })
    }
}

struct State {
    slots: HashMap<String, Arc<Slot>>,
    /// Pools being opened, holding room under the bound.
    reserved: usize,
}

impl State {
    fn open(&self) -> usize {
        self.slots.values().filter(|s| s.db.get().is_some()).count()
    }
}

pub(crate) struct Pools {
    state: Mutex<State>,
    max: usize,
    epoch: Instant,
}

/// Room for one pool under the bound, held while it opens; dropped unused
/// (the login failed, or the open was cancelled), it frees the room.
pub(crate) struct Reservation<'a> {
    pools: &'a Pools,
    armed: bool,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.pools.lock().reserved -= 1;
        }
    }
}

impl Pools {
    pub(crate) fn new(max: usize) -> Pools {
        Pools {
            state: Mutex::new(State {
                slots: HashMap::new(),
                reserved: 0,
            }),
            max,
            epoch: Instant::now(),
        }
    }

    /// The open pool of `role`, if any.
    pub(crate) fn get(&self, role: &str) -> Option<Db> {
        let state = self.lock();
        let slot = state.slots.get(role)?;
        let db = slot.db.get()?;
        slot.last_used.store(self.now(), Ordering::Relaxed);
        Some(db.clone())
    }

    /// The slot of `role`, created (not opened) if missing.
    pub(crate) fn slot(&self, role: &str) -> Arc<Slot> {
        let mut state = self.lock();
        Arc::clone(state.slots.entry(role.to_owned()).or_insert_with(|| {
            Arc::new(Slot {
                opening: tokio::sync::Mutex::new(()),
                db: OnceLock::new(),
                last_used: AtomicU64::new(0),
            })
        }))
    }

    /// Room for one more pool: free room, or that of the least recently
    /// used idle pool, removed from the map and returned to be closed.
    /// `None` while every open pool is in use.
    pub(crate) fn try_reserve(&self, role: &str) -> Option<(Reservation<'_>, Option<Db>)> {
        let mut state = self.lock();
        let evicted = if state.open() + state.reserved < self.max {
            None
        } else {
            let victim = state
                .slots
                .iter()
                .filter(|(other, s)| other.as_str() != role && s.db.get().is_some() && s.is_idle())
                .min_by_key(|(_, s)| s.last_used.load(Ordering::Relaxed))
                .map(|(victim, _)| victim.clone())?;
            state.slots.remove(&victim)?.db.get().cloned()
        };
        state.reserved += 1;
        Some((
            Reservation {
                pools: self,
                armed: true,
            },
            evicted,
        ))
    }

    /// Makes `db` the open pool of `role`, in the room `reservation` held.
    pub(crate) fn publish(
        &self,
        role: &str,
        slot: &Arc<Slot>,
        db: Db,
        mut reservation: Reservation<'_>,
    ) {
        let mut state = self.lock();
        reservation.armed = false;
        state.reserved -= 1;
        slot.last_used.store(self.now(), Ordering::Relaxed);
        state.slots.insert(role.to_owned(), Arc::clone(slot));
        if let Err(db) = slot.db.set(db) {
            // Only the opening lock's holder publishes, after checking the
            // slot was empty; never leak a second pool anyway.
            db.close();
        }
    }

    /// Forgets `slot` after its open failed, if nobody else waits on it
    /// (a waiter retries the open itself), so failed roles do not pile up.
    pub(crate) fn forget_failed(&self, role: &str, slot: &Arc<Slot>) {
        let mut state = self.lock();
        if let Some(current) = state.slots.get(role) {
            if Arc::ptr_eq(current, slot)
                && current.db.get().is_none()
                && Arc::strong_count(slot) == 2
            {
                state.slots.remove(role);
            }
        }
    }

    /// Removes `role`'s open pool; that pool.
    pub(crate) fn remove(&self, role: &str) -> Option<Db> {
        let mut state = self.lock();
        let db = state.slots.get(role)?.db.get()?.clone();
        state.slots.remove(role);
        Some(db)
    }

    /// Removes every open pool (slots still opening stay); those pools.
    pub(crate) fn drain(&self) -> Vec<Db> {
        let mut state = self.lock();
        let mut open = Vec::new();
        state.slots.retain(|_, slot| match slot.db.get() {
            Some(db) => {
                open.push(db.clone());
                false
            }
            None => true,
        });
        open
    }

    /// How many pools are open.
    pub(crate) fn open(&self) -> usize {
        self.lock().open()
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    // Every critical section is one map operation: a panic cannot leave
    // the map inconsistent, so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
