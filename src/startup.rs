//! Wiring: where the database is (private cluster or `DATABASE_URL`), the
//! migrations, the two logins, and the [`Application`] that serves HTTP until
//! told to stop.

use anyhow::{bail, Context};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sqlx::postgres::PgConnectOptions;
use sqlx::Row;
use sqlx::{ConnectOptions, Connection, PgConnection};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::db::{migrate, Db};
use crate::http::{self, AppState, Clock};
use crate::identity::jwt::Keys;
use crate::pg::{self, Cluster, StartOptions};

/// Where the data lives and how to log in to it.
pub struct Backend {
    /// The private cluster, when we run one (stopped when dropped).
    pub cluster: Option<Cluster>,
    /// The owner's login: runs migrations.
    pub owner: PgConnectOptions,
    /// The non-privileged login requests are served through.
    pub serve: PgConnectOptions,
    pub jwt_secret: Vec<u8>,
}

impl Backend {
    /// Find or start the database, apply pending migrations, and prepare the
    /// serving login.
    pub async fn open(config: &Config) -> anyhow::Result<Backend> {
        match &config.database_url {
            Some(url) => {
                let owner: PgConnectOptions = url.parse().context("DATABASE_URL")?;
                let owner = owner.log_statements(tracing::log::LevelFilter::Trace);
                let mut conn = PgConnection::connect_with(&owner)
                    .await
                    .context("cannot connect to DATABASE_URL")?;
                migrate::run_for(&mut conn, config.distributed).await?;
                migrate::apply_settings(&mut conn, config.max_active_bookings).await?;
                let serve = match &config.serve_database_url {
                    Some(u) => u
                        .parse::<PgConnectOptions>()
                        .context("BOOKING_SERVE_DATABASE_URL")?,
                    None => {
                        let (superuser, bypass): (bool, bool) = sqlx::query_as(
                            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user",
                        )
                        .fetch_one(&mut conn)
                        .await?;
                        if superuser || bypass {
                            tracing::warn!(
                                "serving through DATABASE_URL's login, which is a superuser or has BYPASSRLS: \
                                 requests still run as `authenticated` under RLS, but a safer set-up is a NOINHERIT \
                                 login without BYPASSRLS that owns nothing (like Supabase's `authenticator`), \
                                 granted anon, authenticated and service_role, named by BOOKING_SERVE_DATABASE_URL"
                            );
                        }
                        owner.clone()
                    }
                };
                conn.close().await?;
                let secret = config
                    .jwt_secret
                    .clone()
                    .context("BOOKING_JWT_SECRET is required")?;
                check_serve_login(&serve).await?;
                Ok(Backend {
                    cluster: None,
                    owner,
                    serve,
                    jwt_secret: secret,
                })
            }
            None => {
                let dir = config.data_dir.clone();
                let cluster = tokio::task::spawn_blocking(move || {
                    Cluster::open(&dir, StartOptions::default())
                })
                .await??;
                cluster.ensure_database(pg::APP_DATABASE).await?;
                let owner = cluster.admin_options(pg::APP_DATABASE);
                let mut conn = PgConnection::connect_with(&owner).await?;
                migrate::run(&mut conn).await?;
                migrate::apply_settings(&mut conn, config.max_active_bookings).await?;
                migrate::ensure_login_role(
                    &mut conn,
                    pg::LOGIN_ROLE,
                    &cluster.secrets.login_password,
                )
                .await?;
                conn.close().await?;
                let serve = cluster.connect_options(pg::LOGIN_ROLE, pg::APP_DATABASE);
                let secret = config
                    .jwt_secret
                    .clone()
                    .unwrap_or_else(|| cluster.secrets.jwt_secret.clone().into_bytes());
                Ok(Backend {
                    cluster: Some(cluster),
                    owner,
                    serve,
                    jwt_secret: secret,
                })
            }
        }
    }

    /// Stop the private cluster, if we started it.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.cluster.take() {
            tokio::task::spawn_blocking(move || c.stop()).await??;
        }
        Ok(())
    }
}

/// The serving login must be able to switch to the request roles.
async fn check_serve_login(opts: &PgConnectOptions) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect_with(opts)
        .await
        .context("cannot connect with BOOKING_SERVE_DATABASE_URL")?;
    // the simple protocol (nothing prepared): this may be a pooler in
    // transaction mode, where a statement outside a transaction cannot be
    // prepared in one round trip and run in the next
    let row = sqlx::raw_sql(
        "SELECT current_user::text, pg_has_role(current_user, 'authenticated', 'MEMBER') \
           AND pg_has_role(current_user, 'service_role', 'MEMBER')",
    )
    .fetch_one(&mut conn)
    .await?;
    let (user, ok): (String, bool) = (row.try_get(0)?, row.try_get(1)?);
    conn.close().await?;
    if !ok {
        bail!("BOOKING_SERVE_DATABASE_URL: login `{user}` cannot switch to the request roles; run: GRANT anon, authenticated, service_role TO \"{user}\"");
    }
    Ok(())
}

/// The process-wide Prometheus recorder (installed once).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let handle = match builder.install_recorder() {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            };
            metrics::gauge!("booking_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}

/// A bound HTTP server, ready to run.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    state: AppState,
}

impl Application {
    /// Bind `config.addr` (port 0 picks a free one) and build the router.
    pub async fn build(
        config: &Config,
        serve: PgConnectOptions,
        jwt_secret: &[u8],
    ) -> anyhow::Result<Application> {
        let db = Db::connect_lazy_via(serve, config.db_pool_size, config.db_pooler)
            .on(config.distributed);
        let keys = Arc::new(Keys::new(jwt_secret, &config.jwt_issuers));
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("BOOKING_ADDR: cannot listen on {}", config.addr))?;
        let mut config = config.clone();
        // BOOKING_PUBLIC_URL unset: the address actually bound (port 0 picks one)
        if config.public_url == format!("http://{}", config.addr) {
            if let Ok(a) = listener.local_addr() {
                config.public_url = format!("http://{a}");
            }
        }
        let state = AppState {
            db,
            keys,
            clock: Clock::default(),
            config: Arc::new(config),
            metrics: metrics_handle(),
            auth_blocks: Default::default(),
            wake: Default::default(),
        };
        let router = http::router(state.clone());
        Ok(Application {
            listener,
            router,
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serve until `shutdown` resolves; then stop accepting, let in-flight
    /// requests finish (at most 30 s), and close the pool.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let header_timeout =
            Duration::from_secs(self.state.config.header_read_timeout_secs.max(1) as u64);
        let mut server = tokio::spawn(serve_http(self.listener, self.router, header_timeout, rx));
        let maintenance = http::maintenance::spawn(self.state.clone());
        let (stop_worker, worker_stop) = tokio::sync::watch::channel(false);
        let worker = crate::webhooks::spawn(
            crate::webhooks::Worker {
                db: self.state.db.clone(),
                http: crate::webhooks::client(self.state.config.webhook_allow_private),
                allow_private: self.state.config.webhook_allow_private,
                disable_after_days: self.state.config.webhook_disable_after_days as i32,
                wake: self.state.wake.clone(),
                expiry_sweep: (self.state.config.expiry_sweep_secs > 0)
                    .then(|| Duration::from_secs(self.state.config.expiry_sweep_secs as u64)),
            },
            worker_stop,
        );
        tokio::select! {
            res = &mut server => { res?; }
            _ = shutdown => {
                tracing::info!("shutting down: no new connections; finishing in-flight requests");
                let _ = tx.send(());
                match tokio::time::timeout(Duration::from_secs(30), &mut server).await {
                    Ok(res) => res?,
                    Err(_) => {
                        tracing::warn!("in-flight requests did not finish within 30 s: closing them");
                        server.abort();
                    }
                }
            }
        }
        maintenance.abort();
        // the webhook worker claims nothing new and finishes (and records)
        // the deliveries it has started: each takes at most 10 s
        let _ = stop_worker.send(true);
        let mut worker = worker;
        if tokio::time::timeout(Duration::from_secs(15), &mut worker)
            .await
            .is_err()
        {
            tracing::warn!("webhook deliveries did not finish within 15 s; their leases lapse and another process retries them");
            worker.abort();
        }
        if tokio::time::timeout(Duration::from_secs(10), self.state.db.close())
            .await
            .is_err()
        {
            tracing::warn!("database connections did not close within 10 s");
        }
        Ok(())
    }
}

/// The HTTP/1.1 server: hyper with a timer, so that a connection that does not
/// send a whole request head within `header_timeout` (a slow-loris client, or
/// a keep-alive connection left idle) is closed instead of held forever —
/// `axum::serve` builds hyper without a timer, so it has no such timeout.
/// Every request carries the peer address (`ConnectInfo`). On `stop`, no new
/// connection is accepted and open ones finish their request in progress.
async fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    header_timeout: Duration,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    use axum::extract::ConnectInfo;
    use tower::ServiceExt;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // out of file descriptors and the like: do not spin
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                router.clone().oneshot(req.map(axum::body::Body::new))
            });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
