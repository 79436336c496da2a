//! A server stopped and started again under load: every error the clients
//! see is a connection error (`Error::Connection`, `is_retryable()`),
//! whatever form the server's shutdown or start-up takes (a refused
//! connect, SQLSTATE 57P01 `admin_shutdown`, 57P03 `cannot_connect_now`),
//! and work resumes by itself once the server is back.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pebble::{Db, Error, Model, PoolOptions};
use uuid::Uuid;

#[derive(Model, Debug)]
#[pebble(table = "events")]
struct Event {
    #[pebble(primary_key, default)]
    id: i64,
    #[tenant_id]
    tenant: Uuid,
    body: String,
}

const TASKS: usize = 8;

/// Waits until `condition` holds; the deadline only keeps a broken build
/// from hanging CI, it is not what the test measures.
async fn until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !condition() {
        assert!(Instant::now() < deadline, "gave up waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_under_load_yields_only_connection_errors() {
    let server = Arc::new(pebble_testkit::TempServer::start().expect("a restartable server"));
    let options = PoolOptions::default()
        .max_size(4)
        .wait_timeout(Some(Duration::from_secs(60)))
        .create_timeout(Some(Duration::from_secs(60)));
    let db = Db::connect_with(server.config(), options).await.unwrap();
    db.create_table::<Event>().await.unwrap();

    let phase = Arc::new(AtomicUsize::new(0)); // 0 before the stop, 1 after the restart
    let successes = Arc::new([0, 1].map(|_| AtomicUsize::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(Mutex::new(Vec::<Error>::new()));
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let (db, phase, successes, stop, errors) = (
                db.clone(),
                Arc::clone(&phase),
                Arc::clone(&successes),
                Arc::clone(&stop),
                Arc::clone(&errors),
            );
            tokio::spawn(async move {
                let tenant = db.tenant(Uuid::new_v4());
                let mut n = 0;
                while !stop.load(Ordering::Acquire) {
                    n += 1;
                    let result = if i % 2 == 0 {
                        tenant
                            .insert(Event {
                                id: 0,
                                tenant: Uuid::nil(),
                                body: format!("{i}/{n}"),
                            })
                            .exec()
                            .await
                            .map(|_| ())
                    } else {
                        tenant.select::<Event>().count().await.map(|_| ())
                    };
                    match result {
                        Ok(()) => {
                            successes[phase.load(Ordering::Acquire)].fetch_add(1, Ordering::AcqRel);
                        }
                        Err(e) => errors.lock().unwrap().push(e),
                    }
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();

    until("the load is running", || {
        successes[0].load(Ordering::Acquire) >= TASKS
    })
    .await;
    let restarting = Arc::clone(&server);
    tokio::task::spawn_blocking(move || {
        restarting.stop();
        restarting.restart()
    })
    .await
    .unwrap()
    .expect("the server restarts");
    phase.store(1, Ordering::Release);
    until("work resumed after the restart", || {
        successes[1].load(Ordering::Acquire) >= TASKS
    })
    .await;
    stop.store(true, Ordering::Release);
    for task in tasks {
        task.await.unwrap();
    }

    let errors = errors.lock().unwrap();
    assert!(!errors.is_empty(), "the outage was seen by the load");
    for err in errors.iter() {
        assert!(
            err.is_connection_error() && err.is_retryable(),
            "not a connection error: {err:?}"
        );
    }
}
