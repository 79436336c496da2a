//! The per-shape statement cache: a builder whose shape was rendered before
//! is sent with the cached SQL text and only its own values. These tests
//! check that it cannot produce wrong SQL:
//!
//! - for a wide set of shapes, building the same shape again (with other
//!   values) gives the text sea-query renders for it, the values in
//!   placeholder order, and the cached text itself (the same allocation);
//!   in debug builds, which these tests are, every cache hit is also
//!   rendered afresh by sea-query and compared, text and values;
//! - shapes that differ only in what sets the text apart (nesting, `DEFAULT`,
//!   a schema, a limit) never share a text;
//! - the tenant is a bound value, never part of the text (but the schema
//!   of a schema handle is): tenant B's statement built right after tenant
//!   A's same shape reaches only B's rows, under the row, row-level
//!   security and schema strategies.

mod common;

use common::{two_tenants, Document, Membership, Plan, User, ORG_A, ORG_B};
use pebble::{Db, Statement};
use sea_query::{Expr, ExprTrait, Order, PostgresQueryBuilder, Query};
use sea_query_postgres::{PostgresBinder, PostgresValues};
use uuid::Uuid;

/// Builds a statement three times, with the values `make` is given (so each
/// build carries different values): the first may render, the others must
/// come from the cache. Returns the first build.
fn thrice(make: impl Fn(i64) -> Statement) -> Statement {
    let first = make(1);
    let second = make(2);
    let third = make(3);
    assert_eq!(first.sql(), second.sql());
    assert_eq!(first.params().len(), second.params().len());
    assert_eq!(
        second.sql().as_ptr(),
        third.sql().as_ptr(),
        "the shape is served from the cache: {}",
        second.sql()
    );
    first
}

fn by_hand(stmt: &impl PostgresBinder) -> (String, PostgresValues) {
    stmt.build_postgres(PostgresQueryBuilder)
}

/// The same text and values as the statement sea-query renders by hand.
fn same(pebble: &Statement, hand: (String, PostgresValues)) {
    assert_eq!(pebble.sql(), hand.0);
    assert_eq!(
        format!("{:?}", pebble.params()),
        format!("{:?}", hand.1.as_params())
    );
}

const DOCS: [&str; 5] = ["id", "org_id", "title", "pages", "created_at"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_statements_match_sea_query_by_hand() {
    let db = Db::connect_lazy("host=localhost", pebble::PoolOptions::default()).unwrap();

    // find, as every hot point select.
    let find = |n: i64| db.tenant(n).find::<Document>(n + 100).build().unwrap();
    thrice(find);
    same(
        &find(9),
        by_hand(
            Query::select()
                .columns(DOCS)
                .from("documents")
                .and_where(Expr::col("org_id").eq(9_i64))
                .and_where(Expr::col("id").eq(109_i64)),
        ),
    );

    // AND/OR nesting, order, limit, offset.
    let select = |n: i64| {
        db.tenant(n)
            .select::<Document>()
            .filter(Document::PAGES.gt(n as i32).or(Document::TITLE.like("a%")))
            .filter(Document::ID.ne(n))
            .order_by(Document::TITLE.asc())
            .order_by(Document::ID.desc())
            .limit(20)
            .offset(n as u64)
            .build()
            .unwrap()
    };
    thrice(select);
    same(
        &select(4),
        by_hand(
            Query::select()
                .columns(DOCS)
                .from("documents")
                .and_where(Expr::col("org_id").eq(4_i64))
                .and_where(Expr::col("pages").gt(4).or(Expr::col("title").like("a%")))
                .and_where(Expr::col("id").ne(4_i64))
                .order_by("title", Order::Asc)
                .order_by("id", Order::Desc)
                .limit(20)
                .offset(4),
        ),
    );

    // An update of two values by key.
    let update = |n: i64| {
        db.tenant(n)
            .update::<Document>()
            .set(Document::TITLE, format!("t{n}"))
            .set(Document::PAGES, n as i32)
            .filter(Document::ID.eq(n))
            .build()
            .unwrap()
    };
    thrice(update);
    same(
        &update(5),
        by_hand(
            Query::update()
                .table("documents")
                .value("title", "t5")
                .value("pages", 5)
                .and_where(Expr::col("org_id").eq(5_i64))
                .and_where(Expr::col("id").eq(5_i64)),
        ),
    );

    // An insert whose defaulted column is filled by the database.
    let insert = |n: i64| {
        db.tenant(n)
            .insert(Document::new(n, "x", 1))
            .build()
            .unwrap()
    };
    thrice(insert);
    same(
        &insert(6),
        by_hand(
            Query::insert()
                .into_table("documents")
                .columns(DOCS)
                .values([
                    6_i64.into(),
                    6_i64.into(),
                    "x".into(),
                    1.into(),
                    Expr::keyword_default(),
                ])
                .unwrap(),
        ),
    );

    // A delete by key.
    let delete = |n: i64| {
        db.tenant(n)
            .delete::<Document>()
            .filter(Document::ID.eq(n))
            .build()
            .unwrap()
    };
    thrice(delete);
    same(
        &delete(7),
        by_hand(
            Query::delete()
                .from_table("documents")
                .and_where(Expr::col("org_id").eq(7_i64))
                .and_where(Expr::col("id").eq(7_i64)),
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wide_set_of_shapes_is_served_from_the_cache() {
    let db = Db::connect_lazy("host=localhost", pebble::PoolOptions::default()).unwrap();
    let t = |n: i64| db.tenant(n);
    let u = |n: i64| db.tenant(Uuid::from_u128(n as u128 + 1));
    let uuid = |n: i64| Uuid::from_u128(n as u128 + 7);
    let shapes: Vec<Box<dyn Fn(i64) -> Statement>> = vec![
        Box::new(|n| t(n).find::<Document>(n).build().unwrap()),
        Box::new(|n| {
            db.tenant(n as i32)
                .find::<Membership>((n as i32, format!("u{n}")))
                .build()
                .unwrap()
        }),
        Box::new(|n| u(n).find::<User>(uuid(n)).build().unwrap()),
        Box::new(|n| t(n).select::<Document>().build().unwrap()),
        Box::new(|n| {
            t(n).select::<Document>()
                .filter(Document::PAGES.between(n as i32, 9))
                .build()
                .unwrap()
        }),
        Box::new(|n| {
            t(n).select::<Document>()
                .filter(Document::ID.is_in(0..n))
                .build()
                .unwrap()
        }),
        Box::new(|n| {
            t(n).select::<Document>()
                .filter(Document::ID.not_in([n]))
                .build()
                .unwrap()
        }),
        Box::new(|n| {
            u(n).select::<User>()
                .filter(
                    User::NICKNAME
                        .is_null()
                        .or(User::NICKNAME.ilike(format!("{n}%"))),
                )
                .build()
                .unwrap()
        }),
        Box::new(|n| {
            u(n).select::<User>()
                .filter(User::NICKNAME.is_not_null().and(!User::AGE.lte(n as i32)))
                .build()
                .unwrap()
        }),
        Box::new(|n| {
            u(n).select::<User>()
                .filter(
                    User::AGE
                        .gte(1)
                        .and(User::AGE.lt(n as i32).or(User::NAME.eq("x")))
                        .or(User::EMAIL.ne("e")),
                )
                .build()
                .unwrap()
        }),
        Box::new(|n| {
            t(n).select::<Document>()
                .after(Document::ID, n)
                .order_by(Document::ID.asc())
                .limit(50)
                .build()
                .unwrap()
        }),
        Box::new(|n| {
            t(n).select::<Document>()
                .before(Document::ID, n)
                .order_by(Document::ID.desc())
                .offset(3)
                .build()
                .unwrap()
        }),
        Box::new(|n| {
            t(n).update::<Document>()
                .set(Document::PAGES, n as i32)
                .filter(Document::TITLE.eq("a") | Document::TITLE.eq("b"))
                .build()
                .unwrap()
        }),
        Box::new(|n| {
            u(n).update::<User>()
                .set(User::NICKNAME, None::<String>)
                .set(User::AGE, n as i32)
                .filter(User::ID.eq(uuid(n)))
                .build()
                .unwrap()
        }),
        Box::new(|n| {
            u(n).update::<User>()
                .set(User::NICKNAME, Some(format!("n{n}")))
                .filter(User::ID.eq(uuid(n)))
                .build()
                .unwrap()
        }),
        Box::new(|n| {
            t(n).delete::<Document>()
                .filter(Document::PAGES.lt(n as i32).or(Document::TITLE.like("%x")))
                .build()
                .unwrap()
        }),
        Box::new(|n| t(n).insert(Document::new(n, "a", 2)).build().unwrap()),
        Box::new(|n| {
            let mut doc = Document::new(n, "a", 2);
            doc.created_at = chrono::DateTime::from_timestamp(n + 1_000_000, 0).unwrap();
            t(n).insert(doc).build().unwrap()
        }),
        Box::new(|n| u(n).insert(User::new(&format!("u{n}"), 3)).build().unwrap()),
        Box::new(|n| {
            db.select::<Plan>()
                .filter(Plan::SEATS.gt(n as i16))
                .build()
                .unwrap()
        }),
        Box::new(|n| {
            db.cross_tenant()
                .select::<Document>()
                .filter(Document::ORG_ID.is_in([n, n + 1]))
                .build()
                .unwrap()
        }),
        Box::new(|n| {
            db.cross_tenant()
                .update::<Document>()
                .set(Document::PAGES, 1)
                .filter(Document::ORG_ID.eq(n))
                .build()
                .unwrap()
        }),
    ];
    let mut texts = Vec::new();
    for shape in &shapes {
        texts.push(thrice(shape).sql().to_owned());
    }
    // Each of these shapes is its own text.
    let mut distinct = texts.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), texts.len(), "{texts:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shapes_that_differ_in_text_never_share_it() {
    let db = Db::connect_lazy("host=localhost", pebble::PoolOptions::default()).unwrap();
    let t = db.tenant(1_i64);
    let pairs: Vec<(Statement, Statement)> = vec![
        // (a AND b) OR c against a AND (b OR c).
        (
            t.select::<Document>()
                .filter(
                    Document::ID
                        .eq(1)
                        .and(Document::PAGES.eq(2))
                        .or(Document::TITLE.eq("c")),
                )
                .build()
                .unwrap(),
            t.select::<Document>()
                .filter(
                    Document::ID
                        .eq(1)
                        .and(Document::PAGES.eq(2).or(Document::TITLE.eq("c"))),
                )
                .build()
                .unwrap(),
        ),
        // One filter of two terms against two filters.
        (
            t.select::<Document>()
                .filter(Document::ID.eq(1).or(Document::PAGES.eq(2)))
                .build()
                .unwrap(),
            t.select::<Document>()
                .filter(Document::ID.eq(1))
                .filter(Document::PAGES.eq(2))
                .build()
                .unwrap(),
        ),
        // = against <>, on the same column and value.
        (
            t.select::<Document>()
                .filter(Document::ID.eq(1))
                .build()
                .unwrap(),
            t.select::<Document>()
                .filter(Document::ID.ne(1))
                .build()
                .unwrap(),
        ),
        // A limit against none; a limit against an offset.
        (
            t.select::<Document>().limit(1).build().unwrap(),
            t.select::<Document>().build().unwrap(),
        ),
        (
            t.select::<Document>().limit(1).build().unwrap(),
            t.select::<Document>().offset(1).build().unwrap(),
        ),
        // A column filled by the database against one given.
        (
            t.insert(Document::new(1, "a", 1)).build().unwrap(),
            t.insert(Document {
                created_at: chrono::DateTime::from_timestamp(5, 0).unwrap(),
                ..Document::new(1, "a", 1)
            })
            .build()
            .unwrap(),
        ),
        // The same filter on another model with the same column names.
        (
            t.select::<Document>()
                .filter(Document::TITLE.eq("x"))
                .build()
                .unwrap(),
            db.select::<Plan>()
                .filter(Plan::CODE.eq("x"))
                .build()
                .unwrap(),
        ),
        // A tenant handle against the cross-tenant door.
        (
            t.select::<Document>().build().unwrap(),
            db.cross_tenant().select::<Document>().build().unwrap(),
        ),
    ];
    for (a, b) in &pairs {
        assert_ne!(a.sql(), b.sql());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shapes_the_cache_does_not_record_are_rendered_as_before() {
    let db = Db::connect_lazy("host=localhost", pebble::PoolOptions::default()).unwrap();
    let t = db.tenant(3_i64);
    let locked = t
        .select::<Document>()
        .filter(Document::ID.eq(1))
        .for_update()
        .skip_locked()
        .build()
        .unwrap();
    assert_eq!(
        locked.sql(),
        r#"SELECT "id", "org_id", "title", "pages", "created_at" FROM "documents" WHERE "org_id" = $1 AND "id" = $2 FOR UPDATE SKIP LOCKED"#
    );
    let expr = t
        .update::<Document>()
        .set(Document::TITLE, "t")
        .set_expr(Document::PAGES, Document::PAGES + 1)
        .filter(Document::ID.eq(1))
        .build()
        .unwrap();
    assert_eq!(
        expr.sql(),
        r#"UPDATE "documents" SET "title" = $1, "pages" = "pages" + $2 WHERE "org_id" = $3 AND "id" = $4"#
    );
    let upsert = t
        .insert(Document::new(1, "a", 1))
        .on_conflict((Document::ORG_ID, Document::ID))
        .do_update(Document::TITLE)
        .build()
        .unwrap();
    assert!(upsert.sql().contains("ON CONFLICT"), "{}", upsert.sql());
    let many = t
        .insert_many([Document::new(1, "a", 1), Document::new(2, "b", 2)])
        .build()
        .unwrap();
    assert!(
        many.sql()
            .ends_with("VALUES ($1, $2, $3, $4, DEFAULT), ($5, $6, $7, $8, DEFAULT)"),
        "{}",
        many.sql()
    );
}

/// Tenant B's statements, built right after tenant A's of the same shape,
/// reach only B's rows; A's rows are unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_is_a_value_never_part_of_the_cached_text() {
    let f = two_tenants().await;
    let (a, b) = (f.db.tenant(ORG_A), f.db.tenant(ORG_B));
    let before = f.all_documents().await;

    for _ in 0..3 {
        // Point select: A finds its row; B, on A's key, finds nothing.
        assert_eq!(a.find::<Document>(1).one().await.unwrap().title, "plan");
        assert!(b.find::<Document>(1).optional().await.unwrap().is_none());
        // Filtered select and count.
        let shape = |h: &pebble::TenantDb<i64>| {
            h.select::<Document>()
                .filter(Document::PAGES.gte(1))
                .order_by(Document::ID.asc())
        };
        let ids = |docs: Vec<Document>| docs.iter().map(|d| d.id).collect::<Vec<_>>();
        assert_eq!(ids(shape(&a).all().await.unwrap()), [1, 2, 3]);
        assert_eq!(ids(shape(&b).all().await.unwrap()), [11, 12, 13]);
        assert_eq!(a.select::<Document>().count().await.unwrap(), 3);
        assert_eq!(
            b.select::<Document>()
                .filter(Document::ID.lt(4))
                .count()
                .await
                .unwrap(),
            0
        );
        assert!(!b
            .select::<Document>()
            .filter(Document::ID.eq(1))
            .exists()
            .await
            .unwrap());
        // Update and delete by A's keys, as B: nothing changes.
        let rename = |h: &pebble::TenantDb<i64>, id: i64| {
            h.update::<Document>()
                .set(Document::TITLE, "renamed")
                .filter(Document::ID.eq(id))
        };
        assert_eq!(rename(&a, 99).exec().await.unwrap(), 0);
        assert_eq!(rename(&b, 1).exec().await.unwrap(), 0);
        assert!(rename(&b, 2).returning().await.unwrap().is_empty());
        assert_eq!(
            b.delete::<Document>()
                .filter(Document::ID.eq(3))
                .exec()
                .await
                .unwrap(),
            0
        );
        assert!(b
            .delete::<Document>()
            .filter(Document::ID.eq(3))
            .returning()
            .await
            .unwrap()
            .is_empty());
    }
    assert_eq!(f.all_documents().await, before);

    // An insert as B right after A's of the same shape is stamped with B.
    let mine = a
        .insert(Document::new(50, "a's", 1))
        .returning()
        .await
        .unwrap();
    let theirs = b
        .insert(Document::new(51, "b's", 1))
        .returning()
        .await
        .unwrap();
    assert_eq!((mine.org_id, theirs.org_id), (ORG_A, ORG_B));
    assert_eq!(b.find::<Document>(50).optional().await.unwrap(), None);
    assert_eq!(a.find::<Document>(51).optional().await.unwrap(), None);
    // B's update by key of its own row, right after A's: only B's row.
    assert_eq!(
        a.update::<Document>()
            .set(Document::PAGES, 7)
            .filter(Document::ID.eq(50))
            .exec()
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        b.update::<Document>()
            .set(Document::PAGES, 8)
            .filter(Document::ID.eq(51))
            .exec()
            .await
            .unwrap(),
        1
    );
    assert_eq!(a.find::<Document>(50).one().await.unwrap().pages, 7);
    assert_eq!(b.find::<Document>(51).one().await.unwrap().pages, 8);
    // The texts are shared, the tenant values are not.
    let sa = a.find::<Document>(1).build().unwrap();
    let sb = b.find::<Document>(1).build().unwrap();
    assert_eq!(sa.sql().as_ptr(), sb.sql().as_ptr());
    assert_ne!(format!("{:?}", sa.params()), format!("{:?}", sb.params()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_row_level_security_a_second_tenant_sees_nothing_of_the_first() {
    let f = common::rls::Fixture::new().await;
    let (a, b) = (f.app.tenant(f.a), f.app.tenant(f.b));
    let before = f.all_users().await;
    let ann_of_a = a
        .select::<User>()
        .filter(User::NAME.eq("ann"))
        .one()
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(a.find::<User>(ann_of_a.id).one().await.unwrap(), ann_of_a);
        assert!(b
            .find::<User>(ann_of_a.id)
            .optional()
            .await
            .unwrap()
            .is_none());
        assert_eq!(
            b.update::<User>()
                .set(User::AGE, 1)
                .filter(User::ID.eq(ann_of_a.id))
                .exec()
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            b.delete::<User>()
                .filter(User::ID.eq(ann_of_a.id))
                .exec()
                .await
                .unwrap(),
            0
        );
        assert_eq!(b.select::<User>().count().await.unwrap(), 2);
    }
    assert_eq!(f.all_users().await, before);
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_handles_key_their_shapes_by_schema() {
    use common::schema::{all_tasks, ids, owner, task, Task};
    use pebble::SchemaTenants;

    let (_database, db) = owner().await;
    let id = ids("shape");
    let tenants = SchemaTenants::builder(db.clone())
        .table::<Task>()
        .build()
        .unwrap();
    tenants.create(&id("a")).await.unwrap();
    tenants.create(&id("b")).await.unwrap();
    let a = tenants.db(&id("a")).await.unwrap();
    let b = tenants.db(&id("b")).await.unwrap();
    a.insert(task(1, "one")).exec().await.unwrap();
    let a_before = all_tasks(&a).await;

    for n in 0..3 {
        // The same shape names each tenant's own schema.
        let sa = a.find::<Task>(1).build().unwrap();
        let sb = b.find::<Task>(1).build().unwrap();
        assert!(
            sa.sql().contains(&format!("\"{}\"", a.schema())),
            "{}",
            sa.sql()
        );
        assert!(
            sb.sql().contains(&format!("\"{}\"", b.schema())),
            "{}",
            sb.sql()
        );
        assert_ne!(sa.sql(), sb.sql());
        // As b, right after a, on a's key: nothing of a's is seen or changed.
        assert_eq!(a.find::<Task>(1).one().await.unwrap().title, "one");
        assert!(b.find::<Task>(1).optional().await.unwrap().is_none());
        assert_eq!(
            b.update::<Task>()
                .set(Task::DONE, true)
                .filter(Task::ID.eq(1))
                .exec()
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            b.delete::<Task>()
                .filter(Task::ID.eq(1))
                .exec()
                .await
                .unwrap(),
            0
        );
        b.insert(task(10 + n, &format!("b{n}")))
            .exec()
            .await
            .unwrap();
    }
    assert_eq!(all_tasks(&a).await, a_before);
    assert_eq!(all_tasks(&b).await.len(), 3);
}

#[derive(pebble::Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[pebble(type_name = "ticket_state")]
enum State {
    Open,
    Closed,
}

#[derive(pebble::Model, Debug, Clone, PartialEq)]
#[pebble(table = "tickets")]
struct Ticket {
    #[pebble(primary_key, default)]
    id: i64,
    #[tenant_id]
    org: i64,
    state: State,
    previous: Option<State>,
}

/// A native enum is cast in the text (`$1::"ticket_state"`), so its type is
/// part of the shape; its label is the bound value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_enum_casts_are_part_of_the_shape() {
    let db = Db::connect_lazy("host=localhost", pebble::PoolOptions::default()).unwrap();
    let state = |n: i64| {
        if n % 2 == 0 {
            State::Open
        } else {
            State::Closed
        }
    };
    let filter = thrice(|n| {
        db.tenant(n)
            .select::<Ticket>()
            .filter(Ticket::STATE.eq(state(n)))
            .filter(Ticket::PREVIOUS.is_in([state(n), state(n + 1)]))
            .build()
            .unwrap()
    });
    assert!(
        filter.sql().ends_with(
            r#""state" = $2::"ticket_state" AND "previous" = ANY($3::"ticket_state"[])"#
        ),
        "{}",
        filter.sql()
    );
    let insert = thrice(|n| {
        db.tenant(n)
            .insert(Ticket {
                id: 0,
                org: 0,
                state: state(n),
                previous: None,
            })
            .build()
            .unwrap()
    });
    assert!(
        insert
            .sql()
            .ends_with(r#"VALUES (DEFAULT, $1, $2::"ticket_state", $3::"ticket_state")"#),
        "{}",
        insert.sql()
    );
    let update = thrice(|n| {
        db.tenant(n)
            .update::<Ticket>()
            .set(Ticket::PREVIOUS, Some(state(n)))
            .filter(Ticket::ID.eq(n))
            .build()
            .unwrap()
    });
    assert!(
        update
            .sql()
            .contains(r#"SET "previous" = $1::"ticket_state""#),
        "{}",
        update.sql()
    );
}

/// The server's prepared statements on one connection, through a view.
#[derive(pebble::Model, Debug)]
#[pebble(table = "prepared_count", shared)]
struct PreparedCount {
    n: i64,
}

/// More statement texts than a connection keeps prepared: the connection's
/// cache is emptied at its bound, so the server never holds more than 512
/// of pebble's statements on one connection, and every statement still runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_never_keeps_more_than_its_bound_of_statements() {
    let (test_db, db) = common::setup().await;
    db.batch_execute(
        "CREATE VIEW prepared_count AS SELECT count(*) AS n FROM pg_prepared_statements",
    )
    .await
    .unwrap();
    db.tenant(ORG_A)
        .insert(Document::new(1, "one", 1))
        .exec()
        .await
        .unwrap();
    let one = Db::connect_with(test_db.config(), pebble::PoolOptions::default().max_size(1))
        .await
        .unwrap();
    let tenant = one.tenant(ORG_A);
    let mut most = 0_i64;
    for k in 1..=600 {
        // k filters: a text of its own per k.
        let mut select = tenant.select::<Document>();
        for _ in 0..k {
            select = select.filter(Document::ID.eq(1));
        }
        assert_eq!(select.count().await.unwrap(), 1, "{k} filters");
        let prepared = one.select::<PreparedCount>().one().await.unwrap().n;
        most = Ord::max(most, prepared);
    }
    assert!(most <= 512, "{most} statements prepared on one connection");
    assert!(most >= 500, "the cache was used: {most}");
}
