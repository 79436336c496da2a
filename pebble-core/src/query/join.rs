//! Joins: [`Join`], from `select::<M>().join::<J>().on(cond)` or
//! `.left_join::<J>().on(cond)`, on a tenant handle (and on a plain `Db`
//! for shared and per-tenant models, or through `cross_tenant()`).
//!
//! Confinement: the base model keeps its tenant condition first in the
//! WHERE clause, and every joined tenant model gets its own
//! `"table"."tenant_col" = $n` first in its ON clause (in WHERE it would
//! turn a LEFT JOIN into an inner one). Whatever the join condition says,
//! no row is paired with another tenant's row, and a left join's optional
//! side is never filled from another tenant. Through `cross_tenant()`
//! every tenant is reached, but each joined tenant model's ON clause
//! still starts with its tenant column equal to the first tenant model's
//! (`"projects"."org" = "tasks"."org"`); a plain `Db` refuses to join a
//! tenant model at all ([`Error::TenantModelJoinedThroughDb`]).
//!
//! Typing: a query's models are the type `S` (`(Task, Project, User)`),
//! what it decodes to is `O` (`(Task, Project, Option<User>)`). Filters,
//! orders, join conditions and selected columns only compile for models
//! in `S` ([`InQuery`]); only models of the handle's tenant key type, or
//! shared models, can be joined ([`Joinable`]). A model joined twice (a
//! self-join) is not supported: its columns could not say which copy
//! they mean.

use std::fmt;
use std::marker::PhantomData;

use sea_query::{Condition as SeaCondition, Expr, ExprTrait, JoinType, Query, SelectStatement};
use tokio_postgres::types::FromSql;
use tokio_postgres::Row;

use crate::aggregate::On;
use crate::column::Order;
use crate::conn::{Conn, Statement};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::model::{JoinBase, Joinable, Model, Target};
use crate::scope::Scope;

use super::projection::{Projection, Selection};
use super::select::Select;

/// Where a model sits in a query's models (`At0` is the base). Hidden: it
/// only exists for the compiler to find the position.
#[doc(hidden)]
pub mod index {
    /// The base model.
    pub struct At0;
    /// The first joined model.
    pub struct At1;
    /// The second joined model.
    pub struct At2;
    /// The third joined model.
    pub struct At3;
}

/// Whether a model's columns can be NULL in a query's rows: those of a
/// left-joined model can.
pub trait Nullness {
    /// What a column of type `T` of such a model decodes as: `T`, or
    /// `Option<T::Base>` for a left-joined model.
    type Out<T: crate::SqlType>: for<'a> FromSql<'a> + Send;
}

/// The columns of a model present in every row (the base, inner joins).
pub struct NotNull;

/// The columns of a left-joined model: NULL where it found no row.
pub struct MaybeNull;

impl Nullness for NotNull {
    type Out<T: crate::SqlType> = T;
}

impl Nullness for MaybeNull {
    type Out<T: crate::SqlType> = Option<T::Base>;
}

/// One element of a joined row: a model, or `Option` of a left-joined one.
pub trait Part: Sized {
    /// The model.
    type Model: Model;
    /// Whether its columns may be NULL.
    type Null: Nullness;
    /// Decodes it from `row`, its columns starting at `offset`.
    fn decode(row: &Row, offset: usize) -> Result<Self>;
}

impl<M: Model> Part for M {
    type Model = M;
    type Null = NotNull;

    fn decode(row: &Row, offset: usize) -> Result<Self> {
        M::from_row_at(row, offset)
    }
}

impl<M: Model> Part for Option<M> {
    type Model = M;
    type Null = MaybeNull;

    /// `None` when the left join found no row: its primary key columns
    /// (which are never NULL in a stored row) are NULL, or every column
    /// for a model without a key.
    fn decode(row: &Row, offset: usize) -> Result<Self> {
        let keyed = M::COLUMNS.iter().any(|c| c.primary_key);
        let mut probe = M::COLUMNS
            .iter()
            .enumerate()
            .filter(|(_, c)| c.primary_key || !keyed);
        let absent =
            probe.all(|(i, _)| matches!(row.try_get::<_, Option<Present>>(offset + i), Ok(None)));
        if absent {
            Ok(None)
        } else {
            M::from_row_at(row, offset).map(Some)
        }
    }
}

/// Any value, to tell NULL from not NULL whatever the column's type.
struct Present;

impl<'a> FromSql<'a> for Present {
    fn from_sql(
        _: &tokio_postgres::types::Type,
        _: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Present)
    }

    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true
    }
}

/// `Self` is one of the models of a query whose models are `S` and whose
/// rows decode as `O`; `I` is its position ([`index`]), found by the
/// compiler.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not one of the models of this query",
    label = "this refers to `{Self}`, which the query does not select or join",
    note = "join the model first (`.join::<{Self}>().on(...)` or `.left_join::<{Self}>().on(...)`), \
            or use a column of a model the query has"
)]
pub trait InQuery<S, O, I>: Model {
    /// Whether its columns may be NULL in the rows.
    type Null: Nullness;
}

/// The models of a query (`(Task, Project)`), and the decoded rows.
pub trait Models: Sized {
    /// The rows as decoded: `(Task, Project)`, `(Task, Option<User>)`.
    type Row;
    /// Decodes one row.
    fn decode(row: &Row) -> Result<Self::Row>;
    /// The base model's table, for errors.
    fn base_table() -> &'static str;
}

/// Adds a model `J` (decoded as `P`) to a query's models and rows.
pub trait Push<J, P> {
    /// The models with `J`.
    type Models;
    /// The rows with `P`.
    type Rows;
}

macro_rules! query_models {
    ($(($($m:ident $o:ident $at:ident),+));+) => {$(
        impl<$($m: Model, $o: Part<Model = $m>),+> Models for (($($m,)+), ($($o,)+)) {
            type Row = ($($o,)+);

            #[allow(unused_assignments)]
            fn decode(row: &Row) -> Result<Self::Row> {
                let mut offset = 0;
                Ok(($({
                    let part = <$o as Part>::decode(row, offset)?;
                    offset += $m::COLUMNS.len();
                    part
                },)+))
            }

            fn base_table() -> &'static str {
                <query_models!(@first $($m)+) as Model>::TABLE
            }
        }

        query_models!(@members [$($m $o $at),+] $($m $o $at),+);
    )+};
    (@first $first:ident $($rest:ident)*) => { $first };
    (@members $all:tt $($sm:ident $so:ident $sat:ident),+) => {$(
        query_models!(@member $all $sm $so $sat);
    )+};
    (@member [$($m:ident $o:ident $at:ident),+] $sm:ident $so:ident $sat:ident) => {
        impl<$($m: Model, $o: Part<Model = $m>),+> InQuery<($($m,)+), ($($o,)+), index::$sat> for $sm {
            type Null = <$so as Part>::Null;
        }
    };
}

query_models! {
    (A OA At0);
    (A OA At0, B OB At1);
    (A OA At0, B OB At1, C OC At2);
    (A OA At0, B OB At1, C OC At2, D OD At3)
}

impl<A, OA, J, P> Push<J, P> for ((A,), (OA,)) {
    type Models = (A, J);
    type Rows = (OA, P);
}

impl<A, B, OA, OB, J, P> Push<J, P> for ((A, B), (OA, OB)) {
    type Models = (A, B, J);
    type Rows = (OA, OB, P);
}

impl<A, B, C, OA, OB, OC, J, P> Push<J, P> for ((A, B, C), (OA, OB, OC)) {
    type Models = (A, B, C, J);
    type Rows = (OA, OB, OC, P);
}

/// A `SELECT` over several models of one tenant, joined: from
/// `select::<M>().join::<J>().on(on)` on a tenant handle. Finish with `all()`,
/// `one()`, `optional()` or `count()`, or pick columns and aggregates with
/// [`Join::columns`].
///
/// ```no_run
/// # use pebble::Model;
/// # use uuid::Uuid;
/// # #[derive(Model)] #[pebble(table = "projects")]
/// # struct Project { #[pebble(primary_key)] id: i64, #[tenant_id] org: Uuid, name: String }
/// # #[derive(Model)] #[pebble(table = "users")]
/// # struct User { #[pebble(primary_key)] id: i64, #[tenant_id] org: Uuid, name: String }
/// # #[derive(Model)] #[pebble(table = "tasks")]
/// # struct Task { #[pebble(primary_key)] id: i64, #[tenant_id] org: Uuid, project_id: i64,
/// #   assignee_id: Option<i64>, title: String }
/// # async fn demo(db: pebble::Db, acme: Uuid) -> pebble::Result<()> {
/// let rows: Vec<(Task, Project, Option<User>)> = db
///     .tenant(acme)
///     .select::<Task>()
///     .join::<Project>().on(Task::PROJECT_ID.eq_col(Project::ID))
///     .left_join::<User>().on(Task::ASSIGNEE_ID.eq_col(User::ID))
///     .filter(Project::NAME.eq("Apollo"))
///     .order_by(User::NAME.asc())
///     .all()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "a query does nothing until it is run with `.all()`, `.one()`, `.count()`..."]
pub struct Join<K, S, O> {
    pub(crate) conn: Conn,
    pub(crate) scope: Scope,
    pub(crate) stmt: SelectStatement,
    /// The joined models, checked against their tables like the base.
    pub(crate) joined: Vec<Target>,
    /// The base table, when filters came before the join: nothing is sent.
    pub(crate) shaped: Option<&'static str>,
    /// A joined tenant model's table, when the scope has no tenant to
    /// confine it by (see [`Scope::refuses_joined`]): nothing is sent.
    pub(crate) unconfined: Option<&'static str>,
    /// The (table, tenant column) of the query's first tenant model, which
    /// later tenant models pair with under `cross_tenant()`.
    pub(crate) anchor: Option<(&'static str, &'static str)>,
    _marker: Marker<K, S, O>,
}

type Marker<K, S, O> = PhantomData<fn() -> (K, S, O)>;

/// A [`Join`] with model `J` added, decoded as `P`.
pub type Joined<K, S, O, J, P> =
    Join<K, <(S, O) as Push<J, P>>::Models, <(S, O) as Push<J, P>>::Rows>;

impl<K, S, O> Join<K, S, O> {
    pub(crate) fn retype<S2, O2>(self) -> Join<K, S2, O2> {
        Join {
            conn: self.conn,
            scope: self.scope,
            stmt: self.stmt,
            joined: self.joined,
            shaped: self.shaped,
            unconfined: self.unconfined,
            anchor: self.anchor,
            _marker: PhantomData,
        }
    }
}

/// The columns of `M`, qualified, in field order: what `from_row_at` decodes.
pub(crate) fn select_model<M: Model>(stmt: &mut SelectStatement) {
    for column in M::COLUMNS {
        stmt.column((M::TABLE, column.name));
    }
}

/// A join's start from a select: the base's FROM and its tenant condition,
/// qualified; no columns yet.
pub(crate) fn start<M: JoinBase>(select: Select<M>) -> Join<M::JoinKey, (M,), (M,)> {
    let (conn, scope, shaped) = select.into_start();
    let mut stmt = Query::select();
    stmt.from(scope.table_ref::<M>());
    if let Some(tenant) = scope.qualified_condition(M::TABLE) {
        stmt.and_where(tenant);
    }
    Join {
        conn,
        scope,
        stmt,
        joined: Vec::new(),
        shaped: shaped.then_some(M::TABLE),
        unconfined: None,
        anchor: Target::of::<M>()
            .tenant_column()
            .map(|c| (M::TABLE, c.name)),
        _marker: PhantomData,
    }
}

impl<M: JoinBase> Select<M> {
    /// Inner-joins `J`: finish with [`Pending::on`]. Rows of this tenant's
    /// `M` paired with this tenant's `J`. `J` must be a model of the same
    /// tenant key type (its ON clause gets its own tenant condition) or a
    /// shared model. Call it right after `select::<M>()`; filter and sort
    /// after it.
    pub fn join<J: Joinable<M::JoinKey>>(self) -> Pending<M::JoinKey, (M,), (M,), J, J> {
        Pending::new(base(self), JoinType::InnerJoin)
    }

    /// Left-joins `J`: finish with [`Pending::on`]. Every row of this
    /// tenant's `M`, with this tenant's matching `J`, or `None` (never
    /// another tenant's row).
    pub fn left_join<J: Joinable<M::JoinKey>>(
        self,
    ) -> Pending<M::JoinKey, (M,), (M,), J, Option<J>> {
        Pending::new(base(self), JoinType::LeftJoin)
    }

    /// Selects chosen columns and aggregates of `M` instead of whole rows:
    /// `.columns((Task::ID, Task::TITLE))` gives `(i64, String)` tuples.
    /// See [`Join::columns`].
    pub fn columns<C, I>(self, columns: C) -> Projection<M::JoinKey, (M,), (M,), C::Out>
    where
        C: Selection<(M,), (M,), I>,
    {
        start(self).columns(columns)
    }
}

/// A join waiting for its condition: `.join::<Project>()` then
/// `.on(Task::PROJECT_ID.eq_col(Project::ID))`. `P` is how `J` decodes
/// (`J`, or `Option<J>` for a left join).
#[must_use = "a join needs its condition: `.on(a.eq_col(b))`"]
pub struct Pending<K, S, O, J, P> {
    join: Join<K, S, O>,
    kind: JoinType,
    /// Conditions on `J` alone, for its ON clause.
    only: Vec<Expr>,
    _marker: PhantomData<fn() -> (J, P)>,
}

impl<K, S, O, J, P> Pending<K, S, O, J, P> {
    fn new(join: Join<K, S, O>, kind: JoinType) -> Self {
        Pending {
            join,
            kind,
            only: Vec::new(),
            _marker: PhantomData,
        }
    }
}

impl<K, S, O, J: Model, P> Pending<K, S, O, J, P> {
    /// Joins only the rows of `J` matching `filter`: the condition goes in
    /// the ON clause (after `J`'s tenant condition), so a left join still
    /// keeps every row of the query, with `None` where no such `J`
    /// matched: `.left_join::<User>().only(User::ACTIVE.eq(true)).on(...)`.
    /// The same filter in `filter` (the WHERE clause) would drop those rows.
    pub fn only(mut self, filter: Filter<J>) -> Self {
        self.only.push(qualify(filter.into_expr(), J::TABLE));
        self
    }
}

impl<K, S, O, J: Joinable<K>, P> Pending<K, S, O, J, P>
where
    (S, O): Models + Push<J, P>,
{
    /// The join condition, between two models of the query (the joined
    /// one included): `Task::PROJECT_ID.eq_col(Project::ID)`.
    #[allow(clippy::type_complexity)]
    pub fn on<A, B, IA, IB>(self, on: On<A, B>) -> Joined<K, S, O, J, P>
    where
        A: InQuery<<(S, O) as Push<J, P>>::Models, <(S, O) as Push<J, P>>::Rows, IA>,
        B: InQuery<<(S, O) as Push<J, P>>::Models, <(S, O) as Push<J, P>>::Rows, IB>,
    {
        let mut on = on.into_expr();
        for only in self.only {
            on = on.and(only);
        }
        self.join.add::<J, P>(self.kind, on)
    }
}

impl<K, S, O, J, P> fmt::Debug for Pending<K, S, O, J, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending").field("join", &self.join).finish()
    }
}

fn base<M: JoinBase>(select: Select<M>) -> Join<M::JoinKey, (M,), (M,)> {
    let mut join = start(select);
    select_model::<M>(&mut join.stmt);
    join
}

impl<K, S, O> Join<K, S, O>
where
    (S, O): Models,
{
    /// Adds `J` to the query; `P` is how it decodes (`J` or `Option<J>`).
    fn add<J: Joinable<K>, P>(mut self, kind: JoinType, on: Expr) -> Joined<K, S, O, J, P>
    where
        (S, O): Push<J, P>,
    {
        let target = Target::of::<J>();
        let tenant_column = target.tenant_column().map(|c| c.name);
        // `Joinable` is a public trait: a hand-written impl can make a
        // tenant model compile into a plain `Db` query, whose scope has no
        // tenant for its ON clause. Refused when run, not silently unconfined.
        if self.scope.refuses_joined(tenant_column) {
            self.unconfined.get_or_insert(J::TABLE);
        }
        let mut condition = SeaCondition::all();
        // The joined table's own tenant condition comes first, so the user's
        // condition can only narrow it.
        if let Some(tenant) = self
            .scope
            .joined_condition(J::TABLE, tenant_column, self.anchor)
        {
            condition = condition.add(tenant);
        }
        condition = condition.add(on);
        if self.anchor.is_none() {
            self.anchor = tenant_column.map(|column| (J::TABLE, column));
        }
        self.stmt
            .join(kind, self.scope.joined_table_ref::<J>(), condition);
        select_model::<J>(&mut self.stmt);
        self.joined.push(target);
        self.retype()
    }

    /// Inner-joins `J` (see [`Select::join`]); finish with [`Pending::on`].
    pub fn join<J: Joinable<K>>(self) -> Pending<K, S, O, J, J> {
        Pending::new(self, JoinType::InnerJoin)
    }

    /// Left-joins `J` (see [`Select::left_join`]); finish with [`Pending::on`].
    pub fn left_join<J: Joinable<K>>(self) -> Pending<K, S, O, J, Option<J>> {
        Pending::new(self, JoinType::LeftJoin)
    }

    /// Keeps rows matching `filter`, on any model of the query (a
    /// [`Filter`], or a [`Cond`] combining filters of several models).
    /// Several calls are AND-ed, after the tenant condition.
    pub fn filter<C: Condition<S, O, I>, I>(mut self, filter: C) -> Self {
        self.stmt.and_where(filter.into_qualified());
        self
    }

    /// Sorts by a column of any model of the query; call again for
    /// further sort keys.
    pub fn order_by<N: InQuery<S, O, I>, I>(mut self, order: Order<N>) -> Self {
        self.stmt.order_by((N::TABLE, order.column), order.order);
        self
    }

    /// Returns at most `n` rows.
    pub fn limit(mut self, n: u64) -> Self {
        self.stmt.limit(super::select::as_bigint(n));
        self
    }

    /// Skips the first `n` rows.
    pub fn offset(mut self, n: u64) -> Self {
        self.stmt.offset(super::select::as_bigint(n));
        self
    }

    /// The statement `all()` sends, or why nothing would be sent.
    pub fn build(&self) -> Result<Statement> {
        self.check()?;
        Ok(Statement::new(&self.stmt))
    }

    /// The SQL text of [`Join::build`].
    pub fn to_sql(&self) -> Result<String> {
        self.build().map(Statement::into_sql)
    }

    pub(crate) fn check(&self) -> Result<()> {
        self.scope.check()?;
        if let Some(table) = self.unconfined {
            return Err(Error::TenantModelJoinedThroughDb { table });
        }
        match self.shaped {
            Some(table) => Err(Error::ShapedBeforeJoin { table }),
            None => Ok(()),
        }
    }

    pub(crate) async fn rows(&self, stmt: &Statement) -> Result<Vec<Row>> {
        self.conn.rows_joined(stmt, &self.scope, &self.joined).await
    }

    /// Every matching row, as a tuple of the query's models.
    pub async fn all(self) -> Result<Vec<<(S, O) as Models>::Row>> {
        let stmt = self.build()?;
        self.rows(&stmt)
            .await?
            .iter()
            .map(<(S, O) as Models>::decode)
            .collect()
    }

    /// The first matching row, if any.
    pub async fn optional(mut self) -> Result<Option<<(S, O) as Models>::Row>> {
        self.stmt.limit(1);
        let stmt = self.build()?;
        let rows = self.rows(&stmt).await?;
        rows.first().map(<(S, O) as Models>::decode).transpose()
    }

    /// The first matching row, or [`Error::NotFound`].
    pub async fn one(self) -> Result<<(S, O) as Models>::Row> {
        self.optional().await?.ok_or(Error::NotFound {
            table: <(S, O) as Models>::base_table(),
        })
    }

    /// How many joined rows match (ignores order, limit and offset).
    pub async fn count(mut self) -> Result<i64> {
        self.stmt
            .clear_selects()
            .clear_order_by()
            .reset_limit()
            .reset_offset();
        self.stmt.expr(Expr::col(sea_query::Asterisk).count());
        self.check()?;
        let stmt = Statement::new(&self.stmt);
        let rows = self.rows(&stmt).await?;
        let row = rows.first().ok_or(Error::NotFound {
            table: <(S, O) as Models>::base_table(),
        })?;
        Ok(row.try_get(0)?)
    }

    /// Selects chosen columns and aggregates of the query's models instead
    /// of whole rows; a tuple of up to 8, decoded as a tuple of their
    /// types (a column of a left-joined model as an `Option`):
    /// `.columns((Project::NAME, pebble::count()))` gives `(String, i64)`.
    pub fn columns<C: Selection<S, O, I>, I>(mut self, columns: C) -> Projection<K, S, O, C::Out> {
        self.stmt.clear_selects();
        Projection::new(self, columns)
    }
}

impl<K, S, O> fmt::Debug for Join<K, S, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Join")
            .field("scope", &self.scope)
            .field("statement", &self.stmt)
            .finish()
    }
}

/// A condition a join's `filter` takes: a [`Filter`] on one of its
/// models, or a [`Cond`] over several.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a condition on the models of this query",
    note = "filter on columns of models the query selects or joins"
)]
pub trait Condition<S, O, I> {
    #[doc(hidden)]
    fn into_qualified(self) -> Expr;
}

impl<S, O, I, N: InQuery<S, O, I>> Condition<S, O, I> for Filter<N> {
    fn into_qualified(self) -> Expr {
        qualify(self.into_expr(), N::TABLE)
    }
}

/// Filters on different models combined, for a join:
/// `Cond::from(Project::NAME.eq("Apollo")).or(User::NAME.eq("bob"))`.
/// `Ms` lists the models it mentions; a join only takes it if it has them all.
pub struct Cond<Ms> {
    expr: Expr,
    _marker: PhantomData<fn() -> Ms>,
}

impl<M: Model> From<Filter<M>> for Cond<(M,)> {
    fn from(filter: Filter<M>) -> Self {
        Cond {
            expr: qualify(filter.into_expr(), M::TABLE),
            _marker: PhantomData,
        }
    }
}

impl<Ms> Cond<Ms> {
    /// Both conditions hold.
    pub fn and<Ns>(self, other: impl Into<Cond<Ns>>) -> Cond<(Ms, Ns)> {
        Cond {
            expr: self.expr.and(other.into().expr),
            _marker: PhantomData,
        }
    }

    /// Either condition holds.
    pub fn or<Ns>(self, other: impl Into<Cond<Ns>>) -> Cond<(Ms, Ns)> {
        Cond {
            expr: self.expr.or(other.into().expr),
            _marker: PhantomData,
        }
    }

    /// The condition does not hold.
    #[allow(clippy::should_implement_trait)] // a method reads better in chains
    pub fn not(self) -> Cond<Ms> {
        Cond {
            expr: self.expr.not(),
            _marker: PhantomData,
        }
    }
}

impl<Ms> fmt::Debug for Cond<Ms> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Cond").field(&self.expr).finish()
    }
}

/// The models a [`Cond`] mentions are all in the query.
pub trait Mentions<S, O, I> {}

impl<S, O, I, M: InQuery<S, O, I>> Mentions<S, O, I> for (M,) {}

impl<S, O, IA, IB, A: Mentions<S, O, IA>, B: Mentions<S, O, IB>> Mentions<S, O, (IA, IB)>
    for (A, B)
{
}

impl<S, O, I, Ms: Mentions<S, O, I>> Condition<S, O, (I,)> for Cond<Ms> {
    fn into_qualified(self) -> Expr {
        self.expr
    }
}

/// `filter`'s columns, which a [`Filter`] holds unqualified (the
/// single-table builders send them so), qualified by `table`: in a join,
/// models share column names. Filters only put columns directly in
/// comparisons (a column on one side, values or value functions on the
/// other), which is what this walks.
pub(crate) fn qualify(expr: Expr, table: &'static str) -> Expr {
    use sea_query::{ColumnName, ColumnRef, IntoIden, TableName};
    match expr {
        Expr::Column(ColumnRef::Column(ColumnName(None, column))) => Expr::Column(
            ColumnRef::Column(ColumnName(Some(TableName(None, table.into_iden())), column)),
        ),
        Expr::Binary(left, op, right) => Expr::Binary(
            Box::new(qualify(*left, table)),
            op,
            Box::new(qualify(*right, table)),
        ),
        Expr::Unary(op, inner) => Expr::Unary(op, Box::new(qualify(*inner, table))),
        Expr::Tuple(items) => Expr::Tuple(items.into_iter().map(|e| qualify(e, table)).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::column::Column;
    use sea_query::PostgresQueryBuilder;

    struct User;
    const AGE: Column<User, i32> = Column::new("age");
    const NICK: Column<User, Option<String>> = Column::new("nickname");

    #[test]
    fn qualifies_every_column_of_a_filter() {
        let filter = AGE
            .between(1, 9)
            .and(NICK.is_null().not())
            .or(AGE.is_in([3, 4]).and(NICK.like("a%")));
        let sql = Query::select()
            .expr(Expr::val(1))
            .and_where(qualify(filter.into_expr(), "users"))
            .to_string(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"SELECT 1 WHERE (("users"."age" BETWEEN 1 AND 9) AND (NOT "users"."nickname" IS NULL)) OR ("users"."age" = ANY(ARRAY [3,4]) AND "users"."nickname" LIKE 'a%')"#
        );
    }
}
