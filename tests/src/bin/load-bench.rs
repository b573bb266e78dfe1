//! `load-bench`: the whole system under HTTP load on this machine — the real
//! `kassa-api` and `kassa-worker` binaries on a fresh temporary SQLite file.
//!
//! ```text
//! cargo build --release -p kassa-api -p kassa-worker -p tests --bin load-bench
//! KASSA_TEST_SKIP_BUILD=1 cargo run --release -p tests --bin load-bench -- [--quick] [--runs 3]
//!     [--sync normal,full] [--clients 64] [--users 64] [--accept-secs 3] [--e2e-orders 2000]
//!     [--workers 1,2,4] [--products 10000] [--search-requests 3000] [--read-secs 3]
//!     [--api-env KEY=VALUE]... [--worker-env KEY=VALUE]...
//! ```
//!
//! For each `synchronous` setting, each run starts a fresh API and measures,
//! in this order:
//! 1. **checkout accept**: `--clients` closed-loop clients with pre-issued
//!    tokens `POST /orders/` one unit of a product with a billion units, for
//!    `--accept-secs`, no worker running (the API and the transactional
//!    enqueue only): accepted/s, p50/p99 latency.
//! 2. **backlog drain**: one worker then processes the orders phase 1
//!    accepted: orders confirmed per second with the API idle.
//! 3. **end to end**: with 1, 2, 4 worker processes running, the clients
//!    place `--e2e-orders` orders; orders/s from the first order's creation
//!    to the last confirmation (timestamps from the database), the same to
//!    the last job finished (the two e-mails included), accepted→confirmed
//!    latency, CPU time per order of each process, and the job attempts by
//!    type (queue wait, run time, share of run time).
//! 4. **search**: `GET /products/` over `--products` products with a mix of
//!    realistic queries, from one client and from `--clients` clients.
//! 5. **order reads**: `GET /orders/{id}` of the phase-1 orders by their
//!    owners, `--clients` clients for `--read-secs`.
//! 6. **peak RSS** (`VmHWM`) of the API (at the end) and of the largest
//!    worker (at the end of each end-to-end phase).
//!
//! Every figure is the median over `--runs` runs, with the range. Payments go
//! to the sandbox gateway with no latency and no failures; e-mails are
//! written as `.eml` files to the outbox (no SMTP). Processes log at `warn`.
//! `--quick` is one small run, for a smoke test.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use kassa_tests::app::{AppOptions, TestApp};
use kassa_tests::load::{
    Budget, LoadReport, describe_machine, median, peak_rss_mib, percentile, reset_peak_rss, run_load,
};
use kassa_tests::process::ChildProcess;
use kassa_tests::worker::wait_until;
use serde_json::json;
use sqlx::SqlitePool;

/// Command-line settings.
#[derive(Clone, Debug)]
struct Options {
    runs: usize,
    sync: Vec<&'static str>,
    clients: usize,
    users: usize,
    accept_secs: f64,
    e2e_orders: u64,
    workers: Vec<usize>,
    products: usize,
    search_requests: u64,
    read_secs: f64,
    /// Extra `KEY=VALUE` environment of the API, for experiments.
    api_env: Vec<(String, String)>,
    /// Extra `KEY=VALUE` environment of every worker, for experiments.
    worker_env: Vec<(String, String)>,
}

fn parse_options() -> anyhow::Result<Options> {
    let mut options = Options {
        runs: 3,
        sync: vec!["normal", "full"],
        clients: 64,
        users: 64,
        accept_secs: 3.0,
        e2e_orders: 2_000,
        workers: vec![1, 2, 4],
        products: 10_000,
        search_requests: 3_000,
        read_secs: 3.0,
        api_env: Vec::new(),
        worker_env: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--quick" {
            options.runs = 1;
            options.users = 8;
            options.accept_secs = 2.0;
            options.e2e_orders = 500;
            options.search_requests = 500;
            options.read_secs = 1.0;
            continue;
        }
        let value = args.next().with_context(|| format!("{flag} needs a value"))?;
        let list = |value: &str| value.split(',').map(str::parse).collect::<Result<Vec<usize>, _>>();
        match flag.as_str() {
            "--runs" => options.runs = value.parse()?,
            "--clients" => options.clients = value.parse()?,
            "--users" => options.users = value.parse()?,
            "--accept-secs" => options.accept_secs = value.parse()?,
            "--e2e-orders" => options.e2e_orders = value.parse()?,
            "--workers" => options.workers = list(&value)?,
            "--products" => options.products = value.parse()?,
            "--search-requests" => options.search_requests = value.parse()?,
            "--read-secs" => options.read_secs = value.parse()?,
            "--api-env" | "--worker-env" => {
                let (key, setting) = value.split_once('=').with_context(|| format!("{flag} takes KEY=VALUE"))?;
                let env = if flag == "--api-env" { &mut options.api_env } else { &mut options.worker_env };
                env.push((key.to_owned(), setting.to_owned()));
            }
            "--sync" => {
                options.sync = value
                    .split(',')
                    .map(|mode| match mode {
                        "normal" => Ok("normal"),
                        "full" => Ok("full"),
                        other => bail!("unknown --sync mode {other:?}"),
                    })
                    .collect::<Result<_, _>>()?
            }
            other => bail!("unknown flag {other}"),
        }
    }
    if options.runs == 0 || options.clients == 0 || options.users == 0 {
        bail!("--runs, --clients and --users must be at least 1");
    }
    Ok(options)
}

/// One measurement's values over the runs.
struct Figure {
    section: &'static str,
    name: String,
    unit: &'static str,
    values: Vec<f64>,
}

/// Every measurement of one `synchronous` setting, in the order first seen.
#[derive(Default)]
struct Figures(Vec<Figure>);

impl Figures {
    fn record(&mut self, section: &'static str, name: impl Into<String>, unit: &'static str, value: f64) {
        let name = name.into();
        match self.0.iter_mut().find(|figure| figure.section == section && figure.name == name) {
            Some(figure) => figure.values.push(value),
            None => self.0.push(Figure { section, name, unit, values: vec![value] }),
        }
    }

    fn median_of(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|figure| figure.name == name).map(|figure| median(&figure.values))
    }

    fn print(&self) {
        let mut sections: Vec<&str> = Vec::new();
        for figure in &self.0 {
            if !sections.contains(&figure.section) {
                sections.push(figure.section);
            }
        }
        for section in sections {
            println!();
            println!("### {section}");
            println!();
            println!("| {:<58} | {:>9} | {:^21} | unit |", "measurement", "median", "range");
            println!("|{:-<60}|{:->11}|{:-^23}|------|", "", "", "");
            for figure in self.0.iter().filter(|figure| figure.section == section) {
                figure.print();
            }
        }
    }
}

impl Figure {
    fn print(&self) {
        let mut sorted = self.values.clone();
        sorted.sort_by(f64::total_cmp);
        let digits = if median(&sorted).abs() >= 100.0 { 0 } else { 1 };
        println!(
            "| {:<58} | {:>9.digits$} | {:>9.digits$} – {:<9.digits$} | {} |",
            self.name,
            median(&sorted),
            sorted[0],
            sorted[sorted.len() - 1],
            self.unit
        );
    }
}

/// What the load tasks share: the client, the address, the tokens.
struct Target {
    client: reqwest::Client,
    base_url: String,
    tokens: Vec<String>,
    hot_product_id: i64,
}

impl Target {
    /// Places an order for one unit of the hot product; returns the order id.
    async fn place_order(&self, user: usize) -> anyhow::Result<i64> {
        let body = json!({"items": [{"product_id": self.hot_product_id, "quantity": 1}]});
        let response = self
            .client
            .post(format!("{}/orders/", self.base_url))
            .bearer_auth(&self.tokens[user % self.tokens.len()])
            .json(&body)
            .send()
            .await
            .context("Failed to send POST /orders/")?;
        let status = response.status();
        let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let text = response.text().await.context("Failed to read the answer of POST /orders/")?;
        if status.as_u16() != 202 {
            bail!("POST /orders/ answered {status}: {text}");
        }
        location
            .as_deref()
            .and_then(|location| location.strip_prefix("/orders/"))
            .and_then(|id| id.parse().ok())
            .with_context(|| format!("POST /orders/ answered 202 without a usable Location ({location:?})"))
    }

    /// GETs `path` as `token` and reads the whole body; fails unless 200.
    async fn get(&self, path: &str, token: Option<&str>) -> anyhow::Result<()> {
        let mut request = self.client.get(format!("{}{path}", self.base_url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.with_context(|| format!("Failed to send GET {path}"))?;
        let status = response.status();
        let body = response.bytes().await.with_context(|| format!("Failed to read the answer of GET {path}"))?;
        if status.as_u16() != 200 {
            bail!("GET {path} answered {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(())
    }
}

/// CPU time (user + system) a process has used, in milliseconds.
/// `/proc/PID/stat` counts in USER_HZ, which Linux fixes at 100 per second.
fn cpu_ms(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("Failed to read /proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).context("Failed to parse /proc/PID/stat")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| -> anyhow::Result<f64> {
        fields.get(index).context("Failed to find the CPU times in /proc/PID/stat")?.parse::<f64>().map_err(Into::into)
    };
    Ok((ticks(11)? + ticks(12)?) * 10.0)
}

/// Runs a panicking `TestApp` helper in a task so its panic becomes an error.
async fn catch<T: Send + 'static>(what: &str, future: impl Future<Output = T> + Send + 'static) -> anyhow::Result<T> {
    tokio::spawn(future).await.map_err(|error| match error.try_into_panic() {
        Ok(payload) => anyhow!(
            "{what} failed: {}",
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default()
        ),
        Err(error) => anyhow!("{what} failed: {error}"),
    })
}

/// Starts a worker process on the app's database at this durability.
async fn start_worker(
    app: &Arc<TestApp>,
    worker_id: String,
    sync: &'static str,
    extra_env: &[(String, String)],
) -> anyhow::Result<ChildProcess> {
    let app = Arc::clone(app);
    let what = format!("starting worker {worker_id}");
    let mut env: Vec<(String, String)> = [
        ("KASSA_SQLITE_SYNCHRONOUS", sync),
        ("KASSA_SANDBOX_FAILURE_RATE", "0"),
        ("KASSA_SANDBOX_LATENCY_MS", "0"),
        ("RUST_LOG", "warn,kassa_worker::runtime=info"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect();
    env.extend(extra_env.iter().cloned());
    tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
        app.spawn_worker(&worker_id, &env)
    })
    .await
    .map_err(|error| anyhow!("{what} failed: {error}"))
}

/// Stops processes with SIGTERM and waits for them to exit (SIGKILL on drop otherwise).
fn stop(processes: &mut [ChildProcess]) {
    for process in processes.iter() {
        process.signal("TERM");
    }
    for process in processes.iter_mut() {
        if process.wait_exit(Duration::from_secs(30)).is_none() {
            eprintln!("a process did not stop within 30 s after SIGTERM; killing it");
            process.kill();
        }
    }
}

/// Deterministic pseudo-random numbers (a 64-bit LCG), so every run sees the
/// same catalogue.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, bound: usize) -> usize {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % bound as u64) as usize
    }
}

const ADJECTIVES: &[&str] = &[
    "vintage", "modern", "compact", "classic", "rustic", "sleek", "sturdy", "handmade", "foldable", "elegant",
    "minimal", "cosy", "bright", "portable", "premium", "soft", "heavy", "light", "round", "square",
];
const MATERIALS: &[&str] =
    &["oak", "walnut", "steel", "linen", "cotton", "leather", "glass", "ceramic", "bamboo", "wool", "brass", "marble"];
const NOUNS: &[&str] = &[
    "lamp", "table", "chair", "desk", "shelf", "mug", "bowl", "vase", "rug", "cushion", "blanket", "mirror", "clock",
    "stool", "bench", "basket", "kettle", "teapot", "jar", "tray", "planter", "candle", "frame", "hook", "cabinet",
    "sofa", "bed", "pillow", "towel", "curtain", "knife", "pan", "pot", "spoon", "board", "bottle", "bag", "backpack",
    "wallet", "watch",
];
const ROOMS: &[&str] = &["kitchen", "living room", "bedroom", "office", "garden", "bathroom", "hallway", "patio"];
const CATEGORIES: &[&str] =
    &["home", "kitchen", "garden", "office", "bath", "decor", "furniture", "textiles", "lighting", "accessories"];

/// Inserts `count` catalogue products in one transaction (the FTS triggers
/// index them) plus one product with a billion units for the orders;
/// returns the latter's id.
async fn seed_catalogue(pool: &SqlitePool, count: usize) -> anyhow::Result<i64> {
    let mut rng = Lcg(42);
    let now = kassa_common::db::now_ms();
    let mut tx = pool.begin().await.context("Failed to begin the catalogue transaction")?;
    for index in 0..count {
        let adjective = ADJECTIVES[rng.below(ADJECTIVES.len())];
        let material = MATERIALS[rng.below(MATERIALS.len())];
        let noun = NOUNS[rng.below(NOUNS.len())];
        let name = format!("{adjective} {material} {noun} {index}");
        let description = format!(
            "A {} {noun} in {material} for the {}. {} finish, {} design, made to last.",
            ADJECTIVES[rng.below(ADJECTIVES.len())],
            ROOMS[rng.below(ROOMS.len())],
            MATERIALS[rng.below(MATERIALS.len())],
            ADJECTIVES[rng.below(ADJECTIVES.len())],
        );
        let stock = if rng.below(10) == 0 { 0 } else { rng.below(500) as i64 + 1 };
        sqlx::query(
            "insert into products (name, description, price_cents, currency, stock, initial_stock, category, sku,
                                   created_at, updated_at)
             values (?1, ?2, ?3, 'USD', ?4, ?4, ?5, ?6, ?7, ?7)",
        )
        .bind(&name)
        .bind(&description)
        .bind(rng.below(50_000) as i64 + 100)
        .bind(stock)
        .bind(CATEGORIES[rng.below(CATEGORIES.len())])
        .bind(format!("SKU-{index:06}"))
        .bind(now - (count - index) as i64 * 1000)
        .execute(&mut *tx)
        .await
        .context("Failed to insert a product")?;
    }
    let hot_product_id = sqlx::query(
        "insert into products (name, description, price_cents, currency, stock, initial_stock, category, created_at,
                               updated_at)
         values ('Benchmark widget', 'Bought by every benchmark order', 1999, 'USD', 1000000000, 1000000000, 'bench', ?1, ?1)",
    )
    .bind(now)
    .execute(&mut *tx)
    .await
    .context("Failed to insert the benchmark product")?
    .last_insert_rowid();
    tx.commit().await.context("Failed to commit the catalogue")?;
    Ok(hot_product_id)
}

/// The search mix: one word, two words, a prefix, filters, sorts, browsing.
const SEARCHES: &[&str] = &[
    "/products/?q=lamp",
    "/products/?q=oak%20table",
    "/products/?q=cer",
    "/products/?q=chair&category=garden",
    "/products/?q=steel&min_price_cents=1000&max_price_cents=20000&sort=price_asc",
    "/products/?category=kitchen&sort=newest",
    "/products/?q=vintage%20linen&in_stock=true&sort=name",
    "/products/?sort=price_desc&limit=50",
    "/products/?q=handmade%20ceramic%20mug",
    "/products/?q=walnut&sort=newest&offset=40",
];

async fn scalar(pool: &SqlitePool, sql: &str) -> anyhow::Result<i64> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(pool).await.with_context(|| format!("Failed to run {sql}"))
}

/// Fails loudly when a load phase had failed requests.
fn check_failures<T>(phase: &str, report: &LoadReport<T>) -> anyhow::Result<()> {
    if report.failures > 0 {
        bail!("{phase}: {} requests failed, e.g. {:?}", report.failures, report.failure_samples);
    }
    Ok(())
}

/// One run of every phase at one durability.
async fn run_once(options: &Options, sync: &'static str, figures: &mut Figures) -> anyhow::Result<()> {
    let mut app_options = AppOptions::default()
        .env("KASSA_SQLITE_SYNCHRONOUS", sync)
        .env("KASSA_CHECKOUT_RATE_PER_MIN", "1000000")
        .env("KASSA_CHECKOUT_BURST", "1000000")
        .env("KASSA_AUTH_RATE_PER_MIN", "1000000")
        .env("KASSA_AUTH_BURST", "1000000")
        .env("RUST_LOG", "warn,kassa_api::startup=info");
    app_options.env.extend(options.api_env.iter().cloned());
    let app = Arc::new(catch("starting kassa-api", TestApp::spawn_with(app_options)).await?);
    let api_pid = app.process.pid();
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(
            sqlx::sqlite::SqliteConnectOptions::new()
                .filename(app.data_dir.join("kassa.db"))
                .busy_timeout(Duration::from_secs(30)),
        )
        .await
        .context("Failed to open the app's database")?;

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
    let hot_product_id = seed_catalogue(&pool, options.products).await?;
    eprintln!("  [{sync}] {} customers, {} products seeded in {:?}", tokens.len(), options.products, seeding.elapsed());
    let section = "peak RSS (VmHWM, reset at the start of each phase)";
    figures.record(section, "kassa-api, setup (Argon2 registrations and logins)", "MiB", peak_rss_mib(api_pid)?);
    reset_peak_rss(api_pid)?;
    let target = Arc::new(Target {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(options.clients)
            .timeout(Duration::from_secs(60))
            .build()
            .context("Failed to build the HTTP client")?,
        base_url: app.base_url.clone(),
        tokens,
        hot_product_id,
    });

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
    figures.record(section, "latency p50", "ms", accept.latency_ms(0.50));
    figures.record(section, "latency p99", "ms", accept.latency_ms(0.99));
    figures.record(
        "peak RSS (VmHWM, reset at the start of each phase)",
        "kassa-api, checkout accept",
        "MiB",
        peak_rss_mib(api_pid)?,
    );
    let accepted_orders = accept.outputs;
    eprintln!(
        "  [{sync}] accept: {} orders at {:.0}/s",
        accepted_orders.len(),
        accept.latencies_ms.len() as f64 / accept.elapsed.as_secs_f64()
    );

    // 2. Backlog drain by one worker, the API idle.
    let drain_started_ms = kassa_common::db::now_ms();
    let mut workers = vec![start_worker(&app, format!("{sync}-drain"), sync, &options.worker_env).await?];
    wait_until("the backlog is processed", Duration::from_secs(900), || async {
        Ok(scalar(&pool, "select count(*) from orders where status = 'pending'").await? == 0)
    })
    .await?;
    let last_confirmed_ms =
        scalar(&pool, "select max(at) from order_status_history where to_status = 'confirmed'").await?;
    let confirmed = scalar(&pool, "select count(*) from orders where status = 'confirmed'").await?;
    let section = "backlog drain (the phase-1 orders, then 1 worker; API idle)";
    figures.record(section, "backlog", "orders", accepted_orders.len() as f64);
    figures.record(
        section,
        "orders confirmed, 1 worker",
        "orders/s",
        confirmed as f64 * 1000.0 / (last_confirmed_ms - drain_started_ms).max(1) as f64,
    );
    wait_quiescent(&pool).await?;
    stop(&mut workers);

    // 3. End to end with 1, 2, 4 workers.
    for &worker_count in &options.workers {
        end_to_end(options, sync, &app, &pool, &target, worker_count, figures).await?;
    }

    // 4. Search.
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

    // 5. Order reads by their owners.
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

    pool.close().await;
    let mut app = Arc::try_unwrap(app).map_err(|_| anyhow!("the app is still shared at the end of the run"))?;
    stop(std::slice::from_mut(&mut app.process));
    Ok(())
}

/// Waits until no job is pending or running.
async fn wait_quiescent(pool: &SqlitePool) -> anyhow::Result<()> {
    wait_until("every job finished", Duration::from_secs(900), || async {
        Ok(scalar(pool, "select count(*) from jobs where status in ('pending', 'running')").await? == 0)
    })
    .await
}

/// Phase 3 for one worker count.
async fn end_to_end(
    options: &Options,
    sync: &'static str,
    app: &Arc<TestApp>,
    pool: &SqlitePool,
    target: &Arc<Target>,
    worker_count: usize,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let mut workers = Vec::new();
    for index in 0..worker_count {
        workers.push(start_worker(app, format!("{sync}-e2e{worker_count}-{index}"), sync, &options.worker_env).await?);
    }
    let first_order = scalar(pool, "select coalesce(max(id), 0) + 1 from orders").await?;
    let first_job = scalar(pool, "select coalesce(max(id), 0) + 1 from jobs").await?;
    let cpu_before: Vec<f64> = workers.iter().map(|w| cpu_ms(w.pid())).collect::<Result<_, _>>()?;
    let api_cpu_before = cpu_ms(app.process.pid())?;
    reset_peak_rss(app.process.pid())?;
    let bench_cpu_before = cpu_ms(std::process::id())?;
    let started = Instant::now();

    let load_target = Arc::clone(target);
    let placed = run_load(options.clients, Budget::Requests(options.e2e_orders), move |client, _| {
        let target = Arc::clone(&load_target);
        async move { target.place_order(client).await }
    })
    .await;
    check_failures("end-to-end orders", &placed)?;
    let pending_sql = format!("select count(*) from orders where id >= {first_order} and status = 'pending'");
    wait_until("every order left pending", Duration::from_secs(900), || async {
        Ok(scalar(pool, &pending_sql).await? == 0)
    })
    .await?;
    let confirmed_at = started.elapsed();
    wait_quiescent(pool).await?;
    let settled_at = started.elapsed();

    let orders = placed.outputs.len() as f64;
    let not_confirmed =
        scalar(pool, &format!("select count(*) from orders where id >= {first_order} and status <> 'confirmed'"))
            .await?;
    if not_confirmed > 0 {
        bail!("{not_confirmed} end-to-end orders were not confirmed");
    }
    let first_created = scalar(pool, &format!("select min(created_at) from orders where id >= {first_order}")).await?;
    let last_confirmed = scalar(
        pool,
        &format!(
            "select max(at) from order_status_history where order_id >= {first_order} and to_status = 'confirmed'"
        ),
    )
    .await?;
    let last_finished = scalar(pool, &format!("select max(finished_at) from jobs where id >= {first_job}")).await?;
    let workers_label = format!("{worker_count} worker{}", if worker_count == 1 { "" } else { "s" });
    let section = "end to end (orders placed by the clients while the workers run)";
    figures.record(
        section,
        format!("accepted → confirmed, {workers_label}"),
        "orders/s",
        orders * 1000.0 / (last_confirmed - first_created).max(1) as f64,
    );
    figures.record(
        section,
        format!("accepted → every job done (e-mails too), {workers_label}"),
        "orders/s",
        orders * 1000.0 / (last_finished - first_created).max(1) as f64,
    );
    figures.record(section, format!("accept rate meanwhile, {workers_label}"), "req/s", placed.rate_per_sec());
    let mut latencies: Vec<f64> = sqlx::query_scalar::<_, i64>(
        "select h.at - o.created_at from orders o
         join order_status_history h on h.order_id = o.id and h.to_status = 'confirmed'
         where o.id >= ?1",
    )
    .bind(first_order)
    .fetch_all(pool)
    .await
    .context("Failed to read the confirmation latencies")?
    .into_iter()
    .map(|ms| ms as f64)
    .collect();
    latencies.sort_by(f64::total_cmp);
    figures.record(section, format!("accepted → confirmed p50, {workers_label}"), "ms", percentile(&latencies, 0.5));
    figures.record(section, format!("accepted → confirmed p99, {workers_label}"), "ms", percentile(&latencies, 0.99));

    // Where the time goes: CPU per order of each process, over the phase.
    let section = "where the time goes (end to end)";
    let workers_cpu: f64 = workers
        .iter()
        .zip(&cpu_before)
        .map(|(w, before)| cpu_ms(w.pid()).map(|now| now - before))
        .sum::<Result<f64, _>>()?;
    let api_cpu = cpu_ms(app.process.pid())? - api_cpu_before;
    let bench_cpu = cpu_ms(std::process::id())? - bench_cpu_before;
    let wall_ms = settled_at.as_secs_f64() * 1000.0;
    figures.record(section, format!("kassa-api CPU per order, {workers_label}"), "ms", api_cpu / orders);
    figures.record(section, format!("kassa-worker CPU per order (all), {workers_label}"), "ms", workers_cpu / orders);
    figures.record(section, format!("load generator CPU per order, {workers_label}"), "ms", bench_cpu / orders);
    figures.record(
        section,
        format!(
            "CPU busy (all three, of {} cores), {workers_label}",
            std::thread::available_parallelism().map_or(0, usize::from)
        ),
        "%",
        (api_cpu + workers_cpu + bench_cpu) * 100.0
            / (wall_ms * std::thread::available_parallelism().map_or(1, usize::from) as f64),
    );
    eprintln!(
        "  [{sync}] e2e {workers_label}: {} orders, confirmed after {confirmed_at:?}, settled after {settled_at:?}",
        placed.outputs.len()
    );
    job_breakdown(pool, first_job, orders, &workers_label, figures).await?;

    let peak_worker = workers.iter().map(|w| peak_rss_mib(w.pid())).collect::<Result<Vec<_>, _>>()?;
    let section = "peak RSS (VmHWM, reset at the start of each phase)";
    figures.record(section, format!("kassa-api, end to end, {workers_label}"), "MiB", peak_rss_mib(app.process.pid())?);
    figures.record(
        section,
        format!("largest kassa-worker, {workers_label}"),
        "MiB",
        peak_worker.into_iter().fold(0.0, f64::max),
    );
    stop(&mut workers);
    Ok(())
}

/// Attempts per order, median queue wait and run time, and share of the run
/// time of each job type, for the jobs from `first_job` on.
async fn job_breakdown(
    pool: &SqlitePool,
    first_job: i64,
    orders: f64,
    workers_label: &str,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "select j.job_type, a.started_at - j.created_at, a.duration_ms
         from job_attempts a join jobs j on j.id = a.job_id
         where j.id >= ?1",
    )
    .bind(first_job)
    .fetch_all(pool)
    .await
    .context("Failed to read the job attempts")?;
    let total_run_ms: i64 = rows.iter().map(|(_, _, run)| run).sum();
    let mut types: Vec<&str> = rows.iter().map(|(job_type, _, _)| job_type.as_str()).collect();
    types.sort_unstable();
    types.dedup();
    let section = "job attempts by type (end to end)";
    for job_type in types {
        let of_type = rows.iter().filter(|(t, _, _)| t == job_type);
        let waits: Vec<f64> = of_type.clone().map(|(_, wait, _)| *wait as f64).collect();
        let runs: Vec<f64> = of_type.map(|(_, _, run)| *run as f64).collect();
        let run_ms: f64 = runs.iter().sum();
        figures.record(
            section,
            format!("{job_type}: attempts per order, {workers_label}"),
            "",
            runs.len() as f64 / orders,
        );
        figures.record(section, format!("{job_type}: median queue wait, {workers_label}"), "ms", median(&waits));
        figures.record(section, format!("{job_type}: median run time, {workers_label}"), "ms", median(&runs));
        figures.record(
            section,
            format!("{job_type}: share of run time, {workers_label}"),
            "%",
            run_ms * 100.0 / total_run_ms.max(1) as f64,
        );
    }
    Ok(())
}

/// The short table for the README: medians, both durabilities side by side.
fn print_summary(options: &Options, by_sync: &[(&'static str, Figures)]) {
    let max_workers = options.workers.iter().copied().max().unwrap_or(1);
    let label = |count: usize| format!("{count} worker{}", if count == 1 { "" } else { "s" });
    let products = options.products;
    let clients = options.clients;
    let mut rows: Vec<(String, String, &str)> = vec![
        ("checkout accept rate".into(), format!("accepted POST /orders/, {clients} clients"), ""),
        ("checkout latency p50 / p99 (ms)".into(), "latency p50|latency p99".into(), ""),
    ];
    for &count in &options.workers {
        let target = if count == max_workers { "≥ 2,000 (normal)" } else { "" };
        rows.push((
            format!("end to end, {} (orders/s)", label(count)),
            format!("accepted → confirmed, {}", label(count)),
            target,
        ));
    }
    rows.push((
        format!("search p50 / p99, {products} products (ms)"),
        format!("search p50, {products} products, 1 client(s)|search p99, {products} products, 1 client(s)"),
        "p99 ≤ 5",
    ));
    rows.push((
        format!("search p50 / p99 under {clients} clients (ms)"),
        format!(
            "search p50, {products} products, {clients} client(s)|search p99, {products} products, {clients} client(s)"
        ),
        "",
    ));
    rows.push(("GET /orders/{id} rate (req/s)".into(), format!("GET /orders/{{id}}, {clients} clients"), ""));
    let mut api_phases = vec!["kassa-api, checkout accept".to_owned(), "kassa-api, search".to_owned()];
    api_phases.push("kassa-api, order reads".to_owned());
    api_phases.extend(options.workers.iter().map(|&count| format!("kassa-api, end to end, {}", label(count))));
    rows.push(("peak RSS kassa-api under load (MiB)".into(), api_phases.join("^"), "≤ 50"));
    rows.push((
        "peak RSS kassa-api during setup (Argon2) (MiB)".into(),
        "kassa-api, setup (Argon2 registrations and logins)".into(),
        "",
    ));
    rows.push((
        "peak RSS kassa-worker (MiB)".into(),
        options
            .workers
            .iter()
            .map(|&count| format!("largest kassa-worker, {}", label(count)))
            .collect::<Vec<_>>()
            .join("^"),
        "≤ 50",
    ));
    println!();
    println!("## Summary (medians; paste into the README)");
    println!();
    let headers: Vec<String> = by_sync.iter().map(|(sync, _)| format!("`{sync}`")).collect();
    println!("| measurement | {} | target |", headers.join(" | "));
    println!("|---|{}---|", "---:|".repeat(by_sync.len()));
    for (title, names, target) in rows {
        let cells: Vec<String> = by_sync
            .iter()
            .map(|(_, figures)| {
                if names.contains('^') {
                    // The largest over several figures.
                    let peak = names.split('^').filter_map(|name| figures.median_of(name)).fold(0.0, f64::max);
                    return format!("{peak:.0}");
                }
                names
                    .split('|')
                    .map(|name| {
                        figures.median_of(name).map_or_else(
                            || "–".to_owned(),
                            |value| if value >= 100.0 { format!("{value:.0}") } else { format!("{value:.1}") },
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" / ")
            })
            .collect();
        println!("| {title} | {} | {target} |", cells.join(" | "));
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let options = parse_options()?;
    // Build (or find) the binaries first, outside every measurement.
    let api = kassa_tests::binaries::binary("kassa-api");
    let _ = kassa_tests::binaries::binary("kassa-worker");
    let profile = api.parent().and_then(|dir| dir.file_name()).map(PathBuf::from).unwrap_or_default();
    println!("# load-bench");
    println!();
    println!("machine: {}", describe_machine(&std::env::temp_dir()));
    println!(
        "binaries: {} build; {} run(s) per figure (median, range); {} clients, {} customers, {} products, \
         {} orders per end-to-end phase; sandbox gateway without latency or failures; e-mails to the file outbox",
        profile.display(),
        options.runs,
        options.clients,
        options.users,
        options.products,
        options.e2e_orders
    );
    if !options.api_env.is_empty() || !options.worker_env.is_empty() {
        println!("extra environment: API {:?}, workers {:?}", options.api_env, options.worker_env);
    }
    let mut by_sync = Vec::new();
    for &sync in &options.sync {
        let mut figures = Figures::default();
        for run in 1..=options.runs {
            eprintln!("synchronous={sync}: run {run} of {}", options.runs);
            run_once(&options, sync, &mut figures).await.with_context(|| format!("Failed run {run} at {sync}"))?;
        }
        println!();
        println!("## synchronous={sync}");
        figures.print();
        by_sync.push((sync, figures));
    }
    print_summary(&options, &by_sync);
    println!();
    println!("load average at the end: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
    Ok(())
}
