//! The open pools by tenant id: a map of slots, each opened at most once at a
//! time (single flight), with least-recently-used and idle eviction.
//!
//! The map lock is only held for map operations, never across a connect, so
//! opening one tenant never blocks lookups or opens of others.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::db::Db;

/// One tenant's pool, opened on first use.
pub(crate) struct Slot {
    pool: OnceCell<Db>,
    /// Milliseconds since the registry's epoch at the last lookup.
    last_used: AtomicU64,
}

impl Slot {
    pub(crate) fn cell(&self) -> &OnceCell<Db> {
        &self.pool
    }

    /// Whether the pool is open and no connection of it is in use or awaited.
    fn is_idle(&self) -> bool {
        self.pool.get().is_none_or(|db| {
            let status = db.pool().status();
            status.size == status.available && status.waiting == 0
        })
    }
}

pub(crate) struct Registry {
    slots: RwLock<HashMap<String, Arc<Slot>>>,
    epoch: Instant,
}

impl Registry {
    pub(crate) fn new() -> Self {
        Registry {
            slots: RwLock::new(HashMap::new()),
            epoch: Instant::now(),
        }
    }

    /// The hot path: the open pool of a known tenant, if any.
    pub(crate) fn get(&self, id: &str) -> Option<Db> {
        let slots = self.read();
        let slot = slots.get(id)?;
        let db = slot.pool.get()?;
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
                pool: OnceCell::new(),
                last_used: AtomicU64::new(0),
            })
        });
        Arc::clone(slot)
    }

    pub(crate) fn touch(&self, slot: &Slot) {
        let now = self.now();
        // Write only when the millisecond changed, so that many tasks using
        // one tenant do not all write the same cache line.
        if slot.last_used.load(Ordering::Relaxed) != now {
            slot.last_used.store(now, Ordering::Relaxed);
        }
    }

    /// Forgets `slot` if it is still the one registered for `id` and never
    /// opened (its opening failed), so failed ids do not accumulate.
    pub(crate) fn forget_failed(&self, id: &str, slot: &Arc<Slot>) {
        let mut slots = self.write();
        if let Some(current) = slots.get(id) {
            if Arc::ptr_eq(current, slot) && !current.pool.initialized() {
                slots.remove(id);
            }
        }
    }

    /// Removes `id`; its pool, if it was open.
    pub(crate) fn remove(&self, id: &str) -> Option<Db> {
        self.write().remove(id)?.pool.get().cloned()
    }

    /// Removes every tenant; their open pools.
    pub(crate) fn drain(&self) -> Vec<Db> {
        self.write()
            .drain()
            .filter_map(|(_, slot)| slot.pool.get().cloned())
            .collect()
    }

    /// Ids of the open pools, sorted.
    pub(crate) fn open_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .read()
            .iter()
            .filter(|(_, slot)| slot.pool.initialized())
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// Removes least recently used pools until at most `max` are open,
    /// preferring idle ones and never `keep`; returns what was removed.
    pub(crate) fn evict_over(&self, max: usize, keep: &str) -> Vec<(String, Db)> {
        let mut slots = self.write();
        let mut open = slots.values().filter(|s| s.pool.initialized()).count();
        let mut evicted = Vec::new();
        while open > max {
            let victim = slots
                .iter()
                .filter(|(id, slot)| id.as_str() != keep && slot.pool.initialized())
                .min_by_key(|(_, slot)| (!slot.is_idle(), slot.last_used.load(Ordering::Relaxed)))
                .map(|(id, _)| id.clone());
            let Some(id) = victim else { break };
            if let Some(db) = slots.remove(&id).and_then(|slot| slot.pool.get().cloned()) {
                evicted.push((id, db));
            }
            open -= 1;
        }
        evicted
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
                slot.pool.initialized()
                    && slot.last_used.load(Ordering::Relaxed) <= cutoff
                    && slot.is_idle()
            })
            .map(|(id, _)| id.clone())
            .collect();
        stale
            .into_iter()
            .filter_map(|id| {
                let db = slots.remove(&id)?.pool.get().cloned()?;
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
