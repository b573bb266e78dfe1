//! One run of every phase on one setup, recording each measurement.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;

use super::catalogue::{SEARCHES, seed_catalogue};
use super::end_to_end::end_to_end;
use super::open_loop::open_loop;
use super::processes::{
    Target, catch, check_failures, record_lost_leases, scalar, start_worker, stop, stop_workers, wait_quiescent,
};
use super::with_worker::with_worker;
use super::{Options, RATIOS, Setup, baseline};
use crate::app::{AppOptions, TestApp};
use crate::backend::TestDatabase;
use crate::load::{Budget, peak_rss_mib, percentile, reset_peak_rss, run_load};
use crate::progress::Progress;
use crate::results::Figures;
use crate::worker::wait_until;
use anyhow::Context as _;

/// The API's settings on `setup` (the database is added by the caller).
fn api_options(options: &Options, setup: &Setup) -> AppOptions {
    let mut app_options = AppOptions::default()
        .env("KASSA_SQLITE_SYNCHRONOUS", setup.sync)
        .env("KASSA_CHECKOUT_RATE_PER_MIN", "1000000")
        .env("KASSA_CHECKOUT_BURST", "1000000")
        .env("KASSA_AUTH_RATE_PER_MIN", "1000000")
        .env("KASSA_AUTH_BURST", "1000000")
        .env("RUST_LOG", "warn,kassa_http::startup=info");
    app_options.env.extend(options.api_env.iter().cloned());
    app_options
}

/// One run of every phase on one setup, its data (database, mail outbox)
/// in `data_dir`, which the caller removes only when the whole benchmark
/// is done: ext4 skips the inodes of files deleted in the last minutes when
/// it creates new ones, so a run's e-mails written just after the previous
/// run's tens of thousands were deleted cost several times more kernel time
/// (a third of the worker's CPU in a profile).
pub(super) async fn run_once(
    options: &Options,
    setup: &Setup,
    data_dir: &std::path::Path,
    figures: &mut Figures,
    progress: &Progress,
) -> anyhow::Result<()> {
    let name = setup.name;

    // 0. The baseline, before any Kassa process runs.
    let baseline_tx_per_sec = baseline::transactions_per_sec(setup, options.baseline_secs).await?;
    figures.record(
        "baseline (bare sqlx, fresh database, one connection)",
        "transactions/s, one order row + one job row each",
        "tx/s",
        baseline_tx_per_sec,
    );
    progress.note(format_args!("  [{name}] baseline: {baseline_tx_per_sec:.0} transactions/s"));
    progress.advance(format_args!("{name}: baseline"));

    let mut app_options = api_options(options, setup);
    std::fs::create_dir_all(data_dir).context("Failed to create the run's data directory")?;
    app_options.data_dir = Some(data_dir.to_path_buf());
    if let Some(server_url) = &setup.postgres_url {
        app_options.database = Some(Arc::new(TestDatabase::on_postgres_server(server_url).await));
    }
    let app = Arc::new(catch("starting kassa-api", TestApp::spawn_with(app_options)).await?);
    let api_pid = app.process.pid();
    let db = app.db().await;
    let pool = db.pool().clone();

    // Setup: customers with tokens (Argon2 makes this the slow part), the catalogue.
    let mut logins = Vec::new();
    for user in 0..options.users {
        let app = Arc::clone(&app);
        logins.push(tokio::spawn(async move { app.customer(&format!("shopper{user}")).await }));
    }
    let mut tokens = Vec::new();
    for login in logins {
        let (_, token) = login.await.map_err(|error| anyhow!("registering a customer failed: {error}"))?;
        tokens.push(token);
    }
    let seeding = Instant::now();
    let hot_product_id = seed_catalogue(&db, options.products).await?;
    progress.note(format_args!(
        "  [{name}] {} customers, {} products seeded in {:?}",
        tokens.len(),
        options.products,
        seeding.elapsed()
    ));
    progress.advance(format_args!("{name}: setup"));
    let section = "peak RSS (VmHWM, reset at the start of each phase)";
    figures.record(section, "kassa-api, setup (Argon2 registrations and logins)", "MiB", peak_rss_mib(api_pid)?);
    reset_peak_rss(api_pid)?;
    let target = Arc::new(Target::new(options.clients, app.base_url.clone(), tokens, hot_product_id)?);

    // 1. Checkout accept rate, no worker.
    let load_target = Arc::clone(&target);
    let accept =
        run_load(options.clients, Budget::Time(Duration::from_secs_f64(options.accept_secs)), move |client, _| {
            let target = Arc::clone(&load_target);
            async move { Ok((target.place_order(client).await?, client)) }
        })
        .await;
    check_failures("checkout accept", &accept)?;
    let section = "checkout accept (no worker running)";
    figures.record(
        section,
        format!("accepted POST /orders/, {} clients", options.clients),
        "req/s",
        accept.rate_per_sec(),
    );
    figures.record(RATIOS, "checkout accept / baseline", "×", accept.rate_per_sec() / baseline_tx_per_sec);
    figures.record(section, "latency p50", "ms", accept.latency_ms(0.50));
    figures.record(section, "latency p99", "ms", accept.latency_ms(0.99));
    figures.record(
        "peak RSS (VmHWM, reset at the start of each phase)",
        "kassa-api, checkout accept",
        "MiB",
        peak_rss_mib(api_pid)?,
    );
    let accepted_orders = accept.outputs;
    progress.note(format_args!(
        "  [{name}] accept: {} orders at {:.0}/s",
        accepted_orders.len(),
        accept.latencies_ms.len() as f64 / accept.elapsed.as_secs_f64()
    ));
    progress.advance(format_args!("{name}: checkout accept"));

    // 2. Backlog drain by one worker, the API idle.
    let drain_started_ms = kassa_common::db::now_ms();
    let workers = vec![start_worker(&app, format!("{name}-drain"), setup.sync, &options.worker_env).await?];
    wait_until("the backlog is processed", Duration::from_secs(900), || async {
        Ok(scalar(&pool, "select count(*) from orders where status = 'pending'").await? == 0)
    })
    .await?;
    let last_confirmed_ms =
        scalar(&pool, "select max(at) from order_status_history where to_status = 'confirmed'").await?;
    let confirmed = scalar(&pool, "select count(*) from orders where status = 'confirmed'").await?;
    let section = "backlog drain (the phase-1 orders, then 1 worker; API idle)";
    figures.record(section, "backlog", "orders", accepted_orders.len() as f64);
    let drained_per_sec = confirmed as f64 * 1000.0 / (last_confirmed_ms - drain_started_ms).max(1) as f64;
    figures.record(section, "orders confirmed, 1 worker", "orders/s", drained_per_sec);
    figures.record(RATIOS, "backlog drain / baseline", "×", drained_per_sec / baseline_tx_per_sec);
    wait_quiescent(&pool).await?;
    record_lost_leases(figures, "backlog drain, 1 worker", &workers).await;
    stop_workers(workers);
    progress.advance(format_args!("{name}: backlog drain"));

    // 3. End to end with 1, 2, 4 workers.
    for &worker_count in &options.workers {
        let outcome =
            end_to_end(options, setup, &app, &pool, &target, worker_count, baseline_tx_per_sec, figures).await?;
        progress.note(&outcome);
        progress.advance(format_args!("{name}: end to end, {worker_count} worker(s)"));
    }

    // 4. Open loop: a fixed offered rate, one worker.
    let outcome = open_loop(options, setup, &app, &pool, &target, figures).await?;
    progress.note(&outcome);
    progress.advance(format_args!("{name}: open loop"));

    // 5. Search.
    reset_peak_rss(api_pid)?;
    let section = "search (GET /products/)";
    for clients in [1, options.clients] {
        let load_target = Arc::clone(&target);
        let requests = if clients == 1 { options.search_requests / 3 } else { options.search_requests };
        let search = run_load(clients, Budget::Requests(requests), move |_, sequence| {
            let target = Arc::clone(&load_target);
            async move {
                let query = sequence as usize % SEARCHES.len();
                let sent = Instant::now();
                target.get(SEARCHES[query], None).await?;
                Ok((query, sent.elapsed().as_secs_f64() * 1000.0))
            }
        })
        .await;
        check_failures("search", &search)?;
        if clients == 1 {
            // Which queries cost what, from one client (no queueing).
            for (index, query) in SEARCHES.iter().enumerate() {
                let mut latencies: Vec<f64> =
                    search.outputs.iter().filter(|(of, _)| *of == index).map(|(_, ms)| *ms).collect();
                latencies.sort_by(f64::total_cmp);
                let name = format!("p99 of {}", query.trim_start_matches("/products/"));
                figures.record("search by query (1 client)", name, "ms", percentile(&latencies, 0.99));
            }
        }
        let on = format!("{} products, {clients} client(s)", options.products);
        figures.record(section, format!("search rate, {on}"), "req/s", search.rate_per_sec());
        figures.record(section, format!("search p50, {on}"), "ms", search.latency_ms(0.50));
        figures.record(section, format!("search p99, {on}"), "ms", search.latency_ms(0.99));
    }

    figures.record(
        "peak RSS (VmHWM, reset at the start of each phase)",
        "kassa-api, search",
        "MiB",
        peak_rss_mib(api_pid)?,
    );

    progress.advance(format_args!("{name}: search"));

    // 6. Order reads by their owners.
    reset_peak_rss(api_pid)?;
    let load_target = Arc::clone(&target);
    let orders = Arc::new(accepted_orders);
    let reads =
        run_load(options.clients, Budget::Time(Duration::from_secs_f64(options.read_secs)), move |_, sequence| {
            let target = Arc::clone(&load_target);
            let orders = Arc::clone(&orders);
            async move {
                let (order_id, client) = orders[sequence as usize % orders.len()];
                let token = &target.tokens[client % target.tokens.len()];
                target.get(&format!("/orders/{order_id}"), Some(token)).await
            }
        })
        .await;
    check_failures("order reads", &reads)?;
    let section = "order reads (GET /orders/{id}, confirmed orders, by their owners)";
    figures.record(section, format!("GET /orders/{{id}}, {} clients", options.clients), "req/s", reads.rate_per_sec());
    figures.record(section, "latency p50", "ms", reads.latency_ms(0.50));
    figures.record(section, "latency p99", "ms", reads.latency_ms(0.99));

    figures.record(
        "peak RSS (VmHWM, reset at the start of each phase)",
        "kassa-api, order reads",
        "MiB",
        peak_rss_mib(api_pid)?,
    );

    progress.advance(format_args!("{name}: order reads"));

    // 7. The API restarted with the worker embedded, on the same data.
    let mut app = Arc::try_unwrap(app).map_err(|_| anyhow!("the app is still shared at the end of the run"))?;
    stop(std::slice::from_mut(&mut app.process));
    let tokens = target.tokens.clone();
    let outcome = with_worker(
        options,
        setup,
        api_options(options, setup),
        &app,
        &pool,
        tokens,
        hot_product_id,
        baseline_tx_per_sec,
        figures,
    )
    .await?;
    progress.note(&outcome);
    progress.advance(format_args!("{name}: --with-worker"));
    db.close().await;
    Ok(())
}
