//! `booking-bench`: pgbench's ceiling vs the API at two table sizes; writes
//! BENCHMARKS.md. Run it through `scripts/bench`, which builds the release
//! `booking` binary it measures.
//!
//! Without DATABASE_URL everything runs in a private cluster in a temporary
//! directory, removed at the end. With DATABASE_URL (a superuser login) the
//! bench writes its users, resources and a million bookings into that
//! database: use a throw-away one.

use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "booking-bench", about = "The benchmark behind BENCHMARKS.md")]
struct Cli {
    #[command(flatten)]
    args: booking_bench::BenchArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match booking::config::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("booking-bench: configuration error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    booking::telemetry::init_with(config.log_format, "warn");
    match booking_bench::run(cli.args, config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("booking-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
