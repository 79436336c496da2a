//! Statement builders. Each holds a sea-query statement that already carries
//! its scope (the tenant condition is the first term of the WHERE clause, set
//! when the builder is created), so user filters can only narrow it. What
//! they share (connection, scope, filter, build, returning, `Debug`) is
//! `core::Core`; each builder file holds only what is its own.

mod copy;
mod core;
pub(crate) mod ddl;
mod delete;
mod insert;
mod join;
mod keyset;
mod lock;
mod projection;
mod references;
mod select;
pub(crate) mod shape_cache;
mod stream;
mod update;

pub use copy::CopyIn;
pub(crate) use ddl::record_statement;
pub use delete::Delete;
pub use insert::{Insert, Many, OnConflict, One, Upsert};
pub use join::{
    index, Cond, Condition, InQuery, Join, MaybeNull, Mentions, Models, NotNull, Nullness, Part,
    Pending, Push,
};
pub use keyset::Keyset;
pub use lock::{Locked, RowsOnlyUnderLock};
pub use projection::{kind, GroupKey, HavingCondition, Item, Projection, Selection, Sort};
pub use select::Select;
pub use stream::SelectStream;
pub use update::Update;
