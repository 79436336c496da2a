//! pebble as an application uses it: a custom column type, transactions,
//! an upsert, and errors matched the way a web handler would.
//!
//!     cargo run --example app_author
//!
//! Uses `DATABASE_URL` when set; otherwise pebble-testkit starts a throwaway
//! PostgreSQL and stops it on exit. An application itself connects with
//! `Db::connect(std::env::var("DATABASE_URL")?)` once at start-up and
//! clones the `Db` into its handlers.

use pebble::sea_query::{ArrayType, Value};
use pebble::tokio_postgres::types::{FromSql, Type};
use pebble::{Db, Error, Model, SqlState, SqlType};

type AnyError = Box<dyn std::error::Error + Send + Sync>;

// ---------------------------------------------------------------------------
// A custom column type: an email address, validated once when it is made,
// stored as `text`.

#[derive(Debug, Clone, PartialEq)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Email, String> {
        match s.split_once('@') {
            Some((user, domain)) if !user.is_empty() && domain.contains('.') => {
                Ok(Email(s.to_lowercase()))
            }
            _ => Err(format!("not an email address: {s:?}")),
        }
    }
}

/// Reading: whatever PostgreSQL sends for a `text` column.
impl<'a> FromSql<'a> for Email {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Email, Box<dyn std::error::Error + Sync + Send>> {
        String::from_sql(ty, raw).map(Email)
    }

    fn accepts(ty: &Type) -> bool {
        <String as FromSql>::accepts(ty)
    }
}

/// Writing and filtering: the value as a bind parameter.
impl SqlType for Email {
    type Base = Email;
    const SQL_TYPE: &'static str = "text";

    fn into_sql(self) -> Value {
        Value::String(Some(self.0))
    }

    fn null() -> Value {
        Value::String(None)
    }

    fn array(values: Vec<Value>) -> Value {
        Value::Array(ArrayType::String, Some(Box::new(values)))
    }
}

// ---------------------------------------------------------------------------
// The models: customers and their invoices, per organisation.

#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "customers")]
struct Customer {
    #[pebble(primary_key, default)]
    id: i64,
    #[tenant_id]
    org: i64,
    #[pebble(unique)] // unique per organisation: (org, email)
    email: Email,
    name: String,
    plan: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "invoices")]
struct Invoice {
    #[pebble(primary_key, default)]
    id: i64,
    #[tenant_id]
    org: i64,
    customer_id: i64,
    cents: i64,
    paid: bool,
}

fn customer(email: &str, name: &str, plan: &str) -> Result<Customer, AnyError> {
    Ok(Customer {
        id: 0,
        org: 0, // stamped by the tenant handle
        email: Email::parse(email)?,
        name: name.to_owned(),
        plan: plan.to_owned(),
    })
}

/// How a web handler answers pebble's errors: by variant and SQLSTATE,
/// never by message text.
fn http_status(e: &Error) -> u16 {
    match e {
        Error::NotFound { .. } => 404,
        Error::TenantMismatch { .. } | Error::InvalidTenantId { .. } => 400,
        e if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => 409,
        e if e.is_retryable() => 503,
        _ => 500,
    }
}

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    let server = pebble_testkit::server()?;
    let database = server.create_database("pebble_app_author").await?;
    let db = Db::connect(database.config()).await?;
    db.create_table::<Customer>().await?;
    db.create_table::<Invoice>().await?;
    let (acme, globex) = (db.tenant(1_i64), db.tenant(2_i64));

    println!("== A transaction: a customer and their first invoice, or neither ==");
    let tx = acme.begin().await?;
    let ann = tx
        .insert(customer("Ann@Acme.io", "Ann", "free")?)
        .returning()
        .await?;
    tx.insert(Invoice {
        id: 0,
        org: 0,
        customer_id: ann.id,
        cents: 4_900,
        paid: false,
    })
    .exec()
    .await?;
    tx.commit().await?;
    println!("committed: {ann:?}");

    let tx = acme.begin().await?;
    tx.insert(Invoice {
        id: 0,
        org: 0,
        customer_id: ann.id,
        cents: 100,
        paid: false,
    })
    .exec()
    .await?;
    // The same email again: the unique key refuses it, and the transaction
    // is aborted. Dropping it (or `rollback()`) undoes the invoice too.
    let duplicate = tx
        .insert(customer("ann@acme.io", "Ann again", "free")?)
        .exec()
        .await;
    let e = duplicate.expect_err("unique per organisation");
    println!("duplicate email: HTTP {} ({e})", http_status(&e));
    tx.rollback().await?;
    let invoices = acme.select::<Invoice>().count().await?;
    println!("invoices after the rollback: {invoices} (the second one was undone)");
    assert_eq!(invoices, 1);

    println!("\n== An upsert: sign up, or change plan if already a customer ==");
    for plan in ["pro", "enterprise"] {
        let stored = acme
            .insert(customer("ann@acme.io", "Ann", plan)?)
            .on_conflict((Customer::ORG, Customer::EMAIL))
            .do_update(Customer::PLAN)
            .returning()
            .await?;
        println!("upserted: {stored:?}");
    }
    assert_eq!(acme.select::<Customer>().count().await?, 1);

    println!("\n== Filtering on the custom type ==");
    let found = acme
        .select::<Customer>()
        .filter(Customer::EMAIL.eq(Email::parse("ANN@acme.io")?))
        .one()
        .await?;
    println!("found by email: {} on plan {}", found.name, found.plan);

    println!("\n== Errors a handler matches ==");
    // Another organisation asking for Ann by id: she does not exist there.
    let e = globex
        .find::<Customer>(ann.id)
        .one()
        .await
        .expect_err("not globex's");
    println!(
        "globex reads acme's customer: HTTP {} ({e})",
        http_status(&e)
    );
    assert!(matches!(e, Error::NotFound { table: "customers" }));

    // A row carrying another organisation is refused before anything is sent.
    let mut foreign = customer("eve@globex.io", "Eve", "free")?;
    foreign.org = 2;
    let e = acme.insert(foreign).exec().await.expect_err("refused");
    println!("acme inserts a globex row: HTTP {} ({e})", http_status(&e));
    assert!(matches!(e, Error::TenantMismatch { .. }));

    // Another organisation may use the same email: the key is per organisation.
    globex
        .insert(customer("ann@acme.io", "Ann at Globex", "free")?)
        .exec()
        .await?;
    let acme_ann = acme.find::<Customer>(ann.id).one().await?;
    println!("acme's Ann is untouched: {acme_ann:?}");
    assert_eq!(acme_ann.plan, "enterprise");

    println!("\n== A paid invoice, updated in the organisation's scope ==");
    let paid = acme
        .update::<Invoice>()
        .set(Invoice::PAID, true)
        .filter(Invoice::CUSTOMER_ID.eq(ann.id))
        .returning()
        .await?;
    println!("marked paid: {paid:?}");
    let by_globex = globex
        .update::<Invoice>()
        .set(Invoice::PAID, false)
        .exec()
        .await?;
    println!("globex's attempt to unpay every invoice changed {by_globex} rows");
    assert_eq!(by_globex, 0);
    Ok(())
}
