//! `booking`: parse the command line and the configuration, then dispatch.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = booking::cli::Cli::parse();
    let config = match booking::config::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("booking: configuration error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if matches!(cli.command, booking::cli::Command::Simulate(_))
        && std::env::var_os("RUST_LOG").is_none()
    {
        // the simulator's own report is the output; per-request logs would drown it
        booking::telemetry::init_with(config.log_format, "warn");
    } else {
        booking::telemetry::init(config.log_format);
    }
    match booking::cli::run(cli, config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "booking failed");
            eprintln!("booking: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
