//! The model both statement benchmarks use.
#![allow(dead_code)]

use pebble::Model;
use uuid::Uuid;

#[derive(Model, Debug, Clone)]
#[pebble(table = "users")]
pub struct User {
    #[pebble(primary_key, default)]
    pub id: Uuid,
    #[tenant_id]
    pub tenant_id: Uuid,
    pub email: String,
    pub name: String,
    pub age: i32,
    pub nickname: Option<String>,
}

/// The `i`th bench user, unstamped (the tenant handle stamps it).
pub fn user(i: usize) -> User {
    User {
        id: Uuid::nil(),
        tenant_id: Uuid::nil(),
        email: format!("user{i}@example.com"),
        name: format!("user {i}"),
        age: (i % 90) as i32,
        nickname: None,
    }
}
