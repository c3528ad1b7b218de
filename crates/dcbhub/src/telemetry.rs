use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// JSON (or text) logs on stderr, filtered by `RUST_LOG` (default `info`). The SMPP library
/// dumps whole PDUs (passwords, message texts, so PINs) at debug level: its directives are
/// pinned after the user's, whatever `RUST_LOG` says.
pub fn init(format: LogFormat) {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    for directive in dcbhub_notify::smpp::SENSITIVE_LOG_DIRECTIVES {
        if let Ok(d) = directive.parse() {
            filter = filter.add_directive(d);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
