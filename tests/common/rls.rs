//! Row-level security fixtures: the test tables under RLS, an application
//! role made by `create_app_role`, and an `RlsDb` connected as it.

use pebble::{Db, Model, PoolOptions, RlsDb, RlsTable};
use pebble_testkit::TestDatabase;
use uuid::Uuid;

use super::{setup, Document, Membership, Sample, User};

/// The test tables, under row-level security.
pub fn tables() -> Vec<RlsTable> {
    vec![
        RlsTable::of::<User>(),
        RlsTable::of::<Document>(),
        RlsTable::of::<Membership>(),
        RlsTable::of::<Sample>(),
    ]
}

/// `current_setting('pebble.tenant_id', true)` as a shared model, to read
/// what a pooled connection carries.
#[derive(Model, Debug)]
#[pebble(table = "tenant_setting", shared)]
pub struct TenantSetting {
    pub value: Option<String>,
}

pub struct Fixture {
    pub test_db: TestDatabase,
    pub owner: Db,
    pub app: RlsDb,
    /// How the application role connects (for a fresh pool of it).
    pub app_config: tokio_postgres::Config,
    pub role: String,
    pub a: Uuid,
    pub b: Uuid,
}

impl Fixture {
    pub async fn new() -> Fixture {
        Fixture::with_pool(PoolOptions::default()).await
    }

    pub async fn with_pool(options: PoolOptions) -> Fixture {
        let (test_db, owner) = setup().await;
        owner.install_rls_tables(&tables()).await.unwrap();
        owner
            .batch_execute(
                "CREATE VIEW tenant_setting WITH (security_invoker = true) AS \
                 SELECT current_setting('pebble.tenant_id', true) AS value",
            )
            .await
            .unwrap();
        let role = format!("app_{}", Uuid::new_v4().simple());
        let password = owner.create_app_role(&role, &tables()).await.unwrap();
        owner
            .batch_execute(&format!("GRANT SELECT ON tenant_setting TO {role}"))
            .await
            .unwrap();
        let mut config = test_db.config();
        config.user(&role).password(&password);
        let app = RlsDb::connect_with(config.clone(), options).await.unwrap();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        for tenant in [a, b] {
            app.tenant(tenant)
                .insert_many([User::new("ann", 31), User::new("bob", 42)])
                .exec()
                .await
                .unwrap();
        }
        Fixture {
            test_db,
            owner,
            app,
            app_config: config,
            role,
            a,
            b,
        }
    }

    /// Every user row, read as the superuser (row-level security does not apply).
    pub async fn all_users(&self) -> Vec<User> {
        let mut users = self
            .owner
            .cross_tenant()
            .select::<User>()
            .all()
            .await
            .unwrap();
        users.sort_by_key(|u| (u.tenant_id, u.name.clone()));
        users
    }

    pub async fn users_of(&self, tenant: Uuid) -> Vec<User> {
        self.all_users()
            .await
            .into_iter()
            .filter(|u| u.tenant_id == tenant)
            .collect()
    }

    pub async fn cleanup(self) {
        self.app.db().close();
        let role = &self.role;
        self.owner
            .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
            .await
            .unwrap();
    }
}
