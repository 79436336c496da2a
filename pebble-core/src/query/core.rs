//! What every builder shares: where it runs, how it is confined, the
//! statement it grows, and the steps from there to decoded rows.

use std::fmt;
use std::marker::PhantomData;

use sea_query::{
    ConditionalStatement, DeleteStatement, InsertStatement, Returning, ReturningClause,
    UpdateStatement,
};
use sea_query_postgres::PostgresBinder;
use tokio_postgres::Row;

use crate::conn::{Conn, Statement};
use crate::error::Result;
use crate::filter::Filter;
use crate::model::Model;
use crate::scope::Scope;

/// A builder's connection, scope and statement on model `M`. The scope's
/// tenant condition is put in the statement when the core is made, before
/// any user filter, so filters can only narrow it.
pub(crate) struct Core<M, S> {
    conn: Conn,
    pub(crate) scope: Scope,
    pub(crate) stmt: S,
    _model: PhantomData<fn() -> M>,
}

impl<M: Model, S: PostgresBinder> Core<M, S> {
    /// A core whose statement takes no WHERE clause (an insert); its
    /// scope confines it otherwise (stamping, a conflict's condition).
    pub(crate) fn new(conn: Conn, scope: Scope, stmt: S) -> Self {
        Core {
            conn,
            scope,
            stmt,
            _model: PhantomData,
        }
    }

    /// Its connection, scope and statement.
    pub(crate) fn into_parts(self) -> (Conn, Scope, S) {
        (self.conn, self.scope, self.stmt)
    }

    /// The statement as it would be sent, or why the scope sends nothing.
    pub(crate) fn build(&self) -> Result<Statement> {
        self.scope.check()?;
        Ok(Statement::new(&self.stmt))
    }

    /// Where the builder runs.
    pub(crate) fn conn(&self) -> &Conn {
        &self.conn
    }

    /// Runs `stmt` (this builder's, possibly reshaped); the rows it wrote.
    pub(crate) async fn execute(&self, stmt: &Statement) -> Result<u64> {
        self.conn.execute(stmt, &self.scope).await
    }

    /// Runs `stmt` (this builder's, possibly reshaped); its rows.
    pub(crate) async fn rows(&self, stmt: &Statement) -> Result<Vec<Row>> {
        self.conn.rows(stmt, &self.scope).await
    }

    /// Runs the statement and decodes every row it returns as an `M`.
    pub(crate) async fn all(&self) -> Result<Vec<M>> {
        let stmt = self.build()?;
        self.rows(&stmt).await?.iter().map(M::from_row).collect()
    }
}

impl<M, S: fmt::Debug> Core<M, S> {
    /// The fields every builder's `Debug` shows; the builder adds its own.
    pub(crate) fn debug<'a, 'b>(
        &self,
        f: &'a mut fmt::Formatter<'b>,
        name: &str,
    ) -> fmt::DebugStruct<'a, 'b> {
        let mut out = f.debug_struct(name);
        out.field("scope", &self.scope)
            .field("statement", &self.stmt);
        out
    }
}

impl<M: Model, S: PostgresBinder + ConditionalStatement> Core<M, S> {
    /// A core whose statement starts its WHERE clause with the scope's
    /// tenant condition.
    pub(crate) fn confined(conn: Conn, scope: Scope, mut stmt: S) -> Self {
        scope.confine(&mut stmt);
        Core::new(conn, scope, stmt)
    }

    /// AND-s `filter` after the conditions already there, as one
    /// parenthesised term.
    pub(crate) fn filter(&mut self, filter: Filter<M>) {
        self.stmt.and_where(filter.into_expr());
    }
}

impl<M: Model, S: PostgresBinder + Returns> Core<M, S> {
    /// Runs the statement followed by `RETURNING` and every column of `M`;
    /// the rows as stored.
    pub(crate) async fn returning(mut self) -> Result<Vec<M>> {
        self.stmt.returning_all(all_columns::<M>());
        self.all().await
    }
}

/// The statements that can return the rows they wrote.
pub(crate) trait Returns {
    fn returning_all(&mut self, clause: ReturningClause);
}

impl Returns for InsertStatement {
    fn returning_all(&mut self, clause: ReturningClause) {
        self.returning(clause);
    }
}

impl Returns for UpdateStatement {
    fn returning_all(&mut self, clause: ReturningClause) {
        self.returning(clause);
    }
}

impl Returns for DeleteStatement {
    fn returning_all(&mut self, clause: ReturningClause) {
        self.returning(clause);
    }
}

/// `M`'s columns in field order: what `from_row` decodes.
pub(crate) fn column_names<M: Model>() -> impl Iterator<Item = &'static str> {
    M::COLUMNS.iter().map(|c| c.name)
}

fn all_columns<M: Model>() -> ReturningClause {
    Returning::new().columns(column_names::<M>())
}
