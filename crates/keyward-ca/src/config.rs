//! Configuration of one service instance, and the clock it reads.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use time::OffsetDateTime;

/// Request rate limits, enforced before anything else looks at a request: per client
/// address and for the whole instance. A request over either answers `rate_limited`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests a second one address may sustain.
    pub per_address_per_second: u32,
    /// Requests one address may send at once before the rate applies.
    pub per_address_burst: u32,
    /// Requests a second the instance takes from everybody together.
    pub overall_per_second: u32,
    /// Requests the instance takes at once before the overall rate applies.
    pub overall_burst: u32,
}

impl RateLimit {
    /// For a service facing the network: an operator's client sends a handful of requests
    /// per step, a station a few a second; 20/s with bursts of 60 per address leaves them
    /// room and makes guessing slow. The overall figure keeps one instance out of overload.
    pub const DEFAULT: RateLimit = RateLimit {
        per_address_per_second: 20,
        per_address_burst: 60,
        overall_per_second: 2_000,
        overall_burst: 4_000,
    };
    /// For tests and benchmarks, where every client (the fault matrices, the throughput
    /// benchmark, schema fuzzing) comes from one loopback address: high enough that only a
    /// test of the limit itself meets it.
    pub const LOOPBACK_TESTS: RateLimit = RateLimit {
        per_address_per_second: 100_000,
        per_address_burst: 100_000,
        overall_per_second: 100_000,
        overall_burst: 100_000,
    };
}

/// How a [`crate::Server`] is started.
#[derive(Debug, Clone)]
pub struct Config {
    /// Holds the SQLite database (by default) and, unless `secrets_dir` is given, the CA
    /// hierarchy, the escrow keys and the bootstrap admin token, generated on first start.
    /// Created if missing; not touched at all by an instance on PostgreSQL with a secrets
    /// directory.
    pub data_dir: PathBuf,
    /// Where the secrets are read from when they are kept apart from the data (several
    /// instances share one copy): the issuing CA, the escrow keyring, the sandbox payment
    /// key and the optional bootstrap admin token, laid out as in a data directory. Nothing
    /// is generated there (`keyward-ca root …` and `keyward-ca secrets init` make it), and
    /// the root's private key must not be there: the root stays offline.
    pub secrets_dir: Option<PathBuf>,
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
    /// Route the sandbox payment provider (its payer and its own notification key). Without
    /// it there is no way to pay but a real provider's signed notification.
    pub sandbox_payments: bool,
    /// Route the SMS outbox, the stand-in for the handlers' phones.
    pub sandbox_sms: bool,
    /// The HMAC key file of the real payment provider's notifications (hex, 32 bytes). Not
    /// needed with `sandbox_payments`, whose provider has a key of its own.
    pub payment_key_file: Option<PathBuf>,
    /// Request rate limits.
    pub rate_limit: RateLimit,
    /// Daily caps per client address.
    pub address_caps: crate::limits::AddressCaps,
    /// Lifetime of the issuing CA certificate made on first start (the root lives ten
    /// years longer). Nothing it issues can outlive it: a client checks the chain.
    pub issuing_ca_years: i64,
    /// Balancers whose `X-Forwarded-For` names the client: for a connection from one of
    /// these, the client address (rate limits, daily caps, cool-downs) is the header's last
    /// entry. From any other peer the header is ignored.
    pub trusted_proxies: Vec<IpAddr>,
    /// Seconds between an instance's heartbeats: it re-reads its escrow keyring and tells
    /// the database which keys it holds (what `rotate-escrow` waits for).
    pub heartbeat_seconds: u64,
    /// The CA's name and support contacts, served at `GET /v1/ca/profile`. By default
    /// [`placeholder_profile`]: obvious placeholders, to be replaced by a deployment's own.
    pub profile: keyward_ca_api::CaProfile,
}

impl Config {
    /// Defaults for a data directory: TLS on loopback port 0, SQLite, the system clock, no
    /// sandbox, the default rate limits.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            secrets_dir: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: None,
            clock: Clock::system(),
            plain_http: false,
            tls_names: Vec::new(),
            sandbox_payments: false,
            sandbox_sms: false,
            payment_key_file: None,
            rate_limit: RateLimit::DEFAULT,
            address_caps: crate::limits::AddressCaps::DEFAULT,
            issuing_ca_years: 20,
            trusted_proxies: Vec::new(),
            heartbeat_seconds: crate::instances::DEFAULT_HEARTBEAT_SECONDS,
            profile: placeholder_profile(),
        }
    }

    /// What tests run: [`Config::new`] with the sandbox payment provider and SMS outbox,
    /// and the loopback rate limits and address caps.
    pub fn sandbox(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            sandbox_payments: true,
            sandbox_sms: true,
            rate_limit: RateLimit::LOOPBACK_TESTS,
            address_caps: crate::limits::AddressCaps::LOOPBACK_TESTS,
            ..Config::new(data_dir)
        }
    }

    /// Where the secrets live: the secrets directory, or the data directory.
    pub fn secrets(&self) -> &std::path::Path {
        self.secrets_dir.as_deref().unwrap_or(&self.data_dir)
    }
}

/// The reference CA's support profile until a deployment sets its own: every value says it
/// is an example, and none reaches a real company (the numbers are all zeros, the web
/// address is under the reserved `.invalid` domain).
pub fn placeholder_profile() -> keyward_ca_api::CaProfile {
    keyward_ca_api::CaProfile {
        display_name: "Keyward 参考 CA（示例，非真实机构）".into(),
        hotline: "000-0000-0000（示例号码）".into(),
        online: "QQ 群 000000000（示例）".into(),
        office_hours: "工作日 9:00–17:00（示例）".into(),
        website: "https://ca.example.invalid/".into(),
        new_application: "在 CA 网站提交【新申请】，按要求上传营业执照和经办人身份证，缴费后 CA 寄出新的 USB Key（示例流程）".into(),
        replacement: "USB Key 丢失或损坏时，在 CA 网站提交【补办】，上传营业执照和经办人身份证，缴费后 CA 寄出新的 USB Key（示例流程）".into(),
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
