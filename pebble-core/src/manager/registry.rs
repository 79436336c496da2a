//! The open pools by tenant id: a map of slots, each opened at most once at a
//! time (single flight), with least-recently-used and idle eviction.
//!
//! The map lock is only held for map operations, never across a connect, so
//! opening one tenant never blocks lookups or opens of others. An opener
//! first reserves room under the cap (evicting an idle pool if it must);
//! pools open plus reservations never exceed the cap, so no observer ever
//! sees more open pools than that, and a busy pool is never evicted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use crate::handle::db::Db;

use super::connect::PoolState;

/// One tenant's pool, opened on first use.
pub(crate) struct Slot {
    /// Held by the one task opening the pool; the others wait on it.
    opening: tokio::sync::Mutex<()>,
    /// Set once, under the map's write lock (see [`Registry::publish`]).
    db: OnceLock<Db>,
    /// Milliseconds since the registry's epoch at the last lookup.
    last_used: AtomicU64,
    /// Shared with the pool's connector.
    pub(crate) state: Arc<PoolState>,
    /// Opens of this slot that found no room under the cap in time: the
    /// callers queued behind such an open fail with it rather than each
    /// wait the whole wait timeout again.
    pub(crate) room_failures: AtomicU64,
}

impl Slot {
    /// Waits for the right to open this slot; whoever holds it opens the pool.
    pub(crate) async fn lock_opening(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.opening.lock().await
    }

    pub(crate) fn db(&self) -> Option<&Db> {
        self.db.get()
    }

    /// Whether nobody uses the pool: no handle or builder on it outside
    /// the registry, and no connection of it checked out or awaited.
    fn is_idle(&self) -> bool {
        self.db.get().is_none_or(|db| {
            let status = db.pool().status();
            db.handles() == 1 && status.size == status.available && status.waiting == 0
        })
    }
}

pub(crate) struct Registry {
    slots: RwLock<HashMap<String, Arc<Slot>>>,
    /// Pools being opened that hold room under the cap; changed only under
    /// the map's write lock.
    reserved: AtomicUsize,
    epoch: Instant,
}

/// Room for one pool under the cap, held while it opens. Dropped unused
/// (the open failed or was cancelled), it frees the room.
pub(crate) struct Reservation<'a> {
    registry: &'a Registry,
    armed: bool,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _slots = self.registry.write();
            self.registry.reserved.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Registry {
    pub(crate) fn new() -> Self {
        Registry {
            slots: RwLock::new(HashMap::new()),
            reserved: AtomicUsize::new(0),
            epoch: Instant::now(),
        }
    }

    /// The hot path: the open pool of a known tenant, if any.
    pub(crate) fn get(&self, id: &str) -> Option<Db> {
        let slots = self.read();
        let slot = slots.get(id)?;
        let db = slot.db.get()?;
        self.touch(slot);
        Some(db.clone())
    }

    /// The slot for `id`, created (not yet opened) if missing.
    pub(crate) fn slot(&self, id: &str) -> Arc<Slot> {
        if let Some(slot) = self.read().get(id) {
            return Arc::clone(slot);
        }
        let mut slots = self.write();
        let slot = slots.entry(id.to_owned()).or_insert_with(|| {
            Arc::new(Slot {
                opening: tokio::sync::Mutex::new(()),
                db: OnceLock::new(),
                last_used: AtomicU64::new(0),
                state: PoolState::new(id),
                room_failures: AtomicU64::new(0),
            })
        });
        Arc::clone(slot)
    }

    /// Room for one more pool (other than `id`'s) under the cap `max`: free
    /// room, or the room of the least recently used idle pool, which is
    /// removed and returned to be closed. `None` while every open pool is
    /// busy: evicting a busy pool would only detach it (its connections stay
    /// until its users finish) and open yet another beside it.
    pub(crate) fn try_reserve(
        &self,
        id: &str,
        max: usize,
    ) -> Option<(Reservation<'_>, Option<(String, Db)>)> {
        let open = |slots: &HashMap<String, Arc<Slot>>| {
            slots.values().filter(|s| s.db.get().is_some()).count()
                + self.reserved.load(Ordering::Relaxed)
        };
        // Looking for a victim asks every pool for its status: do that under
        // the read lock, so that lookups go on meanwhile, and take the write
        // lock only to check and evict the one found.
        let victim = {
            let slots = self.read();
            if open(&slots) < max {
                None
            } else {
                let (victim, slot) = slots
                    .iter()
                    .filter(|(other, s)| {
                        other.as_str() != id && s.db.get().is_some() && s.is_idle()
                    })
                    .min_by_key(|(_, s)| s.last_used.load(Ordering::Relaxed))?;
                Some((victim.clone(), Arc::clone(slot)))
            }
        };
        let mut slots = self.write();
        let evicted = if open(&slots) < max {
            None
        } else {
            // Still registered, still idle? Otherwise the caller looks again.
            let (victim, candidate) = victim?;
            let current = slots.get(&victim)?;
            if !Arc::ptr_eq(current, &candidate) || !candidate.is_idle() {
                return None;
            }
            let slot = slots.remove(&victim)?;
            slot.state.mark_detached();
            let db = slot.db.get()?.clone();
            Some((victim, db))
        };
        self.reserved.fetch_add(1, Ordering::Relaxed);
        let reservation = Reservation {
            registry: self,
            armed: true,
        };
        Some((reservation, evicted))
    }

    /// Makes `db` the open pool of `id`, in the room `reservation` held.
    /// Called by the task holding the slot's opening lock.
    pub(crate) fn publish(
        &self,
        id: &str,
        slot: &Arc<Slot>,
        db: Db,
        mut reservation: Reservation<'_>,
    ) {
        let mut slots = self.write();
        reservation.armed = false;
        self.reserved.fetch_sub(1, Ordering::Relaxed);
        self.touch(slot);
        // Already registered: an opening slot is never removed (see `remove`,
        // `drain` and `forget_failed`); inserting again keeps that true anyway.
        slots.insert(id.to_owned(), Arc::clone(slot));
        if let Err(db) = slot.db.set(db) {
            // Unreachable: only the opening lock's holder publishes, and it
            // checked the slot was empty. Never leak a second pool anyway.
            db.close();
        }
    }

    /// Whether `slot` is still the one registered for `id` (it is not once
    /// evicted or closed).
    pub(crate) fn is_current(&self, id: &str, slot: &Arc<Slot>) -> bool {
        self.read()
            .get(id)
            .is_some_and(|current| Arc::ptr_eq(current, slot))
    }

    pub(crate) fn touch(&self, slot: &Slot) {
        let now = self.now();
        // Write only when the millisecond changed, so that many tasks using
        // one tenant do not all write the same cache line.
        if slot.last_used.load(Ordering::Relaxed) != now {
            slot.last_used.store(now, Ordering::Relaxed);
        }
    }

    /// Forgets `slot` after its opening failed, so failed ids do not
    /// accumulate: only if it is still registered for `id`, unopened, and
    /// held by nobody but the map and the caller. A task waiting on it will
    /// retry the open itself; removing it then would let a newcomer open a
    /// second pool beside that one.
    pub(crate) fn forget_failed(&self, id: &str, slot: &Arc<Slot>) {
        let mut slots = self.write();
        if let Some(current) = slots.get(id) {
            if Arc::ptr_eq(current, slot)
                && current.db.get().is_none()
                && Arc::strong_count(slot) == 2
            {
                slots.remove(id);
            }
        }
    }

    /// Removes `id` if its pool is open; that pool. A slot still opening is
    /// left alone: removing it would let a second open start beside it.
    /// With `dropped`, the pool is marked dropped before anyone can see it
    /// gone.
    pub(crate) fn remove(&self, id: &str, dropped: bool) -> Option<Db> {
        let mut slots = self.write();
        let db = slots.get(id)?.db.get()?.clone();
        let slot = slots.remove(id)?;
        if dropped {
            slot.state.mark_dropped();
        } else {
            slot.state.mark_detached();
        }
        Some(db)
    }

    /// Removes the open pool whose slot shares `state`, if it is still
    /// the one registered for its tenant; that pool. An evicted pool, or
    /// one a newer slot replaced, is left alone.
    pub(crate) fn forget(&self, state: &Arc<PoolState>) -> Option<Db> {
        let mut slots = self.write();
        let current = slots.get(&state.id)?;
        if !Arc::ptr_eq(&current.state, state) {
            return None;
        }
        let db = current.db.get()?.clone();
        let slot = slots.remove(&state.id)?;
        slot.state.mark_detached();
        Some(db)
    }

    /// Removes every open pool (slots still opening stay); those pools.
    pub(crate) fn drain(&self) -> Vec<Db> {
        let mut slots = self.write();
        let mut open = Vec::new();
        slots.retain(|_, slot| match slot.db.get() {
            Some(db) => {
                slot.state.mark_detached();
                open.push(db.clone());
                false
            }
            None => true,
        });
        open
    }

    /// The open pools, least recently used first. As deadpool pools, not
    /// handles: a handle held would make its pool look busy to eviction.
    pub(crate) fn by_recency(&self) -> Vec<crate::conn::client::Pool> {
        let slots = self.read();
        let mut open: Vec<(u64, &Db)> = slots
            .values()
            .filter_map(|slot| Some((slot.last_used.load(Ordering::Relaxed), slot.db.get()?)))
            .collect();
        open.sort_by_key(|(used, _)| *used);
        open.into_iter().map(|(_, db)| db.pool().clone()).collect()
    }

    /// How many pools are open, and how many are being opened.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let slots = self.read();
        let open = slots.values().filter(|s| s.db.get().is_some()).count();
        (open, self.reserved.load(Ordering::Relaxed))
    }

    /// Ids of the open pools, sorted.
    pub(crate) fn open_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .read()
            .iter()
            .filter(|(_, slot)| slot.db.get().is_some())
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// Removes the open pools that are idle and were last used at least `timeout` ago.
    pub(crate) fn evict_idle(&self, timeout: Duration) -> Vec<(String, Db)> {
        let timeout = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let Some(cutoff) = self.now().checked_sub(timeout) else {
            return Vec::new(); // nothing can have been idle that long yet
        };
        let mut slots = self.write();
        let stale: Vec<String> = slots
            .iter()
            .filter(|(_, slot)| {
                slot.db.get().is_some()
                    && slot.last_used.load(Ordering::Relaxed) <= cutoff
                    && slot.is_idle()
            })
            .map(|(id, _)| id.clone())
            .collect();
        stale
            .into_iter()
            .filter_map(|id| {
                let slot = slots.remove(&id)?;
                slot.state.mark_detached();
                let db = slot.db.get().cloned()?;
                Some((id, db))
            })
            .collect()
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    // A panic while holding the lock cannot leave the map inconsistent (every
    // critical section is a single map operation), so poisoning is ignored.
    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, Arc<Slot>>> {
        self.slots.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, Arc<Slot>>> {
        self.slots.write().unwrap_or_else(|e| e.into_inner())
    }
}
