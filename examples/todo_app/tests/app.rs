//! The application's tests, each on a fresh database of its own: what
//! `#[pebble::test]` gives an application crate.

use pebble::{Db, Error};
use pebble_example_todo::{Project, Task, Todo};

#[pebble::test(models(Project, Task))]
async fn tasks_belong_to_one_organisation(db: Db) -> pebble::Result<()> {
    let (acme, globex) = (Todo::new(&db, 1), Todo::new(&db, 2));
    let launch = acme.create_project("launch").await?;
    let task = acme.add_task(launch.id, "write the announcement").await?;
    assert_eq!(acme.open_tasks(launch.id).await?, vec![task.clone()]);

    // Globex aims at Acme's rows by id: sees nothing, changes nothing,
    // cannot attach a task to Acme's project.
    assert!(globex.open_tasks(launch.id).await?.is_empty());
    assert!(!globex.complete(task.id).await?);
    let e = globex.add_task(launch.id, "sneak in").await.unwrap_err();
    assert!(matches!(e, Error::NotFound { table: "projects" }), "{e:?}");
    assert_eq!(acme.open_tasks(launch.id).await?, vec![task.clone()]);

    assert!(acme.complete(task.id).await?);
    assert!(acme.open_tasks(launch.id).await?.is_empty());
    Ok(())
}

#[pebble::test(models(Project, Task))]
async fn a_project_name_is_unique_per_organisation(db: Db) {
    let (acme, globex) = (Todo::new(&db, 1), Todo::new(&db, 2));
    acme.create_project("launch").await.expect("first");
    let e = acme.create_project("launch").await.unwrap_err();
    assert!(e.is_unique_violation(), "{e:?}");
    // Another organisation may use the name.
    globex
        .create_project("launch")
        .await
        .expect("per organisation");
}

/// Several tests of one binary run at once (the harness's threads), each
/// on its own empty database: every one of these sees exactly the row it
/// wrote. Were the database shared, whichever ran second would see more,
/// in any order or interleaving (nothing is ever deleted).
mod concurrent {
    use super::*;

    async fn alone(db: Db, name: &str) {
        let org = Todo::new(&db, 7);
        assert_eq!(
            db.tenant(7_i64).select::<Project>().count().await.unwrap(),
            0
        );
        org.create_project(name).await.expect("insert");
        let all = db.cross_tenant().select::<Project>().all().await.unwrap();
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(all[0].name, name);
    }

    #[pebble::test(models(Project))]
    async fn first(db: Db) {
        alone(db, "first").await;
    }

    #[pebble::test(models(Project))]
    async fn second(db: Db) {
        alone(db, "second").await;
    }

    #[pebble::test(models(Project))]
    async fn third(db: Db) {
        alone(db, "third").await;
    }
}

/// The tables from the application's migrations instead of the models.
#[pebble::test(migrations = "migrations")]
async fn migrations_are_applied(db: Db) -> Result<(), Box<dyn std::error::Error>> {
    let acme = Todo::new(&db, 1);
    let project = acme.create_project("from migrations").await?;
    let task = acme.add_task(project.id, "check the schema").await?;
    assert_eq!(acme.open_tasks(project.id).await?, vec![task]);
    // The migration's foreign key is there too.
    let e = db
        .tenant(1_i64)
        .insert(Task {
            id: 0,
            org: 0,
            project_id: 999,
            title: "orphan".into(),
            done: false,
        })
        .exec()
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Some(&pebble::SqlState::FOREIGN_KEY_VIOLATION),
        "{e:?}"
    );
    Ok(())
}

/// A test may also ignore the database, and starts empty all the same.
#[pebble::test]
async fn without_models_the_database_is_empty(db: Db) {
    let e = db.tenant(1_i64).select::<Task>().count().await.unwrap_err();
    assert_eq!(e.code(), Some(&pebble::SqlState::UNDEFINED_TABLE), "{e:?}");
}

/// On a multi-threaded runtime, tasks spawned by the test share its database.
#[pebble::test(models(Project), flavor = "multi_thread")]
async fn spawned_tasks_share_the_database(db: Db) {
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let org = Todo::new(&db, 9);
            tokio::spawn(async move { org.create_project(&format!("p{i}")).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("joined").expect("insert");
    }
    assert_eq!(
        db.tenant(9_i64).select::<Project>().count().await.unwrap(),
        4
    );
}

#[pebble::test]
async fn takes_no_argument() {
    assert_eq!(1 + 1, 2);
}
