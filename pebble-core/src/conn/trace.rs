//! Tracing of what pebble sends: one event per statement (target
//! `pebble::sql`, level DEBUG) once its outcome is known, and one per
//! transaction boundary (`BEGIN`, `COMMIT`, `ROLLBACK`).
//!
//! Fields: `sql`, `table`, `tenant` (when the statement is confined to one),
//! `strategy` (`row`, `rls`, `none`, `cross_tenant`), `elapsed_us`, `rows`
//! (returned or affected) or `error`. Bound values are never recorded
//! unless the pool opted in with
//! [`PoolOptions::log_values`](crate::PoolOptions::log_values), and then
//! in a separate TRACE event, so a DEBUG subscriber never sees them.

use std::future::Future;
use std::time::Instant;

use tracing::Instrument;

use super::Statement;
use crate::error::Result;
use crate::scope::Scope;

/// The target of every event here.
pub(crate) const TARGET: &str = "pebble::sql";

/// Runs the future `run` makes (the statement `stmt` under `scope`) and
/// records it.
///
/// Takes a maker, not the future: a future passed in would be kept in
/// this one's state beside the copy each branch awaits, doubling the size
/// of every statement's future (measured: 11.7 KB for a point select),
/// and every move of it on the hot path is a copy of that size.
pub(crate) async fn statement<T, F>(
    stmt: &Statement,
    scope: &Scope,
    log_values: bool,
    rows: impl FnOnce(&T) -> u64,
    run: impl FnOnce() -> F,
) -> Result<T>
where
    F: Future<Output = Result<T>>,
{
    if !tracing::enabled!(target: TARGET, tracing::Level::DEBUG) {
        return run().await;
    }
    let (tenant, strategy) = scope.describe();
    let table = scope.table();
    if log_values {
        tracing::trace!(target: TARGET, sql = stmt.sql(), table, tenant = tenant.as_deref(), values = ?stmt.values().0, "bound values");
    }
    let span = tracing::debug_span!(target: TARGET, "pebble.statement", table, tenant = tenant.as_deref(), strategy);
    let started = Instant::now();
    let result = run().instrument(span).await;
    let elapsed_us = elapsed_us(started);
    match &result {
        Ok(output) => tracing::debug!(
            target: TARGET,
            sql = stmt.sql(),
            table,
            tenant = tenant.as_deref(),
            strategy,
            elapsed_us,
            rows = rows(output),
            "statement"
        ),
        Err(e) => tracing::debug!(
            target: TARGET,
            sql = stmt.sql(),
            table,
            tenant = tenant.as_deref(),
            strategy,
            elapsed_us,
            error = %e,
            "statement failed"
        ),
    }
    result
}

/// Runs `fut`, SQL text pebble or the caller wrote (`BEGIN`, DDL, raw SQL
/// under row-level security), and records it as `kind`.
pub(crate) async fn text<T>(
    sql: &str,
    kind: &'static str,
    tenant: Option<&str>,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    if !tracing::enabled!(target: TARGET, tracing::Level::DEBUG) {
        return fut.await;
    }
    let started = Instant::now();
    let result = fut.await;
    let elapsed_us = elapsed_us(started);
    match &result {
        Ok(_) => tracing::debug!(target: TARGET, sql, tenant, elapsed_us, "{kind}"),
        Err(e) => {
            tracing::debug!(target: TARGET, sql, tenant, elapsed_us, error = %e, "{kind} failed")
        }
    }
    result
}

/// A transaction dropped without `commit()` or `rollback()`, rolled back
/// (or its connection closed) behind the caller's back.
pub(crate) fn dropped_transaction(closed: bool) {
    if closed {
        tracing::debug!(target: TARGET, sql = "ROLLBACK", "transaction dropped: connection closed, which rolls it back");
    } else {
        tracing::debug!(target: TARGET, sql = "ROLLBACK", "transaction dropped: rolled back");
    }
}

fn elapsed_us(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
}
