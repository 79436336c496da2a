//! Models and set-up shared by the integration tests. Every test gets its own
//! database on the process's throwaway server (or on `DATABASE_URL`).
#![allow(dead_code)]

pub mod rls;
pub mod schema;
pub mod servers;

use chrono::{DateTime, NaiveDate, Utc};
use pebble::{Db, Model};
use pebble_testkit::TestDatabase;
use uuid::Uuid;

/// A tenant model keyed by `Uuid`, with a database-generated key.
#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "users")]
pub struct User {
    #[pebble(primary_key, default)]
    pub id: Uuid,
    #[tenant_id]
    pub tenant_id: Uuid,
    #[pebble(unique)]
    pub email: String,
    pub name: String,
    pub age: i32,
    pub nickname: Option<String>,
}

impl User {
    /// A new, unstamped user (the tenant handle fills in the tenant).
    pub fn new(name: &str, age: i32) -> User {
        User {
            id: Uuid::nil(),
            tenant_id: Uuid::nil(),
            email: format!("{name}@example.com"),
            name: name.to_owned(),
            age,
            nickname: None,
        }
    }
}

/// A tenant model keyed by `i64`, with caller-chosen primary keys, so two
/// tenants can collide on a key (the upsert leak vector).
#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "documents")]
pub struct Document {
    #[pebble(primary_key)]
    pub id: i64,
    #[tenant_id]
    pub org_id: i64,
    pub title: String,
    pub pages: i32,
    #[pebble(default)]
    pub created_at: DateTime<Utc>,
}

impl Document {
    pub fn new(id: i64, title: &str, pages: i32) -> Document {
        Document {
            id,
            org_id: 0,
            title: title.to_owned(),
            pages,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }
}

/// A shared model: one table for every tenant, queried through `Db`.
#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "plans", shared)]
pub struct Plan {
    #[pebble(primary_key)]
    pub code: String,
    pub price_cents: i64,
    pub seats: i16,
}

/// Every supported column type, nullable and not.
#[derive(Model, Debug, Clone, PartialEq)]
pub struct Sample {
    #[pebble(primary_key, default)]
    pub id: i64,
    #[tenant_id]
    pub tenant: String,
    pub uuid: Uuid,
    pub text: String,
    pub small: i16,
    pub int: i32,
    pub big: i64,
    pub real: f32,
    pub double: f64,
    pub flag: bool,
    pub bytes: Vec<u8>,
    pub at: DateTime<Utc>,
    pub day: NaiveDate,
    pub doc: serde_json::Value,
    pub maybe_uuid: Option<Uuid>,
    pub maybe_text: Option<String>,
    pub maybe_small: Option<i16>,
    pub maybe_int: Option<i32>,
    pub maybe_big: Option<i64>,
    pub maybe_real: Option<f32>,
    pub maybe_double: Option<f64>,
    pub maybe_flag: Option<bool>,
    pub maybe_bytes: Option<Vec<u8>>,
    pub maybe_at: Option<DateTime<Utc>>,
    pub maybe_day: Option<NaiveDate>,
    pub maybe_doc: Option<serde_json::Value>,
}

/// A composite primary key whose first part is the tenant.
#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "memberships")]
pub struct Membership {
    #[pebble(primary_key)]
    #[tenant_id]
    pub org: i32,
    #[pebble(primary_key)]
    pub user_name: String,
    pub role: String,
}

/// A fresh database with every test table, and a `Db` on it.
pub async fn setup() -> (TestDatabase, Db) {
    let test_db = pebble_testkit::database()
        .await
        .expect("a test database (install PostgreSQL or set DATABASE_URL)");
    let db = Db::connect(test_db.config()).await.expect("connect");
    db.create_table::<User>().await.expect("users");
    db.create_table::<Document>().await.expect("documents");
    db.create_table::<Plan>().await.expect("plans");
    db.create_table::<Sample>().await.expect("sample");
    db.create_table::<Membership>().await.expect("memberships");
    (test_db, db)
}

/// Two tenants with the same data: three users and three documents each,
/// where document ids 1..=3 belong to org 1 and 11..=13 to org 2.
pub struct TwoTenants {
    pub db: Db,
    pub a: Uuid,
    pub b: Uuid,
    _test_db: TestDatabase,
}

pub const ORG_A: i64 = 1;
pub const ORG_B: i64 = 2;

pub async fn two_tenants() -> TwoTenants {
    let (test_db, db) = setup().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    for (tenant, org, base) in [(a, ORG_A, 0), (b, ORG_B, 10)] {
        db.tenant(tenant)
            .insert_many([
                User::new("ann", 31),
                User::new("bob", 42),
                User::new("cy", 17),
            ])
            .exec()
            .await
            .expect("users");
        db.tenant(org)
            .insert_many([
                Document::new(base + 1, "plan", 10),
                Document::new(base + 2, "report", 120),
                Document::new(base + 3, "memo", 1),
            ])
            .exec()
            .await
            .expect("documents");
    }
    TwoTenants {
        db,
        a,
        b,
        _test_db: test_db,
    }
}

impl TwoTenants {
    /// Every user of every tenant, sorted, seen through the explicit cross-tenant door.
    pub async fn all_users(&self) -> Vec<User> {
        let mut users = self
            .db
            .cross_tenant()
            .select::<User>()
            .all()
            .await
            .expect("all users");
        users.sort_by_key(|u| (u.tenant_id, u.name.clone()));
        users
    }

    /// Every document of every tenant, sorted by id.
    pub async fn all_documents(&self) -> Vec<Document> {
        self.db
            .cross_tenant()
            .select::<Document>()
            .order_by(Document::ID.asc())
            .all()
            .await
            .expect("all documents")
    }

    /// Tenant `b`'s users exactly as they are now.
    pub async fn users_of(&self, tenant: Uuid) -> Vec<User> {
        self.all_users()
            .await
            .into_iter()
            .filter(|u| u.tenant_id == tenant)
            .collect()
    }

    pub async fn documents_of(&self, org: i64) -> Vec<Document> {
        self.all_documents()
            .await
            .into_iter()
            .filter(|d| d.org_id == org)
            .collect()
    }
}
