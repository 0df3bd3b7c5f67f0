//! Configuration of one service instance, and the clock it reads.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use time::OffsetDateTime;

/// How a [`crate::Server`] is started.
#[derive(Debug, Clone)]
pub struct Config {
    /// Holds the SQLite database (by default), the CA hierarchy, the escrow key and the
    /// admin token. Created if missing.
    pub data_dir: PathBuf,
    /// Where to listen; port 0 picks a free port (read it from the handle).
    pub listen: SocketAddr,
    /// `sqlite://…` or `postgres://…`; `None` means `keyward-ca.sqlite` in the data dir.
    pub database_url: Option<String>,
    /// The clock business rules read (expiry of codes, renewal window, validity).
    pub clock: Clock,
    /// Serve plain HTTP instead of TLS (tests and local demos only).
    pub plain_http: bool,
    /// Extra names (DNS or IP) for the service's TLS certificate, besides `localhost`,
    /// 127.0.0.1, ::1 and the listen address.
    pub tls_names: Vec<String>,
}

impl Config {
    /// Defaults for a data directory: TLS on loopback port 0, SQLite, the system clock.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: None,
            clock: Clock::system(),
            plain_http: false,
            tls_names: Vec::new(),
        }
    }
}

/// The service's notion of "now": the system clock plus an offset tests may move forward.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_seconds: Arc<AtomicI64>,
}

impl Clock {
    pub fn system() -> Self {
        Clock::default()
    }

    pub fn now(&self) -> OffsetDateTime {
        let offset = self.offset_seconds.load(Ordering::SeqCst);
        OffsetDateTime::now_utc() + time::Duration::seconds(offset)
    }

    /// Unix seconds of [`Clock::now`].
    pub fn unix(&self) -> i64 {
        self.now().unix_timestamp()
    }

    /// Moves this clock (and every clone of it) forward; for tests and demos.
    pub fn advance(&self, by: time::Duration) {
        self.offset_seconds
            .fetch_add(by.whole_seconds(), Ordering::SeqCst);
    }
}
