//! Attacks on the per-shape statement cache (see tests/shape_cache.rs for
//! its own tests): inputs and loads meant to make a statement go out with
//! another shape's text, or its values under the wrong placeholders.
//!
//! - values that are not equal to themselves (a float NaN) must neither
//!   crash a debug build (which checks every shape against sea-query) nor
//!   reach another tenant's rows;
//! - 16 threads building thousands of shapes at once, more than the cache
//!   holds (so shards are emptied under the readers), each statement
//!   compared with sea-query's rendering by hand and carrying its own
//!   thread's tenant as the tenant condition's value;
//! - models that share a table name and column names but not their column
//!   order or tenant column never share a text;
//! - 5,000 random shapes (filter trees, orders, limits, updates, deletes,
//!   tenant handles and `cross_tenant()`), each built again with other
//!   values and tenants;
//! - on a server, 16 tenants running the same shapes at once, and two
//!   tenants in one transaction and on the pool, in both statement modes.

mod common;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use common::{setup, Sample};
use pebble::{Db, Model, Statement};
use sea_query::{Expr, ExprTrait, PostgresQueryBuilder, Query};
use sea_query_postgres::{PostgresBinder, PostgresValues};

fn lazy_db() -> Db {
    Db::connect_lazy("host=localhost", pebble::PoolOptions::default()).unwrap()
}

fn by_hand(stmt: &impl PostgresBinder) -> (String, PostgresValues) {
    stmt.build_postgres(PostgresQueryBuilder)
}

/// Text and values (by their `Debug`, which shows NaN as `NaN`) as sea-query renders them by hand.
fn same(pebble: &Statement, hand: (String, PostgresValues)) {
    assert_eq!(pebble.sql(), hand.0);
    assert_eq!(
        format!("{:?}", pebble.params()),
        format!("{:?}", hand.1.as_params())
    );
}

fn sample(double: f64, real: f32) -> Sample {
    Sample {
        id: 0,
        tenant: String::new(),
        uuid: uuid::Uuid::new_v4(),
        text: "nan".into(),
        small: 1,
        int: 2,
        big: 3,
        real,
        double,
        flag: true,
        bytes: vec![1],
        at: Utc.with_ymd_and_hms(2024, 2, 29, 23, 59, 58).unwrap(),
        day: NaiveDate::from_ymd_opt(1999, 12, 31).unwrap(),
        doc: serde_json::json!({}),
        maybe_uuid: None,
        maybe_text: None,
        maybe_small: None,
        maybe_int: None,
        maybe_big: None,
        maybe_real: Some(real),
        maybe_double: Some(double),
        maybe_flag: None,
        maybe_bytes: None,
        maybe_at: Some(DateTime::<Utc>::UNIX_EPOCH),
        maybe_day: None,
        maybe_doc: None,
    }
}

/// A NaN is not equal to itself, so a check comparing a shape's values
/// with sea-query's by `==` fails for it: that must not panic (debug
/// builds assert it) nor keep the shape from being cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nan_value_is_bound_like_any_other() {
    let db = lazy_db();
    let select = |tenant: &str, double: f64| {
        db.tenant(tenant.to_string())
            .select::<Sample>()
            .filter(Sample::DOUBLE.eq(double).or(Sample::REAL.lt(f32::NAN)))
            .build()
            .unwrap()
    };
    let first = select("acme", f64::NAN);
    // Other tests of this binary fill the cache past its bound at the same
    // time, so a shard may be emptied between two builds: a few tries.
    let cached = (0..20).any(|_| {
        let again = select("acme", f64::NAN);
        let other = select("umbrella", 1.0);
        again.sql().as_ptr() == other.sql().as_ptr()
    });
    assert!(
        cached,
        "a shape first seen with a NaN is cached like any other"
    );
    let other = select("umbrella", 1.0);
    same(
        &first,
        by_hand(
            Query::select()
                .columns(Sample::COLUMNS.iter().map(|c| c.name))
                .from("sample")
                .and_where(Expr::col("tenant").eq("acme"))
                .and_where(
                    Expr::col("double")
                        .eq(f64::NAN)
                        .or(Expr::col("real").lt(f32::NAN)),
                ),
        ),
    );
    same(
        &other,
        by_hand(
            Query::select()
                .columns(Sample::COLUMNS.iter().map(|c| c.name))
                .from("sample")
                .and_where(Expr::col("tenant").eq("umbrella"))
                .and_where(
                    Expr::col("double")
                        .eq(1.0_f64)
                        .or(Expr::col("real").lt(f32::NAN)),
                ),
        ),
    );
    // Update sets and insert values too.
    for _ in 0..2 {
        let update = db
            .tenant("acme".to_string())
            .update::<Sample>()
            .set(Sample::MAYBE_DOUBLE, Some(f64::NAN))
            .filter(Sample::ID.eq(1))
            .build()
            .unwrap();
        assert_eq!(
            update.sql(),
            r#"UPDATE "sample" SET "maybe_double" = $1 WHERE "tenant" = $2 AND "id" = $3"#
        );
        let insert = db
            .tenant("acme".to_string())
            .insert(sample(f64::NAN, f32::NAN))
            .build()
            .unwrap();
        assert_eq!(insert.params().len(), Sample::COLUMNS.len() - 1);
    }
}

/// On a server: NaN rows of tenant A, then the same shapes as tenant B,
/// which sees, changes and deletes none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nan_shapes_of_a_second_tenant_reach_nothing_of_the_first() {
    let (_test_db, db) = setup().await;
    let (a, b) = (
        db.tenant("acme".to_string()),
        db.tenant("umbrella".to_string()),
    );
    let mine = a
        .insert(sample(f64::NAN, f32::NAN))
        .returning()
        .await
        .unwrap();
    assert!(mine.double.is_nan() && mine.tenant == "acme");
    let theirs = b.insert(sample(f64::NAN, 1.0)).returning().await.unwrap();
    assert_eq!(theirs.tenant, "umbrella");

    let nan_rows = |h: &pebble::TenantDb<String>| {
        h.select::<Sample>()
            .filter(Sample::DOUBLE.eq(f64::NAN))
            .order_by(Sample::ID.asc())
    };
    // PostgreSQL orders NaN as equal to itself: each tenant finds its own.
    let ids = |rows: Vec<Sample>| rows.iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(ids(nan_rows(&a).all().await.unwrap()), [mine.id]);
    assert_eq!(ids(nan_rows(&b).all().await.unwrap()), [theirs.id]);
    // B's update and delete of NaN rows, right after A's of the same shape.
    let touch = |h: &pebble::TenantDb<String>, id: i64| {
        h.update::<Sample>()
            .set(Sample::MAYBE_DOUBLE, Some(f64::NAN))
            .filter(Sample::ID.eq(id).and(Sample::DOUBLE.eq(f64::NAN)))
    };
    assert_eq!(touch(&a, mine.id).exec().await.unwrap(), 1);
    assert_eq!(touch(&b, mine.id).exec().await.unwrap(), 0);
    assert!(touch(&b, mine.id).returning().await.unwrap().is_empty());
    assert_eq!(
        b.delete::<Sample>()
            .filter(Sample::ID.eq(mine.id).and(Sample::REAL.eq(f32::NAN)))
            .exec()
            .await
            .unwrap(),
        0
    );
    let kept = a.find::<Sample>(mine.id).one().await.unwrap();
    assert!(kept.double.is_nan() && kept.maybe_double.is_some_and(f64::is_nan));
    assert_eq!(b.find::<Sample>(mine.id).optional().await.unwrap(), None);
}

const DOCS: [&str; 5] = ["id", "org_id", "title", "pages", "created_at"];

/// Shape `s` (0..7776): five `pages` comparisons OR-ed, each operator one
/// base-6 digit of `s`; the values are `base + i`.
fn chain(s: usize, base: i32) -> (pebble::Filter<common::Document>, sea_query::Expr) {
    use common::Document;
    let term = |i: usize| {
        let op = s / 6usize.pow(i as u32) % 6;
        let v = base + i as i32;
        let col = Expr::col("pages");
        match op {
            0 => (Document::PAGES.eq(v), col.eq(v)),
            1 => (Document::PAGES.ne(v), col.ne(v)),
            2 => (Document::PAGES.gt(v), col.gt(v)),
            3 => (Document::PAGES.gte(v), col.gte(v)),
            4 => (Document::PAGES.lt(v), col.lt(v)),
            _ => (Document::PAGES.lte(v), col.lte(v)),
        }
    };
    let (mut filter, mut expr) = term(0);
    for i in 1..5 {
        let (f, e) = term(i);
        filter = filter.or(f);
        expr = expr.or(e);
    }
    (filter, expr)
}

/// 16 threads, each its own tenant, build 7,776 shapes between them (more
/// than the cache's 4,096, so shards are emptied while others read them)
/// and a small set all of them share, twice over. Every statement is the
/// text sea-query renders for its own shape, with its own thread's tenant
/// and values in their placeholders.
#[test]
fn sixteen_threads_building_thousands_of_shapes_each_get_their_own() {
    const SHAPES: usize = 6 * 6 * 6 * 6 * 6;
    let db = lazy_db();
    std::thread::scope(|threads| {
        for t in 0..16_usize {
            let db = &db;
            threads.spawn(move || {
                let org = t as i64 + 1;
                let tenant = db.tenant(org);
                let base = t as i32 * 1000;
                let check = |s: usize, limit: bool| {
                    let (filter, expr) = chain(s, base);
                    let mut select = tenant.select::<common::Document>().filter(filter);
                    let mut hand = Query::select();
                    hand.columns(DOCS)
                        .from("documents")
                        .and_where(Expr::col("org_id").eq(org))
                        .and_where(expr);
                    if limit {
                        select = select.limit(s as u64);
                        hand.limit(s as u64);
                    }
                    same(&select.build().unwrap(), by_hand(&hand));
                };
                for round in 0..2 {
                    for s in (t..SHAPES).step_by(16) {
                        check(s, round == 1);
                        // The shared shapes: every thread, every few steps.
                        check(s % 32, false);
                    }
                }
            });
        }
    });
}

/// Models of one table name, with the same column names, differ in what
/// their statements say: column order, which column is the tenant's, or
/// none. Each keeps its own text, whichever is built first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_sharing_a_table_name_keep_their_own_text() {
    #[derive(Model, Debug)]
    #[pebble(table = "twins")]
    struct ByOrg {
        #[pebble(primary_key)]
        id: i64,
        #[tenant_id]
        org: i64,
        name: String,
    }
    #[derive(Model, Debug)]
    #[pebble(table = "twins")]
    struct Reordered {
        #[pebble(primary_key)]
        id: i64,
        name: String,
        #[tenant_id]
        org: i64,
    }
    #[derive(Model, Debug)]
    #[pebble(table = "twins")]
    struct ByName {
        #[pebble(primary_key)]
        id: i64,
        org: i64,
        #[tenant_id]
        name: i64,
    }
    #[derive(Model, Debug)]
    #[pebble(table = "twins", shared)]
    struct Shared {
        #[pebble(primary_key)]
        id: i64,
        org: i64,
        name: String,
    }
    let db = lazy_db();
    let select = |columns: &[&'static str], tenant: Option<&'static str>| {
        let mut hand = Query::select();
        hand.columns(columns.iter().copied()).from("twins");
        if let Some(column) = tenant {
            hand.and_where(Expr::col(column).eq(7_i64));
        }
        hand.and_where(Expr::col("id").eq(1_i64));
        by_hand(&hand)
    };
    for _ in 0..2 {
        same(
            &db.tenant(7_i64).find::<ByOrg>(1).build().unwrap(),
            select(&["id", "org", "name"], Some("org")),
        );
        same(
            &db.tenant(7_i64).find::<Reordered>(1).build().unwrap(),
            select(&["id", "name", "org"], Some("org")),
        );
        same(
            &db.tenant(7_i64).find::<ByName>(1).build().unwrap(),
            select(&["id", "org", "name"], Some("name")),
        );
        same(
            &db.find::<Shared>(1).build().unwrap(),
            select(&["id", "org", "name"], None),
        );
        // The same shape under cross_tenant() has no tenant condition.
        same(
            &db.cross_tenant().find::<ByOrg>(1).build().unwrap(),
            select(&["id", "org", "name"], None),
        );
    }
}

/// On a server: 16 tenants run the same shapes at once, each with its own
/// tenant and aimed at the next tenant's keys, through one pool. Every
/// select sees only its own rows, every write aimed at another tenant's
/// row changes nothing, and each tenant's own writes land on its rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_tenants_running_the_same_shapes_at_once_stay_apart() {
    use common::Document;
    let (_test_db, db) = setup().await;
    let ids = |org: i64| (1..=5).map(|i| org * 100 + i).collect::<Vec<_>>();
    for org in 1..=16_i64 {
        for id in ids(org) {
            db.tenant(org)
                .insert(Document::new(id, "doc", 1))
                .exec()
                .await
                .unwrap();
        }
    }
    let mut tasks = Vec::new();
    for org in 1..=16_i64 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let me = db.tenant(org);
            let theirs = org % 16 + 1;
            for round in 1..=10 {
                let rows = me
                    .select::<Document>()
                    .filter(Document::PAGES.gte(1).or(Document::TITLE.like("d%")))
                    .order_by(Document::ID.asc())
                    .all()
                    .await
                    .unwrap();
                assert!(rows.iter().all(|d| d.org_id == org), "{rows:?}");
                assert_eq!(rows.iter().map(|d| d.id).collect::<Vec<_>>(), ids(org));
                assert_eq!(me.select::<Document>().count().await.unwrap(), 5);
                let other = theirs * 100 + round % 5 + 1;
                assert_eq!(me.find::<Document>(other).optional().await.unwrap(), None);
                assert!(!me
                    .select::<Document>()
                    .filter(Document::ID.is_in([other, other + 1]))
                    .exists()
                    .await
                    .unwrap());
                let set_pages = |id: i64, pages: i32| {
                    me.update::<Document>()
                        .set(Document::PAGES, pages)
                        .filter(Document::ID.eq(id))
                };
                assert_eq!(set_pages(other, -1).exec().await.unwrap(), 0);
                assert!(set_pages(other, -1).returning().await.unwrap().is_empty());
                let own = org * 100 + round % 5 + 1;
                let changed = set_pages(own, round as i32 + 1).returning().await.unwrap();
                assert_eq!(changed.len(), 1);
                assert_eq!((changed[0].id, changed[0].org_id), (own, org));
                assert_eq!(
                    me.delete::<Document>()
                        .filter(Document::ID.eq(other))
                        .exec()
                        .await
                        .unwrap(),
                    0
                );
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let all = db
        .cross_tenant()
        .select::<Document>()
        .order_by(Document::ID.asc())
        .all()
        .await
        .unwrap();
    assert_eq!(all.len(), 16 * 5);
    for doc in all {
        assert_eq!(doc.id / 100, doc.org_id, "{doc:?}");
        assert!(doc.pages > 1, "only its own tenant wrote it: {doc:?}");
    }
}

/// A small deterministic generator (xorshift), so a failing shape can be
/// rebuilt from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A random filter on `Document`: its shape from `shape`, its values from `values`.
fn random_filter(
    shape: &mut Rng,
    values: &mut Rng,
    depth: u32,
) -> pebble::Filter<common::Document> {
    use common::Document;
    let v = values.below(1000) as i64;
    let pick = if depth == 0 {
        shape.below(10)
    } else {
        shape.below(13)
    };
    match pick {
        0 => Document::ID.eq(v),
        1 => Document::ID.ne(v),
        2 => Document::PAGES.gt(v as i32),
        3 => Document::PAGES.lte(v as i32),
        4 => Document::PAGES.between(v as i32, v as i32 + 10),
        5 => Document::TITLE.like(format!("{v}%")),
        6 => Document::TITLE.ilike(format!("%{v}")),
        // Arrays of any length are one placeholder: the length is a value.
        7 => Document::ID.is_in((0..values.below(4) as i64).map(|i| v + i)),
        8 => Document::ID.not_in((0..values.below(4) as i64).map(|i| v + i)),
        // The tenant column itself, as a filter.
        9 => Document::ORG_ID.eq(v),
        10 => random_filter(shape, values, depth - 1).and(random_filter(shape, values, depth - 1)),
        11 => random_filter(shape, values, depth - 1).or(random_filter(shape, values, depth - 1)),
        _ => !random_filter(shape, values, depth - 1),
    }
}

/// A random statement of shape `shape_seed`, with values from `value_seed`,
/// on a tenant handle or through `cross_tenant()`.
fn random_statement(db: &Db, shape_seed: u64, value_seed: u64) -> Statement {
    use common::Document;
    let scramble = |seed: u64| Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let (shape, values) = (&mut scramble(shape_seed), &mut scramble(value_seed));
    let org = values.below(50) as i64 + 1;
    let cross = shape.below(4) == 0;
    let filters = shape.below(3);
    macro_rules! scoped {
        ($method:ident) => {
            if cross {
                db.cross_tenant().$method::<Document>()
            } else {
                db.tenant(org).$method::<Document>()
            }
        };
    }
    match shape.below(3) {
        0 => {
            let mut select = scoped!(select);
            for _ in 0..filters {
                select = select.filter(random_filter(shape, values, 3));
            }
            for _ in 0..shape.below(3) {
                select = select.order_by(if shape.below(2) == 0 {
                    Document::PAGES.asc()
                } else {
                    Document::ID.desc()
                });
            }
            if shape.below(2) == 0 {
                select = select.limit(values.below(100));
            }
            if shape.below(2) == 0 {
                select = select.offset(values.below(100));
            }
            select.build().unwrap()
        }
        1 => {
            let mut update = scoped!(update);
            if shape.below(2) == 0 {
                update = update.set(Document::TITLE, format!("t{}", values.below(9)));
            }
            update = update.set(Document::PAGES, values.below(9) as i32);
            for _ in 0..filters {
                update = update.filter(random_filter(shape, values, 3));
            }
            update.build().unwrap()
        }
        _ => {
            let mut delete = scoped!(delete);
            for _ in 0..filters {
                delete = delete.filter(random_filter(shape, values, 3));
            }
            delete.build().unwrap()
        }
    }
}

/// Thousands of random shapes (filter trees of AND, OR, NOT over every
/// operator, arrays of any length, orders, limits, offsets, updates and
/// deletes, tenant handles and `cross_tenant()`), each built with several
/// sets of values and tenants: the same text each time, as many values as
/// the first, and (in debug builds, these) every cache hit equal to a
/// fresh sea-query rendering, text and values.
#[test]
fn random_shapes_built_again_with_other_values_get_their_own_text() {
    let db = lazy_db();
    let mut texts = std::collections::HashSet::new();
    for shape_seed in 1..=5000_u64 {
        let first = random_statement(&db, shape_seed, 1);
        texts.insert(first.sql().to_owned());
        for value_seed in 2..=4 {
            let again = random_statement(&db, shape_seed, value_seed * 7919);
            assert_eq!(first.sql(), again.sql(), "shape {shape_seed}");
            assert_eq!(first.params().len(), again.params().len());
        }
    }
    // The seeds make shapes enough to be worth the name.
    assert!(texts.len() > 2000, "{} texts", texts.len());
}

/// On a server, in both statement modes (prepared, and unnamed as behind
/// PgBouncer), and both on the pool and inside one transaction holding
/// both tenants' handles: tenant B's statements, of the shapes tenant A
/// just ran, aimed at A's rows, see and change nothing of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_and_transaction_in_either_statement_mode_keep_tenants_apart() {
    use common::Document;
    use pebble::{PoolOptions, StatementMode};
    let (test_db, _db) = setup().await;
    for (n, mode) in [StatementMode::Prepared, StatementMode::Unnamed]
        .into_iter()
        .enumerate()
    {
        let db = Db::connect_with(
            test_db.config(),
            PoolOptions::default().statement_mode(mode),
        )
        .await
        .unwrap();
        let (a, b) = (10 + n as i64 * 2, 11 + n as i64 * 2);
        let (mine, theirs) = (a * 100, b * 100);
        let tx = db.begin().await.unwrap();
        for (handle, id) in [(tx.tenant(a), mine), (tx.tenant(b), theirs)] {
            handle
                .insert(Document::new(id, "own", 1))
                .exec()
                .await
                .unwrap();
        }
        let (ta, tb) = (tx.tenant(a), tx.tenant(b));
        // A's shapes first, on its own row; then B's, aimed at A's row.
        for (handle, target, found) in [(&ta, mine, true), (&tb, mine, false)] {
            let seen = handle
                .select::<Document>()
                .filter(Document::ID.eq(target).and(Document::TITLE.like("o%")))
                .limit(5)
                .all()
                .await
                .unwrap();
            assert_eq!(seen.len(), usize::from(found));
            let renamed = handle
                .update::<Document>()
                .set(Document::TITLE, "renamed")
                .filter(Document::ID.eq(target))
                .exec()
                .await
                .unwrap();
            assert_eq!(renamed, u64::from(found));
        }
        assert_eq!(
            tb.delete::<Document>()
                .filter(Document::ID.eq(mine))
                .exec()
                .await
                .unwrap(),
            0
        );
        tx.commit().await.unwrap();
        // The same shapes on the pool.
        let (pa, pb) = (db.tenant(a), db.tenant(b));
        assert_eq!(
            pa.find::<Document>(mine).one().await.unwrap().title,
            "renamed"
        );
        assert_eq!(pb.find::<Document>(mine).optional().await.unwrap(), None);
        assert_eq!(
            pb.find::<Document>(theirs).one().await.unwrap().title,
            "own"
        );
        assert_eq!(
            pb.update::<Document>()
                .set(Document::PAGES, 9)
                .filter(Document::ID.eq(mine))
                .exec()
                .await
                .unwrap(),
            0
        );
        assert_eq!(pa.find::<Document>(mine).one().await.unwrap().pages, 1);
    }
}
