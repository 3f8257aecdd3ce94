//! Logs: JSON lines on stderr (`BOOKING_LOG_FORMAT=pretty` for humans),
//! filtered by `RUST_LOG` (default `info`). Secrets never reach them: tokens
//! are not logged, phone numbers only masked.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    init_with(format, "info,sqlx=warn")
}

/// Like [`init`], with another default filter when `RUST_LOG` is unset.
pub fn init_with(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}
