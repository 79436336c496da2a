//! [`SelectStream`]: a select's rows decoded as they arrive.

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::stream::{self, Stream};

use crate::conn::stream::Rows;
use crate::error::Result;
use crate::model::Model;

use super::select::Select;

/// The rows of a select as they arrive from the server, decoded one at a
/// time, from [`Select::stream`]: memory stays flat however many rows match.
///
/// It holds a connection until it ends: a pooled one (under row-level
/// security, inside the tenant's transaction, committed at the end), or
/// its transaction's, whose other statements are refused with
/// [`Error::StreamOpen`](crate::Error::StreamOpen) meanwhile. Dropped early,
/// it leaves the connection clean: a tenant's transaction is rolled back
/// before the connection goes back to the pool.
#[must_use = "a stream does nothing until it is polled"]
pub struct SelectStream<M> {
    rows: Rows,
    _model: PhantomData<fn() -> M>,
}

impl<M: Model> Select<M> {
    /// Every matching row, as it arrives, as a
    /// [`Stream`](futures_util::stream::Stream) of `Result<M>`: for results
    /// too large to hold in memory. Confined like [`Select::all`] (on every
    /// handle, in transactions and under row-level security). Nothing is
    /// sent until the stream is first polled.
    ///
    /// ```no_run
    /// # use pebble::{Db, Model};
    /// # use futures_util::StreamExt;
    /// # #[derive(Model)] struct Event { #[pebble(primary_key)] id: i64, #[tenant_id] org: i64, kind: String }
    /// # async fn demo(db: Db) -> pebble::Result<()> {
    /// let mut events = db.tenant(7_i64).select::<Event>().order_by(Event::ID.asc()).stream();
    /// while let Some(event) = events.next().await {
    ///     let event = event?;
    ///     // write it out...
    /// }
    /// # Ok(()) }
    /// ```
    pub fn stream(self) -> SelectStream<M> {
        let rows: Rows = match self.build() {
            Ok(stmt) => {
                let conn = self.core.conn().clone();
                conn.stream(stmt, self.core.scope.clone())
            }
            Err(e) => Box::pin(stream::once(async move { Err(e) })),
        };
        SelectStream {
            rows,
            _model: PhantomData,
        }
    }
}

impl<M: Model> Stream for SelectStream<M> {
    type Item = Result<M>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<M>>> {
        self.rows
            .as_mut()
            .poll_next(cx)
            .map(|row| row.map(|row| row.and_then(|row| M::from_row(&row))))
    }
}

impl<M> fmt::Debug for SelectStream<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelectStream").finish_non_exhaustive()
    }
}
