//! The module's own log. It goes to the configured `log_file` (appended) or
//! to standard error; the filter comes from `KEYWARD_SIM_LOG`, then the
//! configuration's `log_level`, then `info` with a log file and `warn`
//! without. The log never contains a PIN, nor its length.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Registry, fmt, reload};

use crate::config::Config;
use crate::error::Error;
use crate::lock_ignoring_poison;

/// Environment variable that overrides the configured log filter.
pub const LOG_ENV: &str = "KEYWARD_SIM_LOG";

static SINK: Mutex<Option<File>> = Mutex::new(None);
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

struct SinkWriter;

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match lock_ignoring_poison(&SINK).as_mut() {
            Some(f) => f.write(buf),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match lock_ignoring_poison(&SINK).as_mut() {
            Some(f) => f.flush(),
            None => std::io::stderr().flush(),
        }
    }
}

fn filter_for(config: Option<&Config>) -> EnvFilter {
    let wanted = std::env::var(LOG_ENV).ok().or_else(|| {
        config.and_then(|c| c.log_level.clone()).or_else(|| {
            Some(
                if config.is_some_and(|c| c.log_file.is_some()) {
                    "info"
                } else {
                    "warn"
                }
                .to_string(),
            )
        })
    });
    wanted
        .and_then(|w| EnvFilter::try_new(w).ok())
        .unwrap_or_else(|| EnvFilter::new("warn"))
}

fn install(filter: EnvFilter) {
    match FILTER.get() {
        Some(handle) => {
            let _ = handle.reload(filter);
        }
        None => {
            let (layer, handle) = reload::Layer::new(filter);
            let subscriber = Registry::default().with(layer).with(
                fmt::layer()
                    .with_ansi(false)
                    .with_thread_ids(true)
                    .with_writer(|| SinkWriter),
            );
            // Only the first C_Initialize of the process installs the
            // subscriber; later ones reload the filter through the handle.
            if tracing::subscriber::set_global_default(subscriber).is_ok() {
                let _ = FILTER.set(handle);
            }
        }
    }
}

/// Logging before a configuration is known (standard error, `warn`).
pub fn init_default() {
    if FILTER.get().is_none() {
        install(filter_for(None));
    }
}

/// Points the log at the configured file and filter.
pub fn configure(config: &Config) -> Result<(), Error> {
    let file = match &config.log_file {
        Some(path) => Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| Error::LogFile {
                    path: path.clone(),
                    source,
                })?,
        ),
        None => None,
    };
    *lock_ignoring_poison(&SINK) = file;
    install(filter_for(Some(config)));
    Ok(())
}
