//! The connection a transaction holds, and its state machine: statements
//! are admitted while it is open, `COMMIT` / `ROLLBACK` wait for them, and a
//! transaction dropped without either is rolled back before its connection
//! is reused. The user-facing `Transaction` is a thin handle on it.
//!
//! Savepoints share the transaction's connection and state ([`TxCore`]);
//! each handle on it ([`TxConn`]) names the level it belongs to (the
//! transaction itself, or one savepoint), and a statement is admitted only
//! at the innermost open level: a builder of an ended savepoint cannot run
//! in its parent, nor a parent's builder inside a savepoint.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::client::{Object, PooledClient};
use tokio::sync::RwLockReadGuard;
use tokio_postgres::SimpleQueryMessage;

use crate::error::{Error, Result};

use super::pool::SharedPool;
use super::send::{self, StatementMode};
use super::table_check::TableChecks;
use super::trace;

/// A handle on a transaction's connection at one level: the transaction
/// itself, or one of its savepoints. Shared by the builders made from it.
/// Public only inside this private module, to appear in `Conn`.
pub struct TxConn {
    core: Arc<TxCore>,
    /// `TOP` for the transaction, a savepoint's id otherwise.
    level: u64,
}

/// The level of the transaction itself.
const TOP: u64 = 0;

/// A transaction's connection and state, shared by all its levels.
struct TxCore {
    /// Statements hold it shared while they run; `commit`, `rollback` and
    /// the owner's drop take it exclusively, so no statement can straddle
    /// the end of the transaction.
    gate: tokio::sync::RwLock<Slot>,
    /// The `Transaction` was dropped: no statement may start any more,
    /// even before the rollback has taken the gate.
    closed: AtomicBool,
    /// The pool's table checks (see `table_check`).
    tables: Arc<TableChecks>,
    /// How the pool sends statements.
    mode: StatementMode,
    /// Trace bound values (see `PoolOptions::log_values`).
    log_values: bool,
    /// A statement failed on the server, which aborts the whole transaction.
    aborted: AtomicBool,
    /// A statement was dropped before its outcome was known: it may have
    /// failed (and aborted the transaction) on the server.
    uncertain: AtomicBool,
    /// Raw SQL text ran in the transaction: it may have changed session
    /// settings that outlive the transaction, so the session is reset at its end.
    raw_used: AtomicBool,
    /// Set as `pebble.tx` inside the transaction (see `still_ours`).
    marker: String,
    /// Open savepoints, outermost first.
    savepoints: Mutex<Vec<SavepointMark>>,
    /// Savepoints dropped without commit or rollback: rolled back before
    /// anything else runs on the transaction (a drop cannot wait for the
    /// server), innermost first.
    to_roll_back: Mutex<Vec<SavepointMark>>,
    /// Quick check for `to_roll_back`, so statements pay nothing without it.
    has_rollbacks: AtomicBool,
    next_savepoint: AtomicU64,
    /// A row stream of this transaction is open: the connection is busy
    /// with it (see `Error::StreamOpen`).
    streaming: AtomicBool,
}

/// An open savepoint, and the transaction's error flags when it began,
/// which rolling back to it restores.
#[derive(Clone, Copy, Debug)]
struct SavepointMark {
    id: u64,
    aborted: bool,
    uncertain: bool,
}

fn savepoint_name(id: u64) -> String {
    format!("pebble_sp_{id}")
}

/// The transaction's state and its connection, while it has one.
struct Slot {
    state: State,
    /// Taken out when the transaction ends, to go back to the pool at once
    /// rather than when the last builder holding the transaction is dropped.
    client: Option<Object>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Open,
    /// `COMMIT` / `ROLLBACK` was sent but not confirmed.
    Ending,
    /// Ended; its connection has been handed back (or to a rollback).
    Ended,
}

impl TxConn {
    /// Admission of one statement: waits while the transaction is ending and
    /// refuses once it has, while a stream holds its connection, and unless
    /// this handle's level is the innermost open one.
    pub(crate) async fn enter(&self) -> Result<Entered<'_>> {
        let core = &*self.core;
        // Before the rollbacks: a savepoint dropped with its stream still
        // open queues a `ROLLBACK TO SAVEPOINT` that would wait behind the
        // stream's unread rows (and its reader, behind this statement).
        if core.streaming.load(Ordering::Acquire) {
            return Err(Error::StreamOpen);
        }
        if core.has_rollbacks.load(Ordering::Acquire) {
            core.roll_back_dropped().await?;
        }
        let gate = core.gate.read().await;
        if gate.state != State::Open || core.closed.load(Ordering::Acquire) {
            return Err(Error::TransactionEnded);
        }
        if core.streaming.load(Ordering::Acquire) {
            return Err(Error::StreamOpen);
        }
        self.check_level()?;
        let client = RwLockReadGuard::try_map(gate, |slot| slot.client.as_ref())
            .map_err(|_| Error::TransactionEnded)?;
        Ok(Entered {
            tx: core,
            client,
            done: false,
        })
    }

    /// Whether this handle may run statements now: its level must be the
    /// innermost open one. A savepoint that has ended is
    /// [`Error::TransactionEnded`] for its builders; a level with a
    /// savepoint open inside it is [`Error::SavepointOpen`].
    fn check_level(&self) -> Result<()> {
        let open = lock(&self.core.savepoints);
        let innermost = open.last().map_or(TOP, |mark| mark.id);
        if innermost == self.level {
            Ok(())
        } else if self.level == TOP || open.iter().any(|mark| mark.id == self.level) {
            Err(Error::SavepointOpen)
        } else {
            Err(Error::TransactionEnded)
        }
    }

    /// A statement of this transaction is known to have failed on the server.
    pub(crate) fn is_known_aborted(&self) -> bool {
        self.core.aborted.load(Ordering::Relaxed)
    }

    pub(crate) fn tables(&self) -> &TableChecks {
        &self.core.tables
    }

    pub(crate) fn mode(&self) -> StatementMode {
        self.core.mode
    }

    pub(crate) fn log_values(&self) -> bool {
        self.core.log_values
    }

    /// Runs a user's SQL text inside the transaction, then makes sure the
    /// text did not end the transaction (`COMMIT`, `ROLLBACK`): the
    /// builders' statements after it would otherwise each commit on their
    /// own, and a later `rollback()` would undo nothing.
    pub(crate) async fn raw_batch(&self, sql: &str) -> Result<()> {
        self.core.raw_used.store(true, Ordering::Release);
        let entered = self.enter().await?;
        let result = entered
            .client()
            .batch_execute(sql)
            .await
            .map_err(Error::from);
        let result = match result {
            Ok(()) => self.still_ours(entered.client()).await,
            Err(e) => Err(e),
        };
        entered.finish(result)
    }

    /// Raw SQL ran in this transaction: its session settings are reset at
    /// the end, and it must not have ended or replaced the transaction.
    pub(crate) fn mark_raw(&self) {
        self.core.raw_used.store(true, Ordering::Release);
    }

    /// Whether the connection is still inside *this* transaction: `BEGIN`
    /// set `pebble.tx` to this transaction's random marker, transaction
    /// locally, so after raw text that committed or rolled back (even
    /// `COMMIT; BEGIN`, which leaves *a* transaction open) it reads
    /// otherwise. Whatever runs next on the connection would then be
    /// outside the transaction: everything is refused, and the connection
    /// is discarded.
    pub(crate) async fn still_ours(&self, client: &PooledClient) -> Result<()> {
        let messages = client
            .simple_query("SELECT pg_catalog.current_setting('pebble.tx', true)")
            .await?;
        let current = messages.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        });
        if current.as_deref() == Some(self.core.marker.as_str()) {
            Ok(())
        } else {
            self.core.closed.store(true, Ordering::Release);
            Err(Error::TransactionEnded)
        }
    }

    /// The statement that starts this transaction (after `BEGIN` and what
    /// else `begin` says, in the same message): its marker (see `still_ours`).
    fn marker_sql(&self) -> String {
        format!("SET LOCAL pebble.tx = '{}'", self.core.marker)
    }

    /// `begin` (`BEGIN` with its options), with the transaction's marker, in one message.
    pub(crate) async fn begin(&self, begin: &str) -> Result<()> {
        let entered = self.enter().await?;
        let sql = format!("{begin}; {}", self.marker_sql());
        let result = trace::text(begin, "transaction", None, async {
            entered
                .client()
                .batch_execute(&sql)
                .await
                .map_err(Error::from)
        })
        .await;
        entered.finish(result)
    }

    /// Marks the start of a row stream: until [`TxConn::stream_ended`], every
    /// other statement of the transaction is refused with
    /// [`Error::StreamOpen`]. Called with the stream's statement admitted.
    pub(crate) fn stream_started(&self) -> Result<()> {
        self.core
            .streaming
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(|_| Error::StreamOpen)
    }

    /// The row stream ended (finished, failed or dropped).
    pub(crate) fn stream_ended(&self) {
        self.core.streaming.store(false, Ordering::Release);
    }

    /// Records that the stream's statement failed on the server.
    pub(crate) fn mark_aborted(&self) {
        self.core.aborted.store(true, Ordering::Release);
    }

    /// Records that a statement was dropped before its outcome was known.
    pub(crate) fn mark_uncertain(&self) {
        self.core.uncertain.store(true, Ordering::Release);
    }
}

/// One statement running inside a transaction.
pub(crate) struct Entered<'a> {
    tx: &'a TxCore,
    client: RwLockReadGuard<'a, Object>,
    done: bool,
}

impl Entered<'_> {
    pub(crate) fn client(&self) -> &PooledClient {
        &self.client
    }

    /// Records the statement's outcome: a server-side error aborts the transaction.
    pub(crate) fn finish<T>(mut self, result: Result<T>) -> Result<T> {
        if let Err(Error::Database { .. } | Error::Connection(_)) = &result {
            self.tx.aborted.store(true, Ordering::Release);
        }
        self.done = true;
        result
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.tx.uncertain.store(true, Ordering::Release);
        }
    }
}

impl TxConn {
    /// A transaction not yet begun, on a connection of `pool`.
    pub(crate) async fn on(pool: &SharedPool) -> Result<Arc<TxConn>> {
        let core = TxCore {
            gate: tokio::sync::RwLock::new(Slot {
                state: State::Open,
                client: Some(pool.pool().get().await?),
            }),
            closed: AtomicBool::new(false),
            tables: Arc::clone(pool.tables()),
            mode: pool.mode(),
            log_values: pool.log_values(),
            aborted: AtomicBool::new(false),
            uncertain: AtomicBool::new(false),
            raw_used: AtomicBool::new(false),
            // Random, so raw text cannot forge it (it cannot read it either).
            marker: uuid::Uuid::new_v4().simple().to_string(),
            savepoints: Mutex::new(Vec::new()),
            to_roll_back: Mutex::new(Vec::new()),
            has_rollbacks: AtomicBool::new(false),
            next_savepoint: AtomicU64::new(TOP + 1),
            streaming: AtomicBool::new(false),
        };
        Ok(Arc::new(TxConn {
            core: Arc::new(core),
            level: TOP,
        }))
    }

    /// `begin` (`BEGIN` with its options) and `SET LOCAL` of the tenant
    /// (row-level security), in one round trip, on a transaction not yet begun.
    pub(crate) async fn begin_in_tenant_context(&self, begin: &str, tenant: &str) -> Result<()> {
        let entered = self.enter().await?;
        let marker = self.marker_sql();
        let sent = send::begin_in_tenant_context(entered.client(), begin, tenant, &marker);
        let result = trace::text(begin, "transaction", Some(tenant), sent).await;
        entered.finish(result)
    }

    /// `COMMIT` (or `ROLLBACK` if a statement aborted the transaction) when
    /// `commit`, `ROLLBACK` otherwise; waits for statements still running.
    pub(crate) async fn finish(&self, commit: bool) -> Result<()> {
        let tx = &*self.core;
        if tx.streaming.load(Ordering::Acquire) {
            // The stream's rows stand before `COMMIT` on the connection:
            // the commit would wait for a reader that is waiting for it.
            return Err(Error::StreamOpen);
        }
        let mut gate = tx.gate.write().await;
        if gate.state != State::Open || tx.closed.load(Ordering::Acquire) {
            return Err(Error::TransactionEnded);
        }
        let Some(client) = gate.client.as_ref() else {
            return Err(Error::TransactionEnded);
        };
        // A savepoint dropped without commit must not be committed with its parent.
        tx.roll_back_dropped_on(client).await;
        let aborted = commit && is_aborted(tx, client).await;
        let sql = if commit && !aborted {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        // Builders still holding this transaction must not start a statement
        // that would run after it, outside any transaction.
        gate.state = State::Ending;
        let Some(client) = gate.client.as_ref() else {
            return Err(Error::TransactionEnded);
        };
        trace::text(sql, "transaction", None, async {
            client.batch_execute(sql).await.map_err(Error::from)
        })
        .await?;
        // If this future is dropped or fails before here, dropping the
        // transaction rolls back before the connection is reused.
        let client = gate.client.take();
        gate.state = State::Ended;
        drop(gate);
        if let Some(client) = client {
            if tx.raw_used.load(Ordering::Acquire) {
                // A `SET` (not `SET LOCAL`) in raw text outlives the transaction.
                reset_after_raw(client).await;
            }
        }
        if aborted {
            return Err(Error::TransactionAborted);
        }
        Ok(())
    }

    /// Ends the transaction even while builders made from it are still
    /// held: their statements then fail with [`Error::TransactionEnded`].
    /// Called when the `Transaction` is dropped.
    pub(crate) fn close(&self) {
        let core = &self.core;
        core.closed.store(true, Ordering::Release);
        match core.gate.try_write() {
            Ok(mut gate) => end_dropped(&mut gate, &core.raw_used),
            Err(_) => {
                // A statement (from a builder on another task) holds the
                // gate: roll back once it is done. Without a runtime, the
                // last holder's drop of `TxCore` rolls back instead.
                let core = Arc::clone(core);
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        let mut gate = core.gate.write().await;
                        end_dropped(&mut gate, &core.raw_used);
                    });
                }
            }
        }
    }
}

/// Savepoints: `SAVEPOINT` when one begins, `RELEASE SAVEPOINT` on commit,
/// `ROLLBACK TO SAVEPOINT` on rollback or drop.
impl TxConn {
    /// Opens a savepoint inside this level, which must be the innermost
    /// open one; the handle of the savepoint's level.
    pub(crate) async fn savepoint(&self) -> Result<TxConn> {
        let entered = self.enter().await?;
        let core = &self.core;
        let id = core.next_savepoint.fetch_add(1, Ordering::Relaxed);
        let mark = SavepointMark {
            id,
            aborted: core.aborted.load(Ordering::Acquire),
            uncertain: core.uncertain.load(Ordering::Acquire),
        };
        let sql = format!("SAVEPOINT {}", savepoint_name(id));
        let result = entered
            .client()
            .batch_execute(&sql)
            .await
            .map_err(Error::from);
        // Pushed while the statement is still admitted: nothing of this
        // level can run between the server's savepoint and its record.
        if result.is_ok() {
            lock(&core.savepoints).push(mark);
        }
        entered.finish(result)?;
        Ok(TxConn {
            core: Arc::clone(core),
            level: id,
        })
    }

    /// Ends this savepoint: `RELEASE SAVEPOINT` when `commit` and no
    /// statement in it failed, `ROLLBACK TO SAVEPOINT` (then release)
    /// otherwise, which restores the transaction as it was when the
    /// savepoint began. [`Error::SavepointAborted`] for a commit that rolled back.
    pub(crate) async fn end_savepoint(&self, commit: bool) -> Result<()> {
        let core = &*self.core;
        if core.streaming.load(Ordering::Acquire) {
            return Err(Error::StreamOpen);
        }
        if core.has_rollbacks.load(Ordering::Acquire) {
            core.roll_back_dropped().await?;
        }
        let gate = core.gate.write().await;
        if gate.state != State::Open || core.closed.load(Ordering::Acquire) {
            return Err(Error::TransactionEnded);
        }
        self.check_level()?;
        let Some(client) = gate.client.as_ref() else {
            return Err(Error::TransactionEnded);
        };
        let Some(mark) = lock(&core.savepoints).last().copied() else {
            return Err(Error::TransactionEnded);
        };
        let aborted = commit && is_aborted(core, client).await;
        let name = savepoint_name(mark.id);
        let result = if commit && !aborted {
            client
                .batch_execute(&format!("RELEASE SAVEPOINT {name}"))
                .await
        } else {
            roll_back_to(core, client, mark).await
        };
        lock(&core.savepoints).pop();
        if let Err(e) = result {
            // The savepoint is in an unknown state: so is the transaction.
            core.aborted.store(true, Ordering::Release);
            return Err(e.into());
        }
        if aborted {
            return Err(Error::SavepointAborted);
        }
        Ok(())
    }

    /// The savepoint's handle was dropped without `commit` or `rollback`:
    /// it (and any savepoint inside it) is rolled back before anything else
    /// runs on the transaction.
    pub(crate) fn drop_savepoint(&self) {
        let core = &self.core;
        let mut open = lock(&core.savepoints);
        if let Some(at) = open.iter().position(|mark| mark.id == self.level) {
            let dropped: Vec<SavepointMark> = open.drain(at..).rev().collect();
            lock(&core.to_roll_back).extend(dropped);
            core.has_rollbacks.store(true, Ordering::Release);
        }
    }
}

impl TxCore {
    /// Rolls back the savepoints dropped without an end, under the gate.
    async fn roll_back_dropped(&self) -> Result<()> {
        let gate = self.gate.write().await;
        if let Some(client) = gate.client.as_ref() {
            self.roll_back_dropped_on(client).await;
        }
        Ok(())
    }

    /// See `roll_back_dropped`; the caller holds the gate exclusively.
    async fn roll_back_dropped_on(&self, client: &PooledClient) {
        let marks = std::mem::take(&mut *lock(&self.to_roll_back));
        self.has_rollbacks.store(false, Ordering::Release);
        for mark in marks {
            if roll_back_to(self, client, mark).await.is_err() {
                // Only a lost connection gets here: nothing may be committed.
                self.aborted.store(true, Ordering::Release);
                return;
            }
        }
    }
}

/// `ROLLBACK TO SAVEPOINT` and `RELEASE SAVEPOINT` in one message: the
/// transaction is as it was when the savepoint began, errors included.
async fn roll_back_to(
    core: &TxCore,
    client: &PooledClient,
    mark: SavepointMark,
) -> std::result::Result<(), tokio_postgres::Error> {
    let name = savepoint_name(mark.id);
    client
        .batch_execute(&format!(
            "ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}"
        ))
        .await?;
    core.aborted.store(mark.aborted, Ordering::Release);
    core.uncertain.store(mark.uncertain, Ordering::Release);
    Ok(())
}

/// A std mutex that a panic elsewhere cannot poison for pebble: the data
/// (savepoint ids) stays consistent whatever panicked.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether the server has aborted the transaction. Known from the outcomes
/// of its statements, unless one was dropped before its outcome arrived:
/// then a probe statement asks (it fails in an aborted transaction).
async fn is_aborted(tx: &TxCore, client: &PooledClient) -> bool {
    if tx.aborted.load(Ordering::Acquire) {
        return true;
    }
    tx.uncertain.load(Ordering::Acquire) && client.batch_execute("SELECT 1").await.is_err()
}

/// Resets a session raw text may have changed, or closes the connection.
async fn reset_after_raw(client: Object) {
    match client.batch_execute("DISCARD ALL").await {
        Ok(()) => client.forget_statements(),
        Err(_) => drop(Object::take(client)),
    }
}

/// Rolls back a transaction that was not ended by `commit` or `rollback`.
/// After raw SQL text the session may carry settings, so the connection is
/// closed instead, which rolls back on the server.
fn end_dropped(slot: &mut Slot, raw_used: &AtomicBool) {
    if slot.state != State::Ended {
        slot.state = State::Ended;
        if let Some(client) = slot.client.take() {
            let close = raw_used.load(Ordering::Acquire);
            trace::dropped_transaction(close);
            if close {
                drop(Object::take(client));
            } else {
                roll_back_in_background(client);
            }
        }
    }
}

impl Drop for TxCore {
    fn drop(&mut self) {
        end_dropped(self.gate.get_mut(), &self.raw_used);
    }
}

/// Sends `ROLLBACK` without blocking `drop`. The connection returns to the
/// pool only after the server confirmed; if that cannot happen (no runtime,
/// the task is cancelled, the rollback fails) it is detached from the pool
/// and closed, which ends the transaction server-side.
pub(crate) fn roll_back_in_background(client: Object) {
    struct Guard(Option<Object>);

    impl Drop for Guard {
        fn drop(&mut self) {
            if let Some(client) = self.0.take() {
                drop(Object::take(client));
            }
        }
    }

    let mut guard = Guard(Some(client));
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return; // `guard` detaches the connection
    };
    runtime.spawn(async move {
        let rolled_back = match &guard.0 {
            Some(client) => client.batch_execute("ROLLBACK").await.is_ok(),
            None => false,
        };
        if rolled_back {
            drop(guard.0.take()); // back to the pool, clean
        }
    });
}
