//! How a statement goes on the wire: as a statement prepared once per
//! connection, or unnamed with its parameter types (for PgBouncer in
//! transaction mode); and, for row-level security, inside a transaction
//! that first sets the tenant, pipelined into one network round trip.

use std::future::{poll_fn, Future};
use std::pin::pin;

use super::client::{Object, PooledClient};
use futures_util::{Stream, TryStreamExt};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Row, SimpleQueryMessage};

use super::Statement;
use crate::error::{Error, Result, SqlState};

/// The setting that carries the tenant of the current transaction, read by
/// the `pebble_tenant()` function the row-level security policies call.
pub(crate) const TENANT_SETTING: &str = "pebble.tenant_id";

/// How pebble sends statements; see [`PoolOptions::statement_mode`](crate::PoolOptions::statement_mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatementMode {
    /// Each statement text is prepared once per connection and kept
    /// (deadpool's statement cache): a repeated statement is one round trip
    /// with no parsing. The default, and the fastest on a direct connection.
    #[default]
    Prepared,
    /// Each statement is sent unnamed with its parameter types (Parse,
    /// Bind, Execute in one message: still one round trip), and nothing is
    /// kept on the server. For poolers that hand each transaction a
    /// different server connection and do not carry named statements
    /// between them, such as PgBouncer before 1.21 in transaction mode.
    Unnamed,
}

/// `sql` prepared on `client`, from its statement cache when it is there
/// (see [`PooledClient::prepare_cached`]).
pub(crate) async fn prepare(
    client: &PooledClient,
    sql: &str,
) -> std::result::Result<tokio_postgres::Statement, tokio_postgres::Error> {
    client.prepare_cached(sql).await
}

/// Whether `error` says that a cached statement is stale: the server no
/// longer has it (`26000`: a `DEALLOCATE`), or its plan can no longer give
/// the result type it was prepared with (`0A000` after a column's type
/// changed, say `text` to `varchar`, which the model still reads). Either
/// way the statement did not run (the server refuses it at Bind).
pub(crate) fn stale_statement(error: &Error) -> bool {
    match error {
        Error::Database {
            code,
            message,
            source,
        } => {
            *code == SqlState::INVALID_SQL_STATEMENT_NAME
                || (*code == SqlState::FEATURE_NOT_SUPPORTED
                    // The function that raises it, whatever the server's
                    // `lc_messages`; the English text for a server that
                    // does not send it.
                    && (source
                        .as_db_error()
                        .and_then(|e| e.routine())
                        .is_some_and(|r| r == "RevalidateCachedQuery")
                        || message.contains("cached plan must not change result type")))
        }
        _ => false,
    }
}

/// Runs `run` with `sql` prepared on `client`. A stale statement (see
/// [`stale_statement`]) is forgotten, so that the connection's next use
/// prepares it again, and, when `retry` (outside a transaction, where the
/// refused statement aborted nothing), run once more, prepared afresh.
pub(crate) async fn with_prepared<'a, T, F, Fut>(
    client: &'a PooledClient,
    sql: &str,
    retry: Retry,
    run: F,
) -> Result<T>
where
    F: Fn(tokio_postgres::Statement) -> Fut,
    Fut: Future<Output = Result<T>> + 'a,
{
    let prepared = prepare(client, sql).await?;
    match run(prepared).await {
        Err(e) if stale_statement(&e) => {
            client.forget_statement(sql);
            if retry == Retry::No {
                return Err(e);
            }
            tracing::debug!(target: "pebble::sql", sql, error = %e, "stale prepared statement: prepared again");
            let prepared = prepare(client, sql).await?;
            run(prepared).await
        }
        other => other,
    }
}

/// Whether a statement refused as stale may be sent again: not inside a
/// transaction the caller holds (the refusal aborted it).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    Once,
    No,
}

/// The rows of `stmt`.
pub(crate) async fn query(
    client: &PooledClient,
    mode: StatementMode,
    stmt: &Statement,
    retry: Retry,
) -> Result<Vec<Row>> {
    match mode {
        StatementMode::Prepared => {
            with_prepared(client, stmt.sql(), retry, |prepared| async move {
                let rows = client.query_raw(&prepared, stmt.param_iter()).await?;
                Ok(rows.try_collect().await?)
            })
            .await
        }
        StatementMode::Unnamed => Ok(client.query_typed(stmt.sql(), &stmt.typed_params()).await?),
    }
}

/// The first row of `stmt`, read from the row stream (no `Vec` of rows),
/// which is read to its end before the connection goes back.
pub(crate) async fn query_first(
    client: &PooledClient,
    mode: StatementMode,
    stmt: &Statement,
    retry: Retry,
) -> Result<Option<Row>> {
    match mode {
        StatementMode::Prepared => {
            with_prepared(client, stmt.sql(), retry, |prepared| async move {
                let rows = client.query_raw(&prepared, stmt.param_iter()).await?;
                futures_util::pin_mut!(rows);
                let mut first = None;
                while let Some(row) = rows.try_next().await? {
                    first.get_or_insert(row);
                }
                Ok(first)
            })
            .await
        }
        StatementMode::Unnamed => Ok(client
            .query_typed(stmt.sql(), &stmt.typed_params())
            .await?
            .into_iter()
            .next()),
    }
}

/// The number of rows `stmt` wrote.
pub(crate) async fn execute(
    client: &PooledClient,
    mode: StatementMode,
    stmt: &Statement,
    retry: Retry,
) -> Result<u64> {
    match mode {
        StatementMode::Prepared => {
            with_prepared(client, stmt.sql(), retry, |prepared| async move {
                Ok(client.execute_raw(&prepared, stmt.param_iter()).await?)
            })
            .await
        }
        StatementMode::Unnamed => execute_typed(client, stmt.sql(), &stmt.typed_params()).await,
    }
}

/// `execute` for an unnamed statement: tokio-postgres only offers typed
/// statements as a row stream, whose end carries the row count.
async fn execute_typed(
    client: &PooledClient,
    sql: &str,
    params: &[(&(dyn ToSql + Sync), Type)],
) -> Result<u64> {
    let stream = client
        .query_typed_raw(sql, params.iter().map(|(value, ty)| (*value, ty.clone())))
        .await?;
    let mut stream = pin!(stream);
    while let Some(row) = poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
        row?;
    }
    Ok(stream.rows_affected().unwrap_or(0))
}

/// What a statement returns: its rows, its first row, or the count of
/// rows it wrote.
pub(crate) enum Output {
    Rows(Vec<Row>),
    /// [`Want::First`] where it was read without collecting the rows.
    First(Option<Row>),
    Count(u64),
}

impl Output {
    pub(crate) fn into_rows(self) -> Vec<Row> {
        match self {
            Output::Rows(rows) => rows,
            Output::First(row) => row.into_iter().collect(),
            Output::Count(_) => Vec::new(),
        }
    }

    pub(crate) fn into_first(self) -> Option<Row> {
        match self {
            Output::Rows(rows) => rows.into_iter().next(),
            Output::First(row) => row,
            Output::Count(_) => None,
        }
    }

    pub(crate) fn into_count(self) -> u64 {
        self.rows()
    }

    /// The rows returned or written (also what tracing records).
    pub(crate) fn rows(&self) -> u64 {
        match self {
            Output::Rows(rows) => rows.len() as u64,
            Output::First(row) => u64::from(row.is_some()),
            Output::Count(n) => *n,
        }
    }
}

/// What to run inside the tenant's transaction.
#[derive(Clone, Copy)]
pub(crate) enum Want {
    Rows,
    /// The first row, for a statement that returns at most one (`LIMIT
    /// 1`): read from the row stream without a `Vec` where the path allows
    /// it, collected like [`Want::Rows`] elsewhere.
    First,
    Count,
}

/// Runs `stmt` inside the tenant's transaction in one round trip (see
/// [`pipelined`]).
pub(crate) async fn in_tenant_context(
    client: &PooledClient,
    mode: StatementMode,
    tenant: &str,
    stmt: &Statement,
    want: Want,
) -> Result<Output> {
    match mode {
        // The whole transaction is sent again: the refusal rolled it back.
        StatementMode::Prepared => {
            with_prepared(client, stmt.sql(), Retry::Once, |prepared| async move {
                let run = run_prepared(client, &prepared, stmt.param_iter(), want);
                pipelined(client, tenant, run).await
            })
            .await
        }
        StatementMode::Unnamed => {
            let params = stmt.typed_params();
            pipelined(client, tenant, run_typed(client, stmt.sql(), &params, want)).await
        }
    }
}

/// Raw SQL's transaction ends with [`SESSION_RESET`], then `COMMIT`, in the
/// same round trip. The reset runs inside the transaction, so that behind
/// a pooler in transaction mode it reaches the server connection the raw
/// SQL ran on (after `COMMIT` the next message may go to another one), and
/// commits with it. Raw SQL can change its session beyond the transaction
/// (`set_config(.., false)`, which could carry a tenant to the next user
/// of the connection; a temporary table shadowing a tenant table;
/// `LISTEN`, advisory locks, cursors): none of it may survive on a pooled
/// connection. It costs raw SQL no round trip.
///
/// Raw SQL inside the tenant's context. With prepared statements this is
/// one round trip, like a builder's statement. Unnamed, the parameters'
/// types are unknown until the server has parsed the text, so it takes
/// two: `BEGIN` with `SET LOCAL`, and a Parse (whose named statement is
/// closed again inside the transaction, so a pooler never sees it outlive
/// the transaction), then the typed statement and `COMMIT`. On an error the
/// transaction may be open: the caller discards the connection.
///
/// With the output, whether the connection may go back to the pool: not
/// when the raw SQL touched the session's prepared statements (see
/// [`STATEMENTS_CHECK`]). Then the caller closes it.
pub(crate) async fn raw_in_tenant_context(
    client: &PooledClient,
    mode: StatementMode,
    tenant: &str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    want: Want,
) -> Result<(Output, Reuse)> {
    match mode {
        StatementMode::Prepared => {
            let prepared = prepare(client, sql).await?;
            let run = run_prepared(client, &prepared, params.iter().copied(), want);
            let (output, checks) = pipelined_then(client, tenant, run, true).await?;
            let reuse = match checks {
                Some((before, after)) => Reuse::after(&before, &after),
                None => Reuse::Close,
            };
            Ok((output, reuse))
        }
        StatementMode::Unnamed => {
            let begin = format!("{}; {STATEMENTS_CHECK}", begin_text(tenant));
            let (before, parsed) = tokio::join!(client.simple_query(&begin), client.prepare(sql));
            let before = before?;
            let types = parsed?.params().to_vec(); // dropping it sends Close, in the transaction
            let typed: Vec<(&(dyn ToSql + Sync), Type)> =
                params.iter().copied().zip(types).collect();
            let (output, statements, commit) = tokio::join!(
                run_typed(client, sql, &typed, want),
                client.simple_query(&CHECK_AND_RESET),
                client.batch_execute("COMMIT"),
            );
            let output = output?;
            let after = statements?;
            commit?;
            Ok((output, Reuse::after(&before, &after)))
        }
    }
}

/// What raw SQL may have done to the session's prepared statements: how
/// many SQL made (`PREPARE`), and the names of those the protocol made
/// (pebble's and tokio-postgres's). Raw SQL under row-level security runs
/// on a pooled connection that the next tenant gets, and the session reset
/// keeps prepared statements (so that the statement cache still hits):
/// raw SQL could `DEALLOCATE` a statement pebble cached for a builder
/// shape and `PREPARE` its own text under the same name, which the next
/// tenant's statement of that shape would then run in its own tenant
/// context (reading that tenant's rows into a session setting, or
/// rewriting them). SQL can remove protocol statements but never make one,
/// so the check is read before and after the raw SQL, inside its
/// transaction, in the same round trip: the connection goes back to the
/// pool only if SQL made none and the protocol's are the same. Every name
/// in it is schema-qualified: raw SQL may set `search_path` (and the role's
/// default one) to a schema where it created a `count` or `string_agg` of
/// its own that would report "nothing changed".
const STATEMENTS_CHECK: &str = "SELECT pg_catalog.count(*) FILTER (WHERE from_sql), \
pg_catalog.string_agg(name, ',' ORDER BY name) FILTER (WHERE NOT from_sql) \
FROM pg_catalog.pg_prepared_statements";

/// [`STATEMENTS_CHECK`], then [`SESSION_RESET`], as one message: both go
/// out before `COMMIT` (a message still to be sent after a reply would
/// follow it). The reset does not touch prepared statements.
static CHECK_AND_RESET: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("{STATEMENTS_CHECK}; {SESSION_RESET}"));

/// Whether a connection may go back to the pool after raw SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reuse {
    /// The session's prepared statements are the ones it had before.
    Keep,
    /// Raw SQL prepared or deallocated a statement: close the connection
    /// (a fresh one has no statement pebble did not make).
    Close,
}

impl Reuse {
    /// From [`STATEMENTS_CHECK`]'s rows before and after the raw SQL: the
    /// first row of each reply (the other statements of those messages
    /// return none but the reset's advisory unlock, which comes after).
    fn after(before: &[SimpleQueryMessage], after: &[SimpleQueryMessage]) -> Reuse {
        let check = |reply: &[SimpleQueryMessage]| {
            reply.iter().find_map(|message| match message {
                SimpleQueryMessage::Row(row) => {
                    Some((row.get(0).map(str::to_owned), row.get(1).map(str::to_owned)))
                }
                _ => None,
            })
        };
        match (check(before), check(after)) {
            (Some((Some(made_before), names_before)), Some((Some(made_after), names_after)))
                if made_before == "0" && made_after == "0" && names_before == names_after =>
            {
                Reuse::Keep
            }
            _ => Reuse::Close,
        }
    }
}

/// `BEGIN` with `SET LOCAL` (one message, see [`begin_text`]), `run` and
/// `COMMIT`, all written before the first reply is awaited: one round
/// trip. Each must go out as one message (an already prepared statement,
/// or an unnamed typed one): a statement still to be prepared would wait
/// for its Parse reply and run after COMMIT, with no tenant set. They are
/// polled with `join!`, never `try_join!`: an early return could leave
/// `COMMIT` unsent.
async fn pipelined(
    client: &PooledClient,
    tenant: &str,
    run: impl Future<Output = Result<Output>>,
) -> Result<Output> {
    Ok(pipelined_then(client, tenant, run, false).await?.0)
}

/// Everything `DISCARD ALL` resets but prepared statements: the
/// connection keeps its statement cache (with `DISCARD ALL` every raw
/// statement, and every builder statement after it, would be prepared again,
/// a round trip each). Prepared statements are what raw SQL could still
/// change for the next tenant: [`STATEMENTS_CHECK`] closes a connection
/// whose statements it changed.
///
/// `SET SESSION AUTHORIZATION DEFAULT` first, as `DISCARD ALL` does: `RESET
/// ALL` leaves a `SET ROLE` in place, and the next tenant's statements
/// would run as that role.
const SESSION_RESET: &str = "SET SESSION AUTHORIZATION DEFAULT; RESET ALL; CLOSE ALL; \
UNLISTEN *; SELECT pg_catalog.pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES";

/// The replies of [`STATEMENTS_CHECK`] before and after raw SQL.
type Checks = (Vec<SimpleQueryMessage>, Vec<SimpleQueryMessage>);

/// [`pipelined`]; when `reset`, with [`STATEMENTS_CHECK`] in the `BEGIN`
/// message, and the check again and [`SESSION_RESET`] between the
/// statement and `COMMIT` (their replies with the output).
async fn pipelined_then(
    client: &PooledClient,
    tenant: &str,
    run: impl Future<Output = Result<Output>>,
    reset: bool,
) -> Result<(Output, Option<Checks>)> {
    let begin = begin_text(tenant);
    let (begin, output, after, commit) = if reset {
        let begin = format!("{begin}; {STATEMENTS_CHECK}");
        let (begin, output, after, commit) = tokio::join!(
            client.simple_query(&begin),
            run,
            client.simple_query(&CHECK_AND_RESET),
            client.batch_execute("COMMIT"),
        );
        (begin.map(Some), output, after.map(Some), commit)
    } else {
        let (begin, output, commit) = tokio::join!(
            client.batch_execute(&begin),
            run,
            client.batch_execute("COMMIT"),
        );
        (begin.map(|()| None), output, Ok(None), commit)
    };
    // First failure first: a failed `BEGIN` or `SET LOCAL` explains the
    // statement's failure, not the reverse; a failed statement aborted the
    // transaction, which fails the reset too, and rolls back what it set.
    let before = begin?;
    let output = output?;
    let after = after?;
    commit?;
    Ok((output, before.zip(after)))
}

/// `BEGIN` and `SET LOCAL pebble.tenant_id = <tenant>` as one simple-query
/// message. Measured: two messages (`BEGIN`, then a parameterised
/// `set_config`) cost the server a third more per statement at 16 clients
/// than one; and `SET LOCAL`, a utility statement, is not analysed,
/// planned or run by the executor as `SELECT set_config(.., true)` (same
/// effect) is on every statement. The tenant goes in as an `E'...'` literal
/// with `\\` and `'` escaped, which reads the same whatever
/// `standard_conforming_strings` says. A tenant with a NUL byte never gets
/// here (the scope refuses it): the message would fail to encode while the
/// statement behind it still went out.
pub(crate) fn begin_text(tenant: &str) -> String {
    begin_text_with("BEGIN", tenant)
}

/// [`begin_text`] starting with `begin` (`BEGIN` and its transaction
/// options: they must come before the first query of the transaction).
fn begin_text_with(begin: &str, tenant: &str) -> String {
    const SET: &str = "; SET LOCAL ";
    // One allocation per statement, sized for the worst case (every
    // character escaped), instead of one per escape pass and the format.
    let mut text = String::with_capacity(
        begin.len() + SET.len() + TENANT_SETTING.len() + 5 + 2 * tenant.len() + 1,
    );
    text.push_str(begin);
    text.push_str(SET);
    text.push_str(TENANT_SETTING);
    text.push_str(" = E'");
    for c in tenant.chars() {
        match c {
            '\\' => text.push_str("\\\\"),
            '\'' => text.push_str("''"),
            c => text.push(c),
        }
    }
    text.push('\'');
    text
}

async fn run_prepared<'a>(
    client: &PooledClient,
    prepared: &tokio_postgres::Statement,
    params: impl ExactSizeIterator<Item = &'a (dyn ToSql + Sync)>,
    want: Want,
) -> Result<Output> {
    Ok(match want {
        Want::Rows | Want::First => Output::Rows(
            client
                .query_raw(prepared, params)
                .await?
                .try_collect()
                .await?,
        ),
        Want::Count => Output::Count(client.execute_raw(prepared, params).await?),
    })
}

async fn run_typed(
    client: &PooledClient,
    sql: &str,
    params: &[(&(dyn ToSql + Sync), Type)],
    want: Want,
) -> Result<Output> {
    Ok(match want {
        Want::Rows | Want::First => Output::Rows(client.query_typed(sql, params).await?),
        Want::Count => Output::Count(execute_typed(client, sql, params).await?),
    })
}

/// Raw SQL inside a transaction that already carries its tenant.
pub(crate) async fn raw_in_transaction(
    client: &PooledClient,
    mode: StatementMode,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    want: Want,
) -> Result<Output> {
    // Inside a transaction a pooler keeps the same server connection, so a
    // statement prepared here can be used here; unnamed mode just does not
    // keep it (dropping it closes it before the transaction ends).
    let prepared = match mode {
        StatementMode::Prepared => prepare(client, sql).await?,
        StatementMode::Unnamed => client.prepare(sql).await?,
    };
    Ok(match want {
        Want::Rows | Want::First => Output::Rows(client.query(&prepared, params).await?),
        Want::Count => Output::Count(client.execute(&prepared, params).await?),
    })
}

/// `begin` (`BEGIN` with its options) and `SET LOCAL` on a transaction's
/// connection, in one message.
pub(crate) async fn begin_in_tenant_context(
    client: &PooledClient,
    begin: &str,
    tenant: &str,
    also: &str,
) -> Result<()> {
    Ok(client
        .batch_execute(&format!("{}; {also}", begin_text_with(begin, tenant)))
        .await?)
}

/// A pooled connection running a pipelined transaction. Dropped before the
/// transaction's outcome is known (the caller's future was cancelled), the
/// connection is detached from the pool and closed rather than reused: its
/// server session may still be inside the tenant's transaction.
pub(crate) struct InFlight(Option<Object>);

impl InFlight {
    pub(crate) fn new(client: Object) -> Self {
        InFlight(Some(client))
    }

    pub(crate) fn client(&self) -> Result<&PooledClient> {
        self.0.as_deref().ok_or(Error::TransactionEnded)
    }

    /// The transaction finished (committed or failed): back to the pool.
    pub(crate) fn done(mut self) {
        drop(self.0.take());
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            drop(Object::take(client));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::begin_text;

    #[test]
    fn begin_text_escapes_quotes_and_backslashes() {
        assert_eq!(
            begin_text(r"a'b\c"),
            r"BEGIN; SET LOCAL pebble.tenant_id = E'a''b\\c'"
        );
        assert_eq!(
            begin_text("42"),
            "BEGIN; SET LOCAL pebble.tenant_id = E'42'"
        );
    }
}
