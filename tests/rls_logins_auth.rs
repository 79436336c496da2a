//! Tenant logins on a server that checks passwords (the shared test server
//! trusts every login, so this binary starts its own): a login whose
//! password was derived from another secret is refused with
//! `Error::TenantLoginRefused`, and rotating the secret takes effect.

mod common;

use common::User;
use pebble::{Db, Error, LoginSecret, PoolOptions, RlsTable, TenantLogins};
use pebble_testkit::{ServerOptions, TempServer};
use uuid::Uuid;

#[tokio::test]
async fn a_wrong_secret_is_refused_and_a_rotated_one_takes_over() {
    let server = TempServer::start_with(ServerOptions::default().password_logins())
        .expect("a throwaway PostgreSQL server");
    let owner = Db::connect(server.config()).await.unwrap();
    owner.create_table::<User>().await.unwrap();
    let tables = [RlsTable::of::<User>()];
    owner.install_rls_tables(&tables).await.unwrap();
    owner.grant_tenant_logins(&tables).await.unwrap();
    let password = owner.create_app_role("app", &tables).await.unwrap();
    let mut base = server.config();
    base.user("app").password(&password);

    let secret = LoginSecret::new("the secret in the vault, v1").unwrap();
    let tenant = Uuid::new_v4();
    let role = owner.create_tenant_login(&tenant, &secret).await.unwrap();

    // Another secret: the login is refused, with its role named.
    let wrong = LoginSecret::new("a secret from somewhere else").unwrap();
    let logins = TenantLogins::connect(base.clone(), wrong, PoolOptions::default(), 4)
        .await
        .unwrap();
    let err = logins.tenant(tenant).await.unwrap_err();
    assert!(
        matches!(&err, Error::TenantLoginRefused { role: r, .. } if *r == role),
        "{err}"
    );
    assert_eq!(logins.open_pools(), 0);

    // The right one logs in, and the login is confined to its tenant.
    let logins = TenantLogins::connect(base.clone(), secret, PoolOptions::default(), 4)
        .await
        .unwrap();
    let handle = logins.tenant(tenant).await.unwrap();
    handle.insert(User::new("ann", 31)).exec().await.unwrap();
    assert_eq!(handle.select::<User>().count().await.unwrap(), 1);
    drop(handle);
    logins.close();

    // Rotating: the login gets the new secret's password; the old one fails.
    let rotated = LoginSecret::new("the secret in the vault, v2").unwrap();
    owner.create_tenant_login(&tenant, &rotated).await.unwrap();
    let err = logins.tenant(tenant).await.unwrap_err();
    assert!(matches!(err, Error::TenantLoginRefused { .. }), "{err}");
    let logins = TenantLogins::connect(base, rotated, PoolOptions::default(), 4)
        .await
        .unwrap();
    let handle = logins.tenant(tenant).await.unwrap();
    assert_eq!(handle.select::<User>().count().await.unwrap(), 1);
    drop(handle);
    logins.close();
    owner.close();
}
