//! The row strategy: `tenant_column = key`, the first term of every WHERE
//! clause of a tenant handle, and the stamp on every inserted row. Row-level
//! security keeps it too, as a second line of defence behind the policy.

use sea_query::{Expr, ExprTrait, Value};

/// The tenant condition, unqualified (`"tenant_id" = $1`).
pub(super) fn condition(column: &'static str, key: &Value) -> Expr {
    Expr::col(column).eq(key.clone())
}

/// The tenant condition on `table`'s existing row (`"users"."tenant_id" = $n`),
/// for an upsert's `DO UPDATE ... WHERE`, where `excluded` is also in scope.
pub(super) fn qualified_condition(table: &'static str, column: &'static str, key: &Value) -> Expr {
    Expr::col((table, column)).eq(key.clone())
}
