//! Turning settings into a running server, and the operator subcommands.

use std::io::BufRead;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use governor::{Quota, RateLimiter};
use kassa_common::db::{Db, DbArgs};
use kassa_common::domain::account::{Email, Password, Role, Username};
use kassa_common::store::users;
use std::num::NonZeroU32;

use crate::auth::passwords::Passwords;
use crate::auth::secrets;
use crate::auth::tokens::TokenKeys;
use crate::config::{CreateAdminArgs, ServeArgs};
use crate::console::session::ConsoleKeys;
use crate::idempotency::InFlight;
use crate::routes;
use crate::server::{self, HttpLimits};
use crate::state::{AppState, Settings};
use crate::telemetry;

/// A quota of `per_min` a minute after a burst of `burst`.
fn per_minute(per_min: u32, burst: u32) -> Quota {
    let period = Duration::from_nanos(60_000_000_000 / u64::from(per_min.max(1)));
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period).map_or_else(|| Quota::per_second(NonZeroU32::MIN), |q| q.allow_burst(burst))
}

/// Builds the shared state: opens and migrates the database, loads or
/// creates the secrets.
pub async fn build_state(config: &ServeArgs) -> anyhow::Result<AppState> {
    let db = config.db.open().await.context("Failed to open the database")?;
    tracing::info!(backend = db.backend().as_str(), database = %db.target(), "database open");
    let jwt_secret = secrets::jwt_secret(config.jwt_secret.as_deref(), &config.db.data_dir)?;
    let admin_secret = secrets::admin_secret(config.admin_secret.as_deref());
    let max_hashes = usize::try_from(config.max_concurrent_hashes).unwrap_or(1);
    Ok(AppState {
        db,
        tokens: Arc::new(TokenKeys::new(&jwt_secret, Duration::from_secs(config.jwt_ttl_secs))),
        passwords: Passwords::new(max_hashes).context("Failed to set up password hashing")?,
        sessions: Default::default(),
        settings: Arc::new(Settings {
            admin_secret,
            default_currency: config.currency.clone(),
            metrics_token: config.metrics_token.clone().filter(|t| !t.is_empty()),
            idempotency_ttl_ms: i64::try_from(config.idempotency_ttl_secs).unwrap_or(i64::MAX / 1000) * 1000,
            low_stock_threshold: config.low_stock_threshold,
        }),
        metrics: telemetry::metrics_handle(),
        in_flight: InFlight::default(),
        checkout_limiter: Arc::new(RateLimiter::keyed(per_minute(config.checkout_rate_per_min, config.checkout_burst))),
        console: Arc::new(ConsoleKeys::new(&jwt_secret, &config.console)),
    })
}

/// The shutdown signal, shared by the server and whatever runs beside it.
pub type Shutdown = futures::future::Shared<futures::future::BoxFuture<'static, ()>>;

/// Something to run in the API's process beside the server, on its
/// database, until the shutdown signal (the binary's `--with-worker`).
pub type Companion = Box<dyn FnOnce(Db, Shutdown) -> futures::future::BoxFuture<'static, anyhow::Result<()>> + Send>;

/// Serves the API until SIGINT or SIGTERM, then drains in-flight requests.
/// A `companion` starts once the database is open and the address bound,
/// and the server waits for it to finish after the signal (the embedded
/// worker finishing or handing back its jobs).
pub async fn serve(config: ServeArgs, companion: Option<Companion>) -> anyhow::Result<()> {
    let limits = http_limits(&config);
    let state = build_state(&config).await?;
    let db = state.db.clone();
    let housekeeping = tokio::spawn(prune_idempotency_keys(db.clone()));
    let app = routes::app(state, &config);
    let listener = server::bind(config.bind).with_context(|| format!("Failed to bind {}", config.bind))?;
    let addr = listener.local_addr().context("Failed to read the bound address")?;
    let shutdown: Shutdown = futures::FutureExt::shared(futures::FutureExt::boxed(kassa_common::shutdown::signal()));
    let companion = companion.map(|companion| tokio::spawn(companion(db.clone(), shutdown.clone())));
    tracing::info!("listening on {addr}");
    server::serve(listener, app, limits, shutdown).await;
    if let Some(companion) = companion {
        companion.await.context("What ran beside the API panicked")??;
    }
    housekeeping.abort();
    db.close().await;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Deletes expired `Idempotency-Key` records and revocations of expired
/// tokens every minute, a few hundred at a time.
async fn prune_idempotency_keys(db: kassa_common::db::Db) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        every.tick().await;
        let pruned = db
            .write(|tx| {
                Box::pin(async move {
                    kassa_common::store::idempotency::prune_expired(tx, 500).await?;
                    users::prune_revoked_tokens(tx, 500).await
                })
            })
            .await;
        if let Err(error) = pruned {
            tracing::warn!(%error, "failed to prune expired idempotency keys and token revocations");
        }
    }
}

/// `kassa-api migrate`: applies pending migrations, reporting each, then
/// prints a summary table (or JSON) and exits.
pub async fn migrate(args: &DbArgs, json: bool) -> anyhow::Result<()> {
    let db = args.connect().await.context("Failed to open the database")?;
    let summary = crate::migrate::run(&db).await.context("Failed to migrate the database")?;
    db.close().await;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary).context("Failed to render the summary")?);
    } else {
        print!("{}", summary.table());
    }
    Ok(())
}

/// Raises the open-file limit and fits the connection limits under it;
/// logs the values in force.
fn http_limits(config: &ServeArgs) -> HttpLimits {
    let open_files_limit = server::raise_open_files_limit();
    let limits = HttpLimits::new(&config.http, open_files_limit);
    if (limits.max_connections as u64) < config.http.http_max_connections {
        tracing::warn!(
            open_files_limit,
            "KASSA_HTTP_MAX_CONNECTIONS lowered from {} to {} to stay within the open-file limit",
            config.http.http_max_connections,
            limits.max_connections
        );
    }
    tracing::info!(
        max_connections = limits.max_connections,
        open_files_limit,
        header_timeout_secs = limits.header_timeout.as_secs(),
        body_timeout_secs = limits.body_timeout.as_secs(),
        idle_timeout_secs = limits.idle_timeout.as_secs(),
        "HTTP connection limits"
    );
    limits
}

/// `kassa-api create-admin`: creates an admin account; the password comes
/// from `--password`/`KASSA_ADMIN_PASSWORD` or the first line of standard input.
pub async fn create_admin(args: CreateAdminArgs) -> anyhow::Result<()> {
    let password = match args.password {
        Some(password) => password,
        None => {
            eprintln!("Password for {} (one line on standard input):", args.username);
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).context("Failed to read the password")?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    let username = Username::parse(&args.username).map_err(|e| anyhow::anyhow!("--username {e}"))?;
    let email = Email::parse(&args.email).map_err(|e| anyhow::anyhow!("--email {e}"))?;
    let password = Password::parse(&password).map_err(|e| anyhow::anyhow!("password {e}"))?;
    let db = args.db.open().await.context("Failed to open the database")?;
    let hash = Passwords::new(1)?.hash(password.expose().to_owned()).await?;
    let user = db
        .write(move |tx| {
            let (username, email, hash) = (username.clone(), email.clone(), hash.clone());
            Box::pin(async move { users::insert_user(tx, &username, &email, &hash, Role::Admin).await })
        })
        .await
        .context("Failed to create the admin")?;
    db.close().await;
    println!("created admin {} (id {})", user.username, user.id);
    Ok(())
}
