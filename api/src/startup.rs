//! Turning settings into a running server, and the operator subcommands.

use std::io::BufRead;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use governor::{Quota, RateLimiter};
use kassa_common::db::DbArgs;
use kassa_common::domain::account::{Email, Password, Role, Username};
use kassa_common::store::users;
use std::num::NonZeroU32;
use tokio::net::TcpListener;

use crate::auth::passwords::Passwords;
use crate::auth::secrets;
use crate::auth::tokens::TokenKeys;
use crate::config::{CreateAdminArgs, ServeArgs};
use crate::idempotency::InFlight;
use crate::routes;
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
    let pool = config.db.connect_and_migrate().await.context("Failed to open the database")?;
    let jwt_secret = secrets::jwt_secret(config.jwt_secret.as_deref(), &config.db.data_dir)?;
    let admin_secret = secrets::admin_secret(config.admin_secret.as_deref());
    let max_hashes = usize::try_from(config.max_concurrent_hashes).unwrap_or(1);
    Ok(AppState {
        pool,
        tokens: Arc::new(TokenKeys::new(&jwt_secret, Duration::from_secs(config.jwt_ttl_secs))),
        passwords: Passwords::new(max_hashes).context("Failed to set up password hashing")?,
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
    })
}

/// Serves the API until SIGINT or SIGTERM, then drains in-flight requests
/// (and, with `--with-worker`, lets the embedded worker finish or hand back
/// its jobs).
pub async fn serve(config: ServeArgs) -> anyhow::Result<()> {
    let worker_config = if config.with_worker {
        let registry = kassa_worker::registry_with_all_jobs();
        let options = config.worker.clone().with_data_dir(&config.db.data_dir);
        Some(options.into_config(&registry).context("Invalid embedded worker settings")?)
    } else {
        None
    };
    let state = build_state(&config).await?;
    let pool = state.pool.clone();
    let app = routes::app(state, &config);
    let listener = TcpListener::bind(config.bind).await.with_context(|| format!("Failed to bind {}", config.bind))?;
    let addr = listener.local_addr().context("Failed to read the bound address")?;
    let shutdown = futures::FutureExt::shared(kassa_common::shutdown::signal());
    let worker = worker_config
        .map(|worker_config| tokio::spawn(kassa_worker::run(worker_config, pool.clone(), shutdown.clone())));
    tracing::info!("listening on {addr}");
    let served = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
        .context("Server failed");
    if let Some(worker) = worker {
        worker.await.context("The embedded worker panicked")?.context("The embedded worker failed")?;
    }
    served?;
    pool.close().await;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// `kassa-api migrate`: applies migrations and exits.
pub async fn migrate(db: &DbArgs) -> anyhow::Result<()> {
    let pool = db.connect_and_migrate().await.context("Failed to migrate the database")?;
    pool.close().await;
    tracing::info!("migrations applied");
    Ok(())
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
    let pool = args.db.connect_and_migrate().await.context("Failed to open the database")?;
    let hash = Passwords::new(1)?.hash(password.expose().to_owned()).await?;
    let mut conn = pool.acquire().await?;
    let user = users::insert_user(&mut conn, &username, &email, &hash, Role::Admin)
        .await
        .context("Failed to create the admin")?;
    drop(conn);
    pool.close().await;
    println!("created admin {} (id {})", user.username, user.id);
    Ok(())
}
