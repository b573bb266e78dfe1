//! The chaos harness (issues 7 and 14): starts M real `kassa-api` and N
//! `kassa-worker` processes, each on a host of its own, on one temporary
//! database (an SQLite file, or a fresh database on a PostgreSQL server),
//! drives a mixed workload against them while SIGKILLing random workers
//! (and, if asked, APIs) and restarting them, and on PostgreSQL cutting
//! every database session now and then; waits until the system is
//! quiescent, then checks every invariant Kassa promises and reports each.
//!
//! `cargo run --release -p tests --bin chaos -- --orders 2000 --workers 3 --kill-every 1s`
//! runs it from the command line (see `docs/chaos.md`);
//! `tests/tests/chaos_short.rs` runs a short version as a test, and
//! `tests/tests/chaos_postgres.rs` a short multi-host one on PostgreSQL.
//!
//! # Layout
//! - [`api`]: an HTTP client over the API processes that survives restarts and never panics.
//! - [`hosts`]: network namespaces (or 127.0.0.x addresses) as hosts, and relays into them.
//! - [`database`]: the run's database, and cutting its sessions.
//! - [`spec`]: what each process gets: its host, its database URL, its mail route.
//! - [`cluster`]: the processes, and the monkey that kills and replaces them.
//! - [`workload`]: customers, carts, cards, and the admins' follow-ups.
//! - [`checks`]: the invariants, and the rule for "no job ran twice at once".
//! - [`report`]: numbers, evidence, and the summary table.
//! - [`rng`]: a seeded random source.

pub mod api;
pub mod checks;
pub mod cluster;
pub mod database;
pub mod hosts;
pub mod report;
pub mod rng;
pub mod spec;
pub mod workload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kassa_common::db::Pool;
use tokio::sync::watch;

use crate::progress::{Progress, ProgressMode, ProgressSpec};

pub use checks::{Check, Verdict};
pub use report::ChaosReport;

pub use hosts::HostMode;

use api::Api;
use cluster::{ChaosTally, Cluster, MonkeyPlan, run_monkey};
use database::{CutLog, RunDatabase, run_cutter};
use hosts::Hosts;
use report::{Activity, Timings};
use rng::Rng;
use spec::{Mail, cluster_spec};
use workload::Tally;

/// How a chaos run is shaped.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ChaosConfig {
    /// Order attempts (each a direct order or a cart checkout).
    pub orders: usize,
    /// Worker processes kept running.
    pub workers: usize,
    /// API processes kept running; the clients spread requests over them.
    pub apis: usize,
    /// A network namespace per process, or a 127.0.0.x address per process.
    pub hosts: HostMode,
    /// The PostgreSQL server to run on (a fresh database is created on it);
    /// SQLite when `None`. Shown without its password.
    #[serde(serialize_with = "serialize_redacted")]
    pub database: Option<String>,
    /// Keep the PostgreSQL database after the run (it is dropped otherwise).
    pub keep_database: bool,
    /// Mean time between cuts of every database session (PostgreSQL only).
    #[serde(serialize_with = "serialize_optional_seconds")]
    pub cut_db_every: Option<Duration>,
    /// Customer accounts placing orders concurrently.
    pub users: usize,
    /// Mean time between kills.
    #[serde(serialize_with = "crate::results::serialize_seconds")]
    pub kill_every: Duration,
    /// Also SIGKILL and restart an API (every fifth kill).
    pub kill_api: bool,
    /// Keep killing after the workload until at least this many workers
    /// were killed, so a fast run is still a run under fire.
    pub min_worker_kills: u64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Longest the run may take once the binaries are built; past it, the run fails.
    #[serde(serialize_with = "crate::results::serialize_seconds")]
    pub timeout: Duration,
    /// Send e-mail to a real SMTP server (the tests' [`crate::smtp::SmtpSink`],
    /// in this process) instead of the file outbox.
    pub smtp: bool,
    /// Chance that a sandbox gateway call fails transiently.
    pub gateway_failure_rate: f64,
    /// Latency added to every gateway call.
    #[serde(serialize_with = "crate::results::serialize_seconds")]
    pub gateway_latency: Duration,
    /// Time between progress lines (when there is no progress bar).
    #[serde(serialize_with = "crate::results::serialize_seconds")]
    pub progress_every: Duration,
    /// A bar, lines, or nothing (progress always goes to standard error).
    #[serde(skip)]
    pub progress: ProgressMode,
    /// Keep the data directory when a check fails (its path is printed).
    pub keep_failed_data: bool,
}

impl Default for ChaosConfig {
    fn default() -> ChaosConfig {
        ChaosConfig {
            orders: 2000,
            workers: 3,
            apis: 1,
            hosts: HostMode::Loopback,
            database: None,
            keep_database: false,
            cut_db_every: None,
            users: 50,
            kill_every: Duration::from_secs(1),
            kill_api: false,
            min_worker_kills: 0,
            seed: 42,
            timeout: Duration::from_secs(600),
            smtp: false,
            gateway_failure_rate: 0.1,
            gateway_latency: Duration::from_millis(5),
            progress_every: Duration::from_secs(2),
            progress: ProgressMode::Auto,
            keep_failed_data: true,
        }
    }
}

fn serialize_redacted<S: serde::Serializer>(url: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    let shown = url.as_deref().map(|url| match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "an unparseable URL".to_owned(),
    });
    serializer.serialize_some(&shown)
}

fn serialize_optional_seconds<S: serde::Serializer>(
    duration: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_some(&duration.map(|d| d.as_secs_f64()))
}

/// Parses a duration written as a number and a unit: `500ms`, `1s`, `1.5s`,
/// `2m`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 500ms, 1s or 2m"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        other => return Err(format!("unknown unit {other:?} in {text:?}: use ms, s or m")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

async fn start_smtp_sink() -> anyhow::Result<crate::smtp::SmtpSink> {
    tokio::task::spawn_blocking(crate::smtp::SmtpSink::start)
        .await
        .map_err(|_| anyhow::anyhow!("the SMTP sink did not start (no free port on 127.0.0.1?)"))
}

/// Updates `progress` (orders placed, orders by status, jobs, kills, cuts) until `stop`.
async fn progress_loop(
    pool: Pool,
    tally: Arc<Tally>,
    chaos: Arc<ChaosTally>,
    cuts: Arc<CutLog>,
    progress: Arc<Progress>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(progress.update_every()) => {}
            _ = stop.changed() => return,
        }
        let statuses: Vec<(String, i64)> =
            sqlx::query_as("select status, count(*) from orders group by status order by status")
                .fetch_all(&pool)
                .await
                .unwrap_or_default();
        let jobs: Vec<(String, i64)> = sqlx::query_as(
            "select status, count(*) from jobs where status in ('pending', 'running', 'dead') group by status order by status",
        )
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
        let statuses: Vec<String> = statuses.iter().map(|(s, n)| format!("{s} {n}")).collect();
        let jobs: Vec<String> = jobs.iter().map(|(s, n)| format!("{s} {n}")).collect();
        let cut = match cuts.count() {
            0 => String::new(),
            n => format!(", {n} db cuts"),
        };
        let status = format!(
            "{} accepted | {} | jobs: {} | kills: {} workers, {} api{cut}",
            tally.accepted.load(Ordering::Relaxed),
            if statuses.is_empty() { "no orders yet".to_owned() } else { statuses.join(", ") },
            if jobs.is_empty() { "idle".to_owned() } else { jobs.join(", ") },
            chaos.worker_kills.load(Ordering::Relaxed),
            chaos.api_restarts.load(Ordering::Relaxed),
        );
        progress.update(tally.placed.load(Ordering::Relaxed), status);
    }
}

async fn pending_orders(pool: &Pool) -> i64 {
    sqlx::query_scalar("select count(*) from orders where status = 'pending'").fetch_one(pool).await.unwrap_or(1)
}

fn validate(config: &ChaosConfig) -> anyhow::Result<()> {
    if config.orders == 0 || config.workers == 0 || config.users == 0 || config.apis == 0 {
        bail!("--orders, --workers, --apis and --users must be at least 1");
    }
    if config.kill_every.is_zero() {
        bail!("--kill-every must be longer than 0");
    }
    match config.cut_db_every {
        Some(_) if config.database.is_none() => bail!("--cut-db-every needs a PostgreSQL --database"),
        Some(every) if every.is_zero() => bail!("--cut-db-every must be longer than 0"),
        _ => Ok(()),
    }
}

/// Runs the whole harness and returns its report; an error means the
/// harness itself could not run (a process did not start), not a violation.
pub async fn run(config: &ChaosConfig) -> anyhow::Result<ChaosReport> {
    validate(config)?;
    // Building the binaries (when `cargo test` finds them stale) is not part of the run's time.
    tokio::task::spawn_blocking(|| {
        crate::binaries::binary("kassa-api");
        crate::binaries::binary("kassa-worker");
    })
    .await
    .map_err(|_| anyhow::anyhow!("kassa-api and kassa-worker could not be built"))?;
    let started = Instant::now();
    let deadline = started + config.timeout;
    let data_dir = tempfile::Builder::new().prefix("kassa-chaos-").tempdir().context("Failed to create a data dir")?;
    let database = Arc::new(match &config.database {
        Some(server_url) => RunDatabase::postgres(server_url, data_dir.path()).await?,
        None => RunDatabase::sqlite(data_dir.path()),
    });
    let progress = Arc::new(Progress::start(
        config.progress,
        ProgressSpec {
            label: "chaos".to_owned(),
            unit: "orders placed",
            total: config.orders as u64,
            line_every: config.progress_every,
        },
    ));
    let sink = if config.smtp { Some(start_smtp_sink().await?) } else { None };
    let mail = match &sink {
        Some(sink) => Mail::Smtp(sink.addr.parse().context("the SMTP sink's address")?),
        None => Mail::Outbox(data_dir.path().join("outbox")),
    };
    let mail_dir: PathBuf = sink.as_ref().map_or_else(|| data_dir.path().join("outbox"), |s| s.maildir.clone());
    let names: Vec<String> = (1..=config.apis)
        .map(|i| format!("api{i}"))
        .chain((1..=config.workers).map(|i| format!("worker{i}")))
        .collect();
    let mut services: Vec<SocketAddr> = database.server_addr().into_iter().collect();
    if let Mail::Smtp(addr) = &mail {
        services.push(*addr);
    }
    let hosts = Hosts::create(config.hosts, &names, &services).await?;
    progress.note(format_args!(
        "chaos: {} orders, {} users, {} APIs and {} workers on {} hosts ({}), {}, a kill every ~{:?}{}{}, seed {}, data in {}",
        config.orders,
        config.users,
        config.apis,
        config.workers,
        hosts.hosts.len(),
        config.hosts.as_str(),
        database.describe(),
        config.kill_every,
        if config.kill_api { " (APIs too)" } else { "" },
        config.cut_db_every.map_or_else(String::new, |every| format!(", a database cut every ~{every:?}")),
        config.seed,
        data_dir.path().display()
    ));
    let spec = cluster_spec(config, &hosts, &database, data_dir.path(), &mail)?;
    let chaos = Arc::new(ChaosTally::default());
    let cluster = Cluster::start(spec, Arc::clone(&chaos)).await?;
    let placements = cluster.placements();
    for line in &placements {
        progress.note(format_args!("chaos: {line}"));
    }
    let api = Arc::new(Api::new(cluster.base_urls())?);
    let pool = database.open_pool(data_dir.path()).await?;
    let shop = Arc::new(workload::open_shop(&api, config.orders, config.users, deadline).await?);
    let admin = shop.admins[0].clone();
    progress.note(format_args!(
        "chaos: {} customers, {} products ({} units of the scarce one), workers {:?}; starting the workload",
        shop.customers.len(),
        shop.regular.len() + 1,
        shop.scarce_stock,
        cluster.worker_ids()
    ));
    let setup = started.elapsed();

    let tally = Arc::new(Tally::default());
    let cut_log = Arc::new(CutLog::default());
    let mut rng = Rng::new(config.seed);
    let (stop_monkey, monkey_stopped) = watch::channel(false);
    let plan = MonkeyPlan { kill_every: config.kill_every, kill_api: config.kill_api };
    let monkey =
        tokio::spawn(run_monkey(cluster, plan, rng.fork(), Arc::clone(&api), Arc::clone(&chaos), monkey_stopped));
    let workload_rng = rng.fork();
    let cutter = config.cut_db_every.map(|every| {
        tokio::spawn(run_cutter(
            Arc::clone(&database),
            every,
            rng.fork(),
            Arc::clone(&cut_log),
            stop_monkey.subscribe(),
        ))
    });
    let (stop_progress, progress_stopped) = watch::channel(false);
    let progress_task = tokio::spawn(progress_loop(
        pool.clone(),
        Arc::clone(&tally),
        Arc::clone(&chaos),
        Arc::clone(&cut_log),
        Arc::clone(&progress),
        progress_stopped,
    ));

    let workload_started = Instant::now();
    let workload = workload::drive(
        Arc::clone(&api),
        Arc::clone(&shop),
        Arc::clone(&tally),
        config.orders,
        config.seed,
        workload_rng,
        deadline,
    )
    .await;
    let workload_took = workload_started.elapsed();
    // Keep killing (and cutting) until no order is pending (the pipeline's
    // tail is under fire too) and the minimum number of kills is reached.
    let drain_started = Instant::now();
    while workload.is_ok()
        && !monkey.is_finished()
        && Instant::now() < deadline
        && (pending_orders(&pool).await > 0 || chaos.worker_kills.load(Ordering::Relaxed) < config.min_worker_kills)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain = drain_started.elapsed();
    let _ = stop_monkey.send(true);
    let cut_result = match cutter {
        Some(task) => task.await.context("the database cutter panicked").and_then(|result| result),
        None => Ok(()),
    };
    let mut cluster = match monkey.await.context("the chaos monkey panicked").and_then(|result| result) {
        Ok(cluster) => cluster,
        Err(error) => {
            let _ = stop_progress.send(true);
            return Err(error);
        }
    };
    if let Err(error) = cut_result {
        let _ = stop_progress.send(true);
        return Err(error.context("the database could not be cut"));
    }
    for (index, base_url) in cluster.base_urls().into_iter().enumerate() {
        api.set_base_url(index, base_url);
    }

    let settle_started = Instant::now();
    let settled = match &workload {
        Err(error) => Err(format!("the workload did not complete: {error:#}")),
        Ok(()) => loop {
            if crate::invariants::quiescent(&pool).await {
                break Ok(settle_started.elapsed());
            }
            if Instant::now() >= deadline {
                break Err(format!("not quiescent {:.0}s into the run (--timeout)", started.elapsed().as_secs_f64()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        },
    };
    let settle = settle_started.elapsed();
    let _ = stop_progress.send(true);
    let _ = progress_task.await;
    progress.finish();
    progress.note("chaos: workload done, checking invariants");

    let killed = chaos.killed();
    let cuts = cut_log.cuts();
    let server_errors = api.server_errors();
    let exited = cluster.exited_on_their_own();
    let inputs = checks::Inputs {
        pool: &pool,
        api: &api,
        admin: &admin,
        tally: &tally,
        killed_workers: &killed,
        mail_dir: &mail_dir,
        settled,
        backend: database.backend(),
        cuts: config.cut_db_every.map(|_| cuts.as_slice()),
        server_errors: &server_errors,
        exited: &exited,
    };
    let checks = checks::run_all(&inputs).await?;
    let mut offending: Vec<i64> = Vec::new();
    for id in checks.iter().filter(|c| c.verdict == Verdict::Fail).flat_map(|c| c.orders.iter().copied()) {
        if !offending.contains(&id) && offending.len() < 5 {
            offending.push(id);
        }
    }
    let mut evidence = Vec::new();
    for order_id in offending {
        evidence.push(report::order_evidence(&api, &admin, order_id).await);
    }
    let stats = report::gather(&pool).await?;
    pool.close().await;
    drop(cluster);
    drop(hosts);
    drop(sink);
    let activity = Activity {
        accepted: tally.accepted.load(Ordering::Relaxed),
        refused: tally.refused.load(Ordering::Relaxed),
        unknown: tally.unknown.load(Ordering::Relaxed),
        unavailable: tally.unavailable.load(Ordering::Relaxed),
        via_cart: tally.via_cart.load(Ordering::Relaxed),
        keyed: tally.keyed.load(Ordering::Relaxed),
        replays: tally.replays_checked.load(Ordering::Relaxed),
        cancels: tally.cancels.load(Ordering::Relaxed),
        ships: tally.ships.load(Ordering::Relaxed),
        deliveries: tally.deliveries.load(Ordering::Relaxed),
        worker_kills: chaos.worker_kills.load(Ordering::Relaxed),
        api_restarts: chaos.api_restarts.load(Ordering::Relaxed),
        start_retries: chaos.start_retries.load(Ordering::Relaxed),
        db_cuts: cuts.len() as u64,
        sessions_cut: cuts.iter().map(|cut| cut.sessions).sum(),
        answers_503: server_errors.iter().filter(|e| e.status == 503).count() as u64,
        answers_500: server_errors.iter().filter(|e| e.status == 500).count() as u64,
    };
    let timings = Timings { setup, workload: workload_took, drain, settle, total: started.elapsed() };
    let mut report = ChaosReport {
        config: config.clone(),
        database: database.describe(),
        database_name: database.name().map(str::to_owned),
        placements,
        checks,
        stats,
        activity,
        timings,
        evidence,
        kept_data_dir: None,
        kept_database: None,
    };
    let failed_and_kept = !report.passed() && config.keep_failed_data;
    if failed_and_kept {
        report.kept_data_dir = Some(data_dir.keep());
    }
    if failed_and_kept || config.keep_database {
        report.kept_database = database.keep();
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::parse_duration;

    #[test]
    fn durations_read_like_humans_write_them() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("1h").is_err());
    }
}
