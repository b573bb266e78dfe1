//! `kassa-api migrate`: applies pending migrations one at a time, printing a
//! line as each starts and ends and, while a long one runs, its elapsed
//! time every few seconds; then a summary table (or, with `--json`, one JSON
//! document) of what was applied.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kassa_common::db::{Db, DbError, MigrationProgress, MigrationStep, apply_migrations};
use serde::Serialize;

/// How often a long migration reports that it is still running.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// One applied migration, for the summary.
#[derive(Clone, Debug, Serialize)]
pub struct Applied {
    /// Its version.
    pub version: i64,
    /// Its description.
    pub description: String,
    /// How long it took, in seconds.
    pub seconds: f64,
}

/// What a migration run did.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// The database (never a password).
    pub database: String,
    /// The migrations applied now, in order.
    pub applied: Vec<Applied>,
    /// The whole run, in seconds.
    pub seconds: f64,
}

impl Summary {
    /// The summary as a table for people.
    pub fn table(&self) -> String {
        let mut out = format!("database {} ({})\n", self.database, self.backend);
        if self.applied.is_empty() {
            out.push_str("nothing to apply: the schema is up to date\n");
            return out;
        }
        out.push_str(&format!("{:>8}  {:<40}  {:>10}\n", "version", "migration", "time"));
        for step in &self.applied {
            out.push_str(&format!("{:>8}  {:<40}  {:>8.1} s\n", step.version, step.description, step.seconds));
        }
        out.push_str(&format!("{} applied in {:.1} s\n", self.applied.len(), self.seconds));
        out
    }
}

/// The migration running now, for the progress ticker.
#[derive(Clone)]
struct Running {
    label: String,
    since: Instant,
}

/// Applies pending migrations to `db`, reporting progress on standard
/// error; returns the summary.
pub async fn run(db: &Db) -> Result<Summary, DbError> {
    let started = Instant::now();
    let running: Arc<Mutex<Option<Running>>> = Arc::new(Mutex::new(None));
    let ticker = tokio::spawn({
        let running = running.clone();
        async move {
            let mut every = tokio::time::interval(PROGRESS_EVERY);
            every.tick().await;
            loop {
                every.tick().await;
                let now = running.lock().unwrap_or_else(|e| e.into_inner()).clone();
                if let Some(now) = now {
                    eprintln!("{}: still running, {:.0} s so far", now.label, now.since.elapsed().as_secs_f64());
                }
            }
        }
    });
    let applied: Arc<Mutex<Vec<Applied>>> = Arc::new(Mutex::new(Vec::new()));
    let mut report = {
        let (running, applied) = (running.clone(), applied.clone());
        move |step: MigrationStep<'_>| match step {
            MigrationStep::Started { index, pending, version, description } => {
                let label = format!("migration {index}/{pending} ({version} {description})");
                eprintln!("{label}: applying");
                *running.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(Running { label: format!("{version} {description}"), since: Instant::now() });
            }
            MigrationStep::Backfill { what, done, total } => {
                eprintln!("filling {what}: {done}/{total} rows");
            }
            MigrationStep::Finished { version, elapsed } => {
                let done = running.lock().unwrap_or_else(|e| e.into_inner()).take();
                let description = done.map(|d| d.label).unwrap_or_default();
                eprintln!("{description}: applied in {:.1} s", elapsed.as_secs_f64());
                let description = description.split_once(' ').map_or(description.clone(), |(_, d)| d.to_owned());
                applied.lock().unwrap_or_else(|e| e.into_inner()).push(Applied {
                    version,
                    description,
                    seconds: elapsed.as_secs_f64(),
                });
            }
        }
    };
    let result = apply_migrations(db, &mut MigrationProgress::Report(&mut report)).await;
    ticker.abort();
    result?;
    let applied = applied.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(Summary {
        backend: db.backend().as_str(),
        database: db.target().to_owned(),
        applied,
        seconds: started.elapsed().as_secs_f64(),
    })
}
