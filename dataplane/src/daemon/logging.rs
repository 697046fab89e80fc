//! tracing set-up: human-readable lines by default, one JSON object per line with
//! `--log-format json`. `RUST_LOG` filters as usual (default: info).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use super::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // Colour only for a person at a terminal, never into log files.
    let builder = builder.with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => builder.with_target(false).init(),
        LogFormat::Json => builder.json().with_current_span(false).init(),
    }
}
