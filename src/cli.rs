//! The command line (see the contract): serve, migrate, token, simulate.

use clap::{Parser, Subcommand};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::config::Config;
use crate::db::{users, Db};
use crate::domain::Phone;
use crate::identity::Role;
use crate::startup::{shutdown_signal, Application, Backend};

#[derive(Debug, Parser)]
#[command(
    name = "booking",
    version,
    about = "A booking backend on PostgreSQL: no double bookings, private by construction"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations, then serve HTTP until SIGINT/SIGTERM.
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Print an access token (alone on stdout).
    Token {
        /// The user's phone (E.164); the user is created if new.
        #[arg(long, conflicts_with = "service", required_unless_present = "service")]
        phone: Option<String>,
        /// A service-role token (administration; bypasses RLS by design).
        #[arg(long)]
        service: bool,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(i64).range(1..=31_536_000))]
        ttl: i64,
    },
    /// Drive servers with many concurrent users, then check the invariants in SQL.
    Simulate(crate::simulate::SimulateArgs),
}

pub async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Simulate(args) => crate::simulate::run(args, config).await,
        Command::Migrate => {
            let backend = Backend::open(&config).await?;
            tracing::info!("migrations are current");
            backend.shutdown().await
        }
        Command::Token {
            phone,
            service,
            ttl,
        } => {
            // validate before touching the database
            let phone = match (phone, service) {
                (Some(p), false) => {
                    Some(Phone::parse(&p).map_err(|e| anyhow::anyhow!("--phone: {e}"))?)
                }
                _ => None,
            };
            let backend = Backend::open(&config).await?;
            let result = mint(&config, &backend, phone, ttl).await;
            backend.shutdown().await?;
            println!("{}", result?);
            Ok(())
        }
    }
}

async fn mint(
    config: &Config,
    backend: &Backend,
    phone: Option<Phone>,
    ttl: i64,
) -> anyhow::Result<String> {
    let keys = crate::identity::jwt::Keys::new(&backend.jwt_secret, &config.jwt_issuers);
    match phone {
        None => keys.mint(uuid::Uuid::nil(), Role::Service, None, None, ttl),
        Some(phone) => {
            let db = Db::connect_lazy(backend.serve.clone(), 1);
            let mut tx = db.begin(&crate::identity::Identity::service()).await?;
            let (user, _) = users::get_or_create(tx.conn(), &phone, None).await?;
            tx.commit().await?;
            db.close().await;
            keys.mint(
                user.id,
                Role::Authenticated,
                Some(phone.as_str()),
                None,
                ttl,
            )
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let backend = Backend::open(&config).await?;
    let app = match Application::build(&config, backend.serve.clone(), &backend.jwt_secret).await {
        Ok(app) => app,
        Err(e) => {
            backend.shutdown().await?;
            return Err(e);
        }
    };
    if config.otp_delivery == crate::config::OtpDelivery::Echo {
        tracing::warn!("BOOKING_OTP_DELIVERY=echo: sign-in codes are returned in API responses. For automated tests and demos ONLY");
    }
    tracing::info!(addr = %app.local_addr(), "listening");
    // The private cluster is part of this process: if its postmaster dies
    // (killed, crashed), serving on would answer nothing but 503s forever.
    // We stop and exit non-zero instead, so that a supervisor (systemd,
    // Kubernetes, a shell loop) restarts us, and the restart brings the
    // cluster back (PostgreSQL recovers its own files).
    let postmaster = backend.cluster.as_ref().and_then(|c| c.postmaster_pid());
    let died = Arc::new(AtomicBool::new(false));
    let stop = {
        let died = died.clone();
        async move {
            let watch = async {
                match postmaster {
                    None => std::future::pending::<()>().await,
                    Some(pid) => loop {
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                        if crate::pg::process_gone(pid) {
                            return;
                        }
                    },
                }
            };
            tokio::select! {
                _ = shutdown_signal() => {}
                _ = watch => {
                    tracing::error!(pid = postmaster, "the private PostgreSQL cluster stopped unexpectedly; exiting");
                    died.store(true, Ordering::SeqCst);
                }
            }
        }
    };
    let result = app.run_until(stop).await;
    backend.shutdown().await?;
    if died.load(Ordering::SeqCst) {
        anyhow::bail!(
            "the private PostgreSQL cluster stopped unexpectedly; exiting non-zero so that a supervisor restarts booking (which restarts the cluster)"
        );
    }
    result
}
