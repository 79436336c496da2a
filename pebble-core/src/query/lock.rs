//! Row locks on a select: `FOR UPDATE`, `FOR SHARE`, with `SKIP LOCKED` or
//! `NOWAIT`. A [`Locked`] select only offers what returns rows: a count or
//! an existence check under a row lock means nothing, so it does not compile.

use std::fmt;

use sea_query::{LockBehavior, LockType};

use crate::conn::Statement;
use crate::error::Result;
use crate::model::Model;

use super::select::Select;
use super::stream::SelectStream;

/// A `SELECT ... FOR UPDATE` / `FOR SHARE`, from [`Select::for_update`] or
/// [`Select::for_share`]. The tenant condition is in its `WHERE` like any
/// select's, so it only ever locks (and waits for) this tenant's rows.
///
/// Locks last until the end of the transaction: run it on a transaction
/// (`tenant.begin()`), or they are released as soon as the statement ends.
///
/// ```no_run
/// # use pebble::{Db, Model};
/// # #[derive(Model)] struct Job { #[pebble(primary_key)] id: i64, #[tenant_id] org: i64, done: bool }
/// # async fn demo(db: Db) -> pebble::Result<()> {
/// let tx = db.tenant(7_i64).begin().await?;
/// // A work queue: each worker takes a job no other worker holds.
/// let job = tx.select::<Job>()
///     .filter(Job::DONE.eq(false))
///     .order_by(Job::ID.asc())
///     .for_update()
///     .skip_locked()
///     .optional()
///     .await?;
/// if let Some(job) = job {
///     tx.update::<Job>().set(Job::DONE, true).filter(Job::ID.eq(job.id)).exec().await?;
/// }
/// tx.commit().await?;
/// # Ok(()) }
/// ```
#[must_use = "a query does nothing until it is run with `.all()`, `.one()`, `.optional()`..."]
pub struct Locked<M> {
    select: Select<M>,
    kind: LockType,
}

impl<M: Model> Select<M> {
    /// Locks the selected rows against updates, deletes and other locks
    /// until the transaction ends: `FOR UPDATE`. Other transactions wait
    /// for them, unless they ask for [`Locked::skip_locked`] or [`Locked::nowait`].
    pub fn for_update(self) -> Locked<M> {
        Locked::new(self, LockType::Update)
    }

    /// Locks the selected rows against updates and deletes, letting other
    /// transactions share the lock: `FOR SHARE`.
    pub fn for_share(self) -> Locked<M> {
        Locked::new(self, LockType::Share)
    }
}

impl<M: Model> Locked<M> {
    fn new(mut select: Select<M>, kind: LockType) -> Self {
        select.core.tree_mut().lock(kind);
        Locked { select, kind }
    }

    /// Skips rows another transaction holds locked instead of waiting for
    /// them: `SKIP LOCKED` (work queues).
    pub fn skip_locked(mut self) -> Self {
        self.select
            .core
            .tree_mut()
            .lock_with_behavior(self.kind, LockBehavior::SkipLocked);
        self
    }

    /// Fails at once, with SQLSTATE 55P03 (`lock_not_available`, see
    /// [`Error::is_lock_not_available`](crate::Error::is_lock_not_available)),
    /// if a row is locked by another transaction: `NOWAIT`.
    pub fn nowait(mut self) -> Self {
        self.select
            .core
            .tree_mut()
            .lock_with_behavior(self.kind, LockBehavior::Nowait);
        self
    }

    /// The statement `all()` sends (see [`Select::build`]).
    pub fn build(&self) -> Result<Statement> {
        self.select.build()
    }

    /// The SQL text of [`Locked::build`].
    pub fn to_sql(&self) -> Result<String> {
        self.select.to_sql()
    }

    /// Every matching row, locked.
    pub async fn all(self) -> Result<Vec<M>> {
        self.select.all().await
    }

    /// The first matching row, locked, or [`Error::NotFound`](crate::Error::NotFound).
    pub async fn one(self) -> Result<M> {
        self.select.one().await
    }

    /// The first matching row, locked, if any.
    pub async fn optional(self) -> Result<Option<M>> {
        self.select.optional().await
    }

    /// Every matching row, locked, as it arrives (see [`Select::stream`]).
    pub fn stream(self) -> SelectStream<M> {
        self.select.stream()
    }
}

/// Never implemented (and sealed): the bound of `count()` / `exists()` on
/// a [`Locked`] select, there only to say why they do not compile.
#[diagnostic::on_unimplemented(
    message = "a locked select returns rows: `count()` and `exists()` take no row lock",
    label = "`.for_update()` / `.for_share()` was called on this select",
    note = "count or check before locking (`select.count()`), or lock the rows with `.all()` \
            and count them"
)]
pub trait RowsOnlyUnderLock: sealed::Sealed {}

mod sealed {
    pub trait Sealed {}
}

impl<M: Model> Locked<M> {
    /// Does not compile: a row lock on a count means nothing (see [`RowsOnlyUnderLock`]).
    #[doc(hidden)]
    pub async fn count(self) -> Result<i64>
    where
        M: RowsOnlyUnderLock,
    {
        self.select.count().await
    }

    /// Does not compile: a row lock on an existence check means nothing.
    #[doc(hidden)]
    pub async fn exists(self) -> Result<bool>
    where
        M: RowsOnlyUnderLock,
    {
        self.select.exists().await
    }
}

impl<M> fmt::Debug for Locked<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Locked")
            .field("select", &self.select)
            .finish()
    }
}
