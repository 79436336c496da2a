//! The per-shape statement cache: each statement shape's SQL is rendered
//! once (by sea-query) and reused, so a builder on the hot path only
//! collects its bind values.
//!
//! A shape is a [`Plan`] (what the builder recorded) together with the
//! builder's [`Scope`] and model. Its key is the full token sequence (see
//! [`crate::shape`]); the hash only picks the bucket, and a hit compares
//! every token, so two shapes can never share an entry. A shape is cached
//! only after its first rendering has been checked: the values the plan
//! collects must equal, in number and order, the values sea-query bound
//! for that text. Builders that are not plans (joins, projections, locks,
//! upserts, expressions in updates) never reach this module. Debug builds
//! also render every hit afresh and panic if text or values differ.
//!
//! The cache is process-wide, split in [`SHARDS`] shards behind their own
//! `RwLock` (the hot path only reads), each holding at most
//! [`SHARD_CAPACITY`] shapes: a full shard is emptied, so memory stays
//! bounded whatever the application does (schema handles name their
//! tenant's schema in the text, so their shapes are per tenant). In front
//! of it, each thread keeps copies of the texts it used ([`LOCAL`]: at
//! most [`LOCAL_CAPACITY`] shapes of at most [`LOCAL_TEXT_LIMIT`] bytes
//! each, emptied when full), so that a hit neither takes the shard's lock
//! nor writes the shared text's reference count: both were written by
//! every client of a shape and bounced between cores on every statement.

use std::any::TypeId;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, RwLock};

use sea_query::Value;
use sea_query_postgres::PostgresValue;

use crate::conn::Statement;
use crate::model::Model;
use crate::scope::{Scope, Strategy};
use crate::shape::{bound, same_values, tag, value_key, KeySink};

/// What a builder records instead of a sea-query tree while its shape can
/// be keyed, and how the tree is made from it when it is rendered.
pub(crate) trait Plan: Clone + Default {
    /// The sea-query statement this plan stands for.
    type Tree;

    /// The statement exactly as the builder used to build it.
    fn tree<M: Model>(&self, scope: &Scope) -> Self::Tree;

    /// Every token of the text this plan renders to, but the scope's.
    fn key<M: Model>(&self, key: &mut impl KeySink);

    /// The bind values in placeholder order; `tenant` is the scope's
    /// condition value, where its placeholder falls in this statement.
    fn values(self, tenant: Option<&Value>) -> Vec<PostgresValue>;
}

/// The statement `plan` renders to under `scope`: from the cache when this
/// shape was rendered before, rendered by `render` otherwise (and cached
/// when its values check out).
pub(crate) fn statement<M: Model, P: Plan>(
    plan: P,
    scope: &Scope,
    render: impl FnOnce(&P) -> Statement,
) -> Statement {
    let shape = Shape::<M, P> {
        plan: &plan,
        scope,
        _model: std::marker::PhantomData,
    };
    if !shape.keyable() {
        return render(&plan);
    }
    let mut hasher = FxSink(0);
    shape.key(&mut hasher);
    let hash = hasher.0;
    if let Some(sql) = cached(hash, |matcher| shape.key(matcher)) {
        // Debug builds (every test of this workspace) check each hit
        // against a fresh rendering: text and values must be the same.
        #[cfg(debug_assertions)]
        let fresh = render(&plan);
        let values = collect(plan, scope);
        #[cfg(debug_assertions)]
        assert!(
            fresh.sql() == &*sql && same_values(&fresh.values().0, &values),
            "a cached shape differs from its fresh rendering: {} vs {}",
            &*sql,
            fresh.sql(),
        );
        return Statement::shared(sql, values);
    }
    let rendered = render(&plan);
    let mut recorded = Recorder(Vec::new());
    shape.key(&mut recorded);
    let values = collect(plan, scope);
    if same_values(&values, &rendered.values().0) {
        CACHE.insert(
            hash,
            recorded.0.into_boxed_slice(),
            Arc::from(rendered.sql()),
        );
    } else {
        // A plan that collects other values than its rendering binds is a
        // bug in pebble: never cached, and visible in tests and debug builds.
        debug_assert!(
            false,
            "shape values disagree with sea-query: {}",
            rendered.sql()
        );
    }
    rendered
}

fn collect<P: Plan>(plan: P, scope: &Scope) -> Vec<PostgresValue> {
    plan.values(scope.condition_value())
}

/// A plan with the scope and model it renders under.
struct Shape<'a, M, P> {
    plan: &'a P,
    scope: &'a Scope,
    _model: std::marker::PhantomData<fn() -> M>,
}

impl<M: Model, P: Plan> Shape<'_, M, P> {
    /// Scopes that refuse every statement are never rendered for sending;
    /// they are not worth a key.
    fn keyable(&self) -> bool {
        matches!(
            self.scope,
            Scope::Plain { .. }
                | Scope::Tenant { .. }
                | Scope::Schema { .. }
                | Scope::CrossTenant { .. }
        )
    }

    fn key(&self, key: &mut impl KeySink) {
        match self.scope {
            Scope::Plain { .. } => key.num(tag::SCOPE_PLAIN),
            Scope::Tenant {
                strategy,
                column,
                key: value,
                ..
            } => {
                key.num(tag::SCOPE_TENANT);
                key.num(match strategy {
                    Strategy::Row => 0,
                    Strategy::Rls => 1,
                    Strategy::Login => 2,
                });
                key.column(column);
                value_key(value, key);
            }
            // The schema is part of the text (`"tenant_acme"."tasks"`).
            Scope::Schema { schema, .. } => {
                key.num(tag::SCOPE_SCHEMA);
                key.str(schema);
            }
            Scope::CrossTenant { .. } => key.num(tag::SCOPE_CROSS),
            Scope::UnsetTenant { .. } | Scope::TenantModelThroughDb { .. } => key.num(tag::END),
        }
        // The model, not its table's name: its columns are part of the
        // text too, and two models may share a table.
        key.model(TypeId::of::<M>());
        self.plan.key::<M>(key);
        key.num(tag::END);
    }
}

/// The scope's condition value as a bind value, for plans placing it.
pub(crate) fn tenant_value(tenant: Option<&Value>, out: &mut Vec<PostgresValue>) {
    if let Some(value) = tenant {
        out.push(bound(value.clone()));
    }
}

/// How many shards the cache is split in: enough that 16 clients rarely
/// touch the same lock's cache line at once.
const SHARDS: usize = 16;

/// Shapes per shard: 16 × 256 = 4,096 shapes in all.
const SHARD_CAPACITY: usize = 256;

static CACHE: Cache = Cache::new();

/// Shapes per thread in [`LOCAL`]: a full one is emptied.
const LOCAL_CAPACITY: usize = 512;

/// The longest text [`LOCAL`] copies: 512 of them are at most 512 KiB per
/// thread.
const LOCAL_TEXT_LIMIT: usize = 1024;

thread_local! {
    /// Each thread's copies of the shapes it used, in front of [`CACHE`]:
    /// a hit takes no lock and writes no reference count another thread
    /// writes too (the shared shard's lock and text were written by every
    /// client of a shape, and their cache lines bounced between cores on
    /// every statement).
    static LOCAL: RefCell<Local> = RefCell::new(Local::default());
}

/// The text stored for the shape whose tokens `key` writes: this thread's
/// copy, or the process-wide entry (copied to this thread for next time).
fn cached(hash: u64, key: impl Fn(&mut Matcher<'_>)) -> Option<Arc<str>> {
    if let Ok(Some(sql)) = LOCAL.try_with(|local| local.borrow().get(hash, &key)) {
        return Some(sql);
    }
    let (tokens, sql) = CACHE.get(hash, &key)?;
    // Long texts (inserts of many rows, wide selects) are shared, not
    // copied: a copy per thread would cost more memory than the shared
    // reference count costs time, next to sending such a statement.
    if sql.len() > LOCAL_TEXT_LIMIT {
        return Some(sql);
    }
    // A text of this thread's own: its reference count is this thread's.
    let own: Arc<str> = Arc::from(&*sql);
    let _ = LOCAL.try_with(|local| local.borrow_mut().insert(hash, tokens, Arc::clone(&own)));
    Some(own)
}

#[derive(Default)]
struct Local {
    map: Bucket,
    len: usize,
}

impl Local {
    fn get(&self, hash: u64, key: impl Fn(&mut Matcher<'_>)) -> Option<Arc<str>> {
        find(&self.map, hash, key).map(|entry| Arc::clone(&entry.sql))
    }

    fn insert(&mut self, hash: u64, key: Box<[Token]>, sql: Arc<str>) {
        if self.len >= LOCAL_CAPACITY {
            self.map.clear();
            self.len = 0;
        }
        let entries = self.map.entry(hash).or_default();
        if entries.iter().all(|entry| entry.key != key) {
            entries.push(Entry { key, sql });
            self.len += 1;
        }
    }
}

/// The entry of `bucket` whose key is the tokens `key` writes.
fn find(bucket: &Bucket, hash: u64, key: impl Fn(&mut Matcher<'_>)) -> Option<&Entry> {
    bucket.get(&hash)?.iter().find(|entry| {
        let mut matcher = Matcher {
            key: &entry.key,
            at: 0,
            same: true,
        };
        key(&mut matcher);
        matcher.same && matcher.at == entry.key.len()
    })
}

/// One token of a stored key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Num(u64),
    Str(Box<str>),
    Column(&'static str),
    Model(TypeId),
}

struct Entry {
    key: Box<[Token]>,
    sql: Arc<str>,
}

type Bucket = HashMap<u64, Vec<Entry>, BuildHasherDefault<Passthrough>>;

struct Shard {
    map: RwLock<Option<Bucket>>,
    len: std::sync::atomic::AtomicUsize,
}

struct Cache {
    shards: [Shard; SHARDS],
}

impl Cache {
    const fn new() -> Self {
        Cache {
            shards: [const {
                Shard {
                    map: RwLock::new(None),
                    len: std::sync::atomic::AtomicUsize::new(0),
                }
            }; SHARDS],
        }
    }

    fn shard(&self, hash: u64) -> &Shard {
        // The low bits index the shard's map: take the shard from others.
        &self.shards[(hash >> 32) as usize % SHARDS]
    }

    /// The key and text stored for the shape whose tokens `key` writes,
    /// if any.
    fn get(&self, hash: u64, key: impl Fn(&mut Matcher<'_>)) -> Option<(Box<[Token]>, Arc<str>)> {
        // A poisoned lock only means a panic elsewhere while it was held;
        // the map itself is always consistent (entries are inserted whole).
        let map = self
            .shard(hash)
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner());
        find(map.as_ref()?, hash, key).map(|entry| (entry.key.clone(), Arc::clone(&entry.sql)))
    }

    /// Only the text of [`Cache::get`].
    #[cfg(test)]
    fn text(&self, hash: u64, key: impl Fn(&mut Matcher<'_>)) -> Option<Arc<str>> {
        self.get(hash, key).map(|(_, sql)| sql)
    }

    fn insert(&self, hash: u64, key: Box<[Token]>, sql: Arc<str>) {
        use std::sync::atomic::Ordering;
        let shard = self.shard(hash);
        let mut map = shard.map.write().unwrap_or_else(|e| e.into_inner());
        let map = map.get_or_insert_with(Bucket::default);
        if shard.len.load(Ordering::Relaxed) >= SHARD_CAPACITY {
            // Cheaper than least-recently-used bookkeeping on every hit,
            // and only paid by applications with thousands of shapes.
            map.clear();
            shard.len.store(0, Ordering::Relaxed);
        }
        let entries = map.entry(hash).or_default();
        // Two clients may render the same new shape at once.
        if entries.iter().any(|entry| entry.key == key) {
            return;
        }
        entries.push(Entry { key, sql });
        shard.len.fetch_add(1, Ordering::Relaxed);
    }
}

/// FxHash's mixing step (as rustc uses): a few instructions per token,
/// and the hash only chooses a bucket, so its quality only affects speed.
struct FxSink(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxSink {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl KeySink for FxSink {
    fn num(&mut self, n: u64) {
        self.mix(n);
    }

    fn str(&mut self, s: &str) {
        self.mix(s.len() as u64);
        let mut chunks = s.as_bytes().chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let mut word = [0; 8];
        let rest = chunks.remainder();
        word[..rest.len()].copy_from_slice(rest);
        self.mix(u64::from_le_bytes(word));
    }

    fn column(&mut self, name: &'static str) {
        self.mix(name.as_ptr() as u64);
        self.mix(name.len() as u64);
    }

    fn model(&mut self, model: TypeId) {
        use std::hash::{Hash, Hasher as _};
        let mut hasher = rustc_hash::FxHasher::default();
        model.hash(&mut hasher);
        self.mix(hasher.finish());
    }
}

/// Compares a shape's tokens with a stored key, one by one.
struct Matcher<'a> {
    key: &'a [Token],
    at: usize,
    same: bool,
}

impl KeySink for Matcher<'_> {
    fn num(&mut self, n: u64) {
        self.same &= matches!(self.key.get(self.at), Some(Token::Num(m)) if *m == n);
        self.at += 1;
    }

    fn str(&mut self, s: &str) {
        self.same &= matches!(self.key.get(self.at), Some(Token::Str(t)) if **t == *s);
        self.at += 1;
    }

    fn column(&mut self, name: &'static str) {
        self.same &= matches!(
            self.key.get(self.at),
            Some(Token::Column(c)) if std::ptr::eq(*c, name) || *c == name
        );
        self.at += 1;
    }

    fn model(&mut self, model: TypeId) {
        self.same &= matches!(self.key.get(self.at), Some(Token::Model(m)) if *m == model);
        self.at += 1;
    }
}

/// Records a shape's tokens, to store them as the key of a new entry.
struct Recorder(Vec<Token>);

impl KeySink for Recorder {
    fn num(&mut self, n: u64) {
        self.0.push(Token::Num(n));
    }

    fn str(&mut self, s: &str) {
        self.0.push(Token::Str(s.into()));
    }

    fn column(&mut self, name: &'static str) {
        self.0.push(Token::Column(name));
    }

    fn model(&mut self, model: TypeId) {
        self.0.push(Token::Model(model));
    }
}

/// The buckets are keyed by a hash already: no second hashing.
#[derive(Default)]
struct Passthrough(u64);

impl Hasher for Passthrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 << 8) | u64::from(*byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(key: &[Token]) -> impl Fn(&mut Matcher<'_>) + '_ {
        move |sink| {
            for token in key {
                match token {
                    Token::Num(n) => sink.num(*n),
                    Token::Str(s) => sink.str(s),
                    Token::Column(c) => sink.column(c),
                    Token::Model(m) => sink.model(*m),
                }
            }
        }
    }

    fn key(parts: &[&str]) -> Box<[Token]> {
        parts.iter().map(|s| Token::Str((*s).into())).collect()
    }

    #[test]
    fn a_hit_needs_the_whole_key_not_just_the_hash() {
        let cache = Cache::new();
        // Two shapes forced into one hash: each finds its own text.
        cache.insert(7, key(&["a", "b"]), "A".into());
        cache.insert(7, key(&["a", "c"]), "C".into());
        assert_eq!(
            cache.text(7, tokens(&key(&["a", "b"]))).as_deref(),
            Some("A")
        );
        assert_eq!(
            cache.text(7, tokens(&key(&["a", "c"]))).as_deref(),
            Some("C")
        );
        // A prefix, a longer key, or the same tokens under another hash miss.
        assert_eq!(cache.text(7, tokens(&key(&["a"]))), None);
        assert_eq!(cache.text(7, tokens(&key(&["a", "b", "c"]))), None);
        assert_eq!(cache.text(8, tokens(&key(&["a", "b"]))), None);
        // A number never matches a name, even with the same digits.
        let numeric: Box<[Token]> = Box::new([Token::Num(1)]);
        cache.insert(9, numeric, "N".into());
        assert_eq!(cache.text(9, tokens(&key(&["1"]))), None);
    }

    #[test]
    fn a_column_matches_by_content_whatever_its_address() {
        let cache = Cache::new();
        cache.insert(3, Box::new([Token::Column("qty")]), "Q".into());
        // The same text at another address (the hash would differ; the
        // key's comparison does not).
        let elsewhere: &'static str = Box::leak(String::from("qty").into_boxed_str());
        assert!(!std::ptr::eq(elsewhere, "qty"));
        let column = |name: &'static str| move |sink: &mut Matcher<'_>| sink.column(name);
        assert_eq!(cache.text(3, column(elsewhere)).as_deref(), Some("Q"));
        assert_eq!(cache.text(3, column("qt")), None);
        // A name of another kind is another token.
        assert_eq!(
            cache.text(3, |sink: &mut Matcher<'_>| sink.str("qty")),
            None
        );
        // The hash takes the address: cheap, and only ever a second entry.
        let hash = |name: &'static str| {
            let mut sink = FxSink(0);
            sink.column(name);
            sink.0
        };
        assert_eq!(hash("qty"), hash("qty"));
        assert_ne!(hash("qty"), hash(elsewhere));
    }

    #[test]
    fn a_shard_never_holds_more_than_its_capacity() {
        let cache = Cache::new();
        // Same shard (bits 32 and up), different buckets.
        for n in 0..(SHARD_CAPACITY as u64 * 3) {
            cache.insert(n, key(&[&n.to_string()]), "x".into());
            let len = cache
                .shard(0)
                .len
                .load(std::sync::atomic::Ordering::Relaxed);
            assert!(len <= SHARD_CAPACITY, "{len}");
        }
        // The latest shape is there; the oldest went with the emptied shard.
        let last = SHARD_CAPACITY as u64 * 3 - 1;
        assert!(cache
            .get(last, tokens(&key(&[&last.to_string()])))
            .is_some());
        assert!(cache.text(0, tokens(&key(&["0"]))).is_none());
    }

    #[test]
    fn a_thread_keeps_its_own_copy_within_its_capacity() {
        let mut local = Local::default();
        for n in 0..(LOCAL_CAPACITY as u64 * 2 + 1) {
            local.insert(n, key(&[&n.to_string()]), "x".into());
            assert!(local.len <= LOCAL_CAPACITY, "{}", local.len);
            let entries: usize = local.map.values().map(Vec::len).sum();
            assert_eq!(entries, local.len);
        }
        let last = LOCAL_CAPACITY as u64 * 2;
        assert!(local
            .get(last, tokens(&key(&[&last.to_string()])))
            .is_some());
        assert!(local.get(0, tokens(&key(&["0"]))).is_none());
        // The same key twice is one entry.
        local.insert(last, key(&[&last.to_string()]), "y".into());
        assert_eq!(local.map[&last].len(), 1);
    }

    #[test]
    fn a_hit_through_the_thread_copies_the_text_once() {
        // A shape of this test only, in the process-wide cache.
        let hash = 0xfeed_0000_0000_0001;
        let shape = key(&["a_hit_through_the_thread_copies_the_text_once"]);
        let shared: Arc<str> = "SELECT 1".into();
        // The process-wide cache is every test's: a shard another test
        // filled meanwhile is emptied, so insert until the first hit.
        let first = (0..100)
            .find_map(|_| {
                CACHE.insert(hash, shape.clone(), Arc::clone(&shared));
                cached(hash, tokens(&shape))
            })
            .expect("a hit");
        let second = cached(hash, tokens(&shape)).expect("a hit");
        assert_eq!(&*first, "SELECT 1");
        // This thread's copy, not the shared text: its reference count is
        // written by this thread only.
        assert!(!Arc::ptr_eq(&first, &shared));
        assert!(Arc::ptr_eq(&first, &second));
        // Another thread makes its own.
        let other = std::thread::spawn({
            let (shape, shared) = (shape.clone(), Arc::clone(&shared));
            move || {
                (0..100)
                    .find_map(|_| {
                        CACHE.insert(hash, shape.clone(), Arc::clone(&shared));
                        cached(hash, tokens(&shape))
                    })
                    .expect("a hit")
            }
        })
        .join()
        .unwrap();
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!(&*other, "SELECT 1");
        assert!(cached(hash, tokens(&key(&["another shape"]))).is_none());

        // A long text is shared, never copied per thread.
        let long_hash = 0xfeed_0000_0000_0002;
        let long_shape = key(&["a long text is shared"]);
        let long: Arc<str> = "x".repeat(LOCAL_TEXT_LIMIT + 1).into();
        let hit = (0..100)
            .find_map(|_| {
                CACHE.insert(long_hash, long_shape.clone(), Arc::clone(&long));
                cached(long_hash, tokens(&long_shape))
            })
            .expect("a hit");
        assert!(Arc::ptr_eq(&hit, &long));
    }

    #[test]
    fn the_hash_reads_every_byte_of_a_name() {
        let hash = |s: &str| {
            let mut sink = FxSink(0);
            sink.str(s);
            sink.0
        };
        assert_ne!(hash("tenant_a.tasks"), hash("tenant_b.tasks"));
        assert_ne!(hash("abcdefgh1"), hash("abcdefgh2"));
        assert_ne!(hash(""), hash("\0"));
    }
}

#[cfg(test)]
mod poisoning_tests {
    use super::*;

    /// A panic while a shard's lock was held (nothing in this module
    /// panics there, but a future change might) must not turn every later
    /// statement of that shard into a panic: the lock is poisoned, the map
    /// stays usable, and a hit still needs its whole key.
    #[test]
    fn a_poisoned_shard_keeps_serving_and_checking_keys() {
        let cache = Cache::new();
        let key = |s: &str| -> Box<[Token]> { Box::new([Token::Str(s.into())]) };
        cache.insert(5, key("a"), "A".into());
        std::thread::scope(|threads| {
            let poisoner = threads.spawn(|| {
                let _guard = cache.shard(5).map.write().unwrap();
                panic!("poisoning the shard on purpose");
            });
            assert!(poisoner.join().is_err());
        });
        assert!(cache.shard(5).map.is_poisoned());
        let find = |s: &'static str| cache.text(5, move |sink: &mut Matcher<'_>| sink.str(s));
        assert_eq!(find("a").as_deref(), Some("A"));
        assert_eq!(find("b"), None);
        cache.insert(5, key("b"), "B".into());
        assert_eq!(find("b").as_deref(), Some("B"));
        assert_eq!(find("a").as_deref(), Some("A"));
    }
}
