//! Migrations: one directory per backend under `migrations/` (the same
//! version numbers on both, so a schema change lands on both at once),
//! embedded in every binary and applied one at a time so a long migration
//! can be followed.

use std::time::{Duration, Instant};

use sqlx::migrate::Migrator;

use super::{Backend, Db, DbError};

/// The SQLite schema's migrations.
pub static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite");
/// The PostgreSQL schema's migrations.
pub static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("../migrations/postgres");

/// What a migration run reports while it goes.
pub enum MigrationProgress<'a> {
    /// Nothing (servers migrating at start log one line themselves).
    Silent,
    /// Each step, as it starts and ends.
    Report(&'a mut (dyn FnMut(MigrationStep<'_>) + Send)),
}

/// One step of a migration run.
#[derive(Clone, Copy, Debug)]
pub enum MigrationStep<'a> {
    /// Migration `index` of `pending` (1-based) is about to be applied.
    Started {
        /// Its position among the pending migrations.
        index: usize,
        /// How many are pending.
        pending: usize,
        /// Its version.
        version: i64,
        /// Its description.
        description: &'a str,
    },
    /// It was applied.
    Finished {
        /// Its version.
        version: i64,
        /// How long it took.
        elapsed: Duration,
    },
    /// A data step filling a new column from old rows made progress.
    Backfill {
        /// What is being filled.
        what: &'a str,
        /// Rows done.
        done: u64,
        /// Rows in all.
        total: u64,
    },
}

fn migrator(backend: Backend) -> &'static Migrator {
    match backend {
        Backend::Sqlite => &SQLITE_MIGRATOR,
        Backend::Postgres => &POSTGRES_MIGRATOR,
    }
}

/// Applies the pending migrations of `db`'s backend, in order, reporting
/// each step to `progress`, then the data steps that fill new columns from
/// old rows (e-mail keys), which SQL alone cannot compute.
pub async fn apply_migrations(db: &Db, progress: &mut MigrationProgress<'_>) -> Result<(), DbError> {
    apply_schema(db, progress).await?;
    let mut report = |done: u64, total: u64| {
        if let MigrationProgress::Report(report) = progress {
            report(MigrationStep::Backfill { what: "users.email_key", done, total });
        }
    };
    crate::store::users::backfill_email_keys(db, 1000, &mut report)
        .await
        .map_err(|source| DbError::Connect { target: db.target().to_owned(), source })
}

async fn apply_schema(db: &Db, progress: &mut MigrationProgress<'_>) -> Result<(), DbError> {
    let migrator = migrator(db.backend());
    let applied = applied_versions(db).await?;
    let pending: Vec<_> =
        migrator.iter().filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version)).collect();
    let connect = |source| DbError::Connect { target: db.target().to_owned(), source };
    let mut conn = db.sqlx_connection().await.map_err(connect)?;
    if pending.is_empty() {
        // Still validates the checksums of what was applied.
        return migrator.run(&mut conn).await.map_err(DbError::Migrate);
    }
    for (index, migration) in pending.iter().enumerate() {
        if let MigrationProgress::Report(report) = progress {
            report(MigrationStep::Started {
                index: index + 1,
                pending: pending.len(),
                version: migration.version,
                description: &migration.description,
            });
        }
        let started = Instant::now();
        migrator.run_to(migration.version, &mut conn).await.map_err(DbError::Migrate)?;
        if let MigrationProgress::Report(report) = progress {
            report(MigrationStep::Finished { version: migration.version, elapsed: started.elapsed() });
        }
    }
    Ok(())
}

/// Versions already applied (none on a fresh database).
async fn applied_versions(db: &Db) -> Result<Vec<i64>, DbError> {
    let exists_sql = match db.backend() {
        Backend::Sqlite => "select count(*) from sqlite_master where type = 'table' and name = '_sqlx_migrations'",
        Backend::Postgres => "select count(*) from pg_catalog.pg_tables where tablename = '_sqlx_migrations'",
    };
    let connect = |source| DbError::Connect { target: db.target().to_owned(), source };
    let exists: i64 = sqlx::query_scalar(exists_sql).fetch_one(db.pool()).await.map_err(connect)?;
    if exists == 0 {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("select version from _sqlx_migrations where success").fetch_all(db.pool()).await.map_err(connect)
}
