//! A to-do service for many organisations on one PostgreSQL: the models
//! and the operations a web handler would call, each confined to one
//! organisation by pebble. Its tests (`tests/app.rs`) show
//! `#[pebble::test]`, the way an application tests against a real
//! database.

use pebble::{Db, Model, Result};

/// An organisation's project.
#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "projects")]
pub struct Project {
    /// Filled by the database.
    #[pebble(primary_key, default)]
    pub id: i64,
    /// The organisation (tenant); stamped by the tenant handle.
    #[tenant_id]
    pub org: i64,
    /// Unique within the organisation.
    #[pebble(unique)]
    pub name: String,
}

/// A task in a project.
#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "tasks")]
pub struct Task {
    /// Filled by the database.
    #[pebble(primary_key, default)]
    pub id: i64,
    /// The organisation (tenant).
    #[tenant_id]
    pub org: i64,
    /// The project it belongs to.
    pub project_id: i64,
    /// What to do.
    pub title: String,
    /// Whether it is done.
    pub done: bool,
}

/// The operations of one organisation: every statement is confined to it.
#[derive(Clone)]
pub struct Todo {
    db: Db,
    org: i64,
}

impl Todo {
    /// The service as organisation `org` sees it.
    pub fn new(db: &Db, org: i64) -> Todo {
        Todo {
            db: db.clone(),
            org,
        }
    }

    /// A new project.
    pub async fn create_project(&self, name: &str) -> Result<Project> {
        let project = Project {
            id: 0,
            org: 0,
            name: name.to_owned(),
        };
        self.db.tenant(self.org).insert(project).returning().await
    }

    /// A new task in one of the organisation's projects: a project of
    /// another organisation is [`pebble::Error::NotFound`].
    pub async fn add_task(&self, project_id: i64, title: &str) -> Result<Task> {
        let tenant = self.db.tenant(self.org);
        let tx = tenant.begin().await?;
        // Inside the transaction, so the project cannot vanish in between.
        tx.find::<Project>(project_id).one().await?;
        let task = tx
            .insert(Task {
                id: 0,
                org: 0,
                project_id,
                title: title.to_owned(),
                done: false,
            })
            .returning()
            .await?;
        tx.commit().await?;
        Ok(task)
    }

    /// Marks a task done; `false` if the organisation has no such task.
    pub async fn complete(&self, task_id: i64) -> Result<bool> {
        let changed = self
            .db
            .tenant(self.org)
            .update::<Task>()
            .set(Task::DONE, true)
            .filter(Task::ID.eq(task_id))
            .exec()
            .await?;
        Ok(changed == 1)
    }

    /// The open tasks of a project, oldest first.
    pub async fn open_tasks(&self, project_id: i64) -> Result<Vec<Task>> {
        self.db
            .tenant(self.org)
            .select::<Task>()
            .filter(Task::PROJECT_ID.eq(project_id) & Task::DONE.eq(false))
            .order_by(Task::ID.asc())
            .all()
            .await
    }
}
