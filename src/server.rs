//! Assembling and running the service: store, vault, use cases, HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::app::App;
use crate::config::Config;
use crate::crypto::Vault;
use crate::http::{self, AppState, Limits};
use crate::{store, telemetry};

/// Picks the TLS crypto provider for the process. Two are compiled in (aws-lc-rs, ours; ring,
/// through the job queue's database driver), and rustls refuses to guess between them.
pub fn install_crypto_provider() {
    // Err only when one is installed already: fine either way.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Connects to the database, runs migrations, loads the keyring and builds the use cases.
pub async fn bootstrap(config: &Config) -> anyhow::Result<Arc<App>> {
    install_crypto_provider();
    let keyring = config.keyring()?;
    tracing::info!(database = %config.database_url.redacted(), "connecting to the database");
    let store = store::connect(&config.database_url, config.database_max_connections)
        .await
        .map_err(|err| {
            anyhow::anyhow!(
                "cannot open the database {}: {err}",
                config.database_url.redacted()
            )
        })?;
    store.migrate().await.context("database migrations failed")?;
    tracing::info!(backend = store.backend(), key_ids = ?keyring.ids(), "storage ready");
    if config.signup_enabled && !config.operator_emails.is_empty() {
        tracing::warn!(
            "operator_emails with open signup: anyone who signs up first with an operator's \
             address becomes an operator. Register the operators' accounts now, or set \
             signup_enabled = false"
        );
    }
    Ok(Arc::new(App::new(store, Vault::new(keyring), config)))
}

pub fn router(app: Arc<App>, config: &Config) -> axum::Router {
    let state = AppState {
        app,
        metrics: telemetry::metrics(),
    };
    http::router(
        state,
        Limits {
            max_body_bytes: config.max_body_bytes,
            request_timeout: Duration::from_secs(30),
        },
    )
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Serves HTTP on `listener` and, when configured, runs the send workers beside it, until
/// `shutdown` resolves; then both stop gracefully.
pub async fn run(
    app: Arc<App>,
    config: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let signal = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let closing = app.clone();
    tokio::spawn(async move {
        shutdown.await;
        // Live event streams never end by themselves, and serving stops only when every
        // response has.
        closing.live.close();
        let _ = stop.send(true);
    });
    let http = serve(listener, router(app.clone(), config), signal());
    if config.workers {
        let workers = crate::worker::run(app, config.outbound.clone(), signal());
        let (http, workers) = tokio::join!(http, workers);
        http?;
        workers
    } else {
        Ok(http.await?)
    }
}

/// Runs only the send workers (no HTTP) until `shutdown` resolves.
pub async fn run_workers(
    app: Arc<App>,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    crate::worker::run(app, config.outbound.clone(), shutdown).await
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
