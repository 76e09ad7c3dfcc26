//! Logs go to the journal when systemd started us (`JOURNAL_STREAM` is set),
//! else to stderr. `RUST_LOG` filters (default `info`).

use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    if std::env::var_os("JOURNAL_STREAM").is_some()
        && let Ok(journald) = tracing_journald::layer()
    {
        let _ = registry.with(journald.with_syslog_identifier("node-agent".into())).try_init();
        return;
    }
    let _ = registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr)).try_init();
}
