//! The schema helper: table and indexes from the entity, idempotent, from a
//! plain connection and from a sea-orm-migration migration.

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sea_orm_migration::prelude::*;
use tasktrail_tests::entities::task_run;
use tasktrail_tests::{Backend, backends, connect};

mod keyless {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, tasktrail::TrackingConfig)]
    #[sea_orm(table_name = "keyless_runs")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub task_key: String,
        pub status: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

async fn index_names(db: &impl ConnectionTrait, table: &str) -> Vec<String> {
    let sql = match db.get_database_backend() {
        DbBackend::Sqlite => format!(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = '{table}' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        ),
        DbBackend::MySql => format!(
            "SELECT DISTINCT index_name AS name FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = '{table}' AND index_name <> 'PRIMARY' ORDER BY index_name"
        ),
        _ => format!(
            "SELECT indexname AS name FROM pg_indexes WHERE tablename = '{table}' AND indexname NOT LIKE '%_pkey' ORDER BY indexname"
        ),
    };
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.try_get::<String>("", "name").unwrap())
        .collect()
}

async fn create_is_idempotent_and_indexes(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .expect("a second create is a no-op");
    let names = index_names(&db, "task_runs").await;
    for wanted in [
        "ix_task_runs_status_created_at",
        "ix_task_runs_created_at",
        "ix_task_runs_status_updated_at",
        "ix_task_runs_task_name_created_at_status",
    ] {
        assert!(
            names.iter().any(|n| n == wanted),
            "{wanted} missing from {names:?}"
        );
    }
    // The key is unique (declared `#[sea_orm(unique)]`): a second row with
    // the same key is refused.
    // (MySQL's datetime literals carry no offset.)
    let time = if backend == Backend::MariaDb {
        "'2026-01-01 00:00:00'"
    } else {
        "'2026-01-01 00:00:00+00'"
    };
    let insert = format!(
        "INSERT INTO task_runs (task_key, task_name, status, cleaned_up, created_at, updated_at) \
         VALUES ('dup', 'x', 'pending', false, {time}, {time})"
    );
    db.execute_unprepared(&insert).await.unwrap();
    assert!(db.execute_unprepared(&insert).await.is_err());

    // Without a declared unique key, the helper adds the unique index.
    let names = {
        tasktrail::schema::create::<keyless::Model>(&db)
            .await
            .unwrap();
        index_names(&db, "keyless_runs").await
    };
    assert!(
        names.iter().any(|n| n == "ux_keyless_runs_task_key"),
        "{names:?}"
    );
    tasktrail::schema::drop::<task_run::Model>(&db)
        .await
        .unwrap();
    assert!(index_names(&db, "task_runs").await.is_empty());
}

struct CreateTaskRuns;

impl MigrationName for CreateTaskRuns {
    fn name(&self) -> &str {
        "m20261123_000001_create_task_runs"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateTaskRuns {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        tasktrail::schema::create::<task_run::Model>(manager.get_connection()).await
    }
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        tasktrail::schema::drop::<task_run::Model>(manager.get_connection()).await
    }
}

struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(CreateTaskRuns)]
    }
}

async fn works_from_a_migration(backend: Backend) {
    let (db, _g) = connect(backend).await;
    Migrator::up(&db, None).await.unwrap();
    assert!(
        SchemaManager::new(&db)
            .has_table("task_runs")
            .await
            .unwrap()
    );
    assert!(index_names(&db, "task_runs").await.len() >= 2);
    let tracker = task_run::Tracker::new(db.clone());
    tracker
        .lifecycle(tasktrail::Event::create("m").name("x"))
        .await
        .unwrap();
    Migrator::down(&db, None).await.unwrap();
    assert!(
        !SchemaManager::new(&db)
            .has_table("task_runs")
            .await
            .unwrap()
    );
}

backends!(create_is_idempotent_and_indexes, works_from_a_migration);
