//! `keyward-ca`: the Keyward reference CA online service.

mod station_cli;

use clap::{Parser, Subcommand};
use keyward_ca::{Config, RateLimit, Server};
use keyward_ca_api::StaffRole;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "keyward-ca",
    version,
    about = "The Keyward reference CA online service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the CA online service until interrupted.
    Serve {
        /// Database, CA hierarchy, escrow key and the bootstrap admin token live here.
        #[arg(long, env = "KEYWARD_CA_DATA_DIR", default_value = "keyward-ca-data")]
        data_dir: PathBuf,
        /// Address to listen on.
        #[arg(long, env = "KEYWARD_CA_LISTEN", default_value = "127.0.0.1:8750")]
        listen: SocketAddr,
        /// `sqlite://…` or `postgres://…`; default: SQLite in the data dir.
        #[arg(long, env = "KEYWARD_CA_DATABASE_URL")]
        database_url: Option<String>,
        /// Serve plain HTTP instead of TLS under the CA's own root (loopback only: refused
        /// on any other address).
        #[arg(long)]
        plain_http: bool,
        /// Route the sandbox payment provider (its payer page and its own notification
        /// key): for demos and tests, never for a CA that takes real money.
        #[arg(long)]
        sandbox_payments: bool,
        /// Route the SMS outbox, the stand-in for the handlers' phones: for demos and tests.
        #[arg(long)]
        sandbox_sms: bool,
        /// The real payment provider's notification key (hex, 32 bytes).
        #[arg(long, env = "KEYWARD_CA_PAYMENT_KEY_FILE")]
        payment_key_file: Option<PathBuf>,
        /// Requests a second one client address may sustain (default 20).
        #[arg(long, default_value_t = RateLimit::DEFAULT.per_address_per_second)]
        rate_per_address: u32,
        /// Requests one client address may send at once (default 60).
        #[arg(long, default_value_t = RateLimit::DEFAULT.per_address_burst)]
        burst_per_address: u32,
        /// Requests a second the instance takes from all clients together (default 2000).
        #[arg(long, default_value_t = RateLimit::DEFAULT.overall_per_second)]
        rate_overall: u32,
        /// Requests the instance takes at once from all clients together (default 4000).
        #[arg(long, default_value_t = RateLimit::DEFAULT.overall_burst)]
        burst_overall: u32,
        /// More DNS names or IP addresses for the service's TLS certificate.
        #[arg(long = "tls-name")]
        tls_names: Vec<String>,
        /// Run the service's clock this many days off the system clock (demos: issue a
        /// certificate "300 days ago", then serve today to show renewal).
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        clock_offset_days: i64,
    },
    /// Issuing station: provision a blank key for an organisation (random SO and transport
    /// PINs escrowed here, key pair and CSR on the key, certificate and chain written,
    /// activation SMS sent).
    Issue(station_cli::IssueArgs),
    /// The SMS outbox (the demo's stand-in for the handler's phone).
    Sms {
        #[command(flatten)]
        target: station_cli::AdminTarget,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Keep a staff token of a service in the OS keyring, so the tools need no file.
    Login {
        #[command(flatten)]
        target: station_cli::AdminTarget,
    },
    /// Staff accounts: each staff action is taken under a named account with a role.
    Staff {
        /// The data directory of the service (its database).
        #[arg(long, env = "KEYWARD_CA_DATA_DIR", default_value = "keyward-ca-data")]
        data_dir: PathBuf,
        /// `sqlite://…` or `postgres://…`; default: SQLite in the data dir.
        #[arg(long, env = "KEYWARD_CA_DATABASE_URL")]
        database_url: Option<String>,
        #[command(subcommand)]
        action: StaffAction,
    },
    /// Review businesses waiting for a decision (unlock by another requester, seals, ...),
    /// as the staff account whose token is used.
    Review {
        /// The service's address.
        #[arg(long, env = "KEYWARD_CA_URL", default_value = "https://localhost:8750")]
        url: String,
        /// The CA root to trust for https; default `<data dir>/ca/root.crt`.
        #[arg(long)]
        root: Option<PathBuf>,
        /// File holding the reviewer's staff token; default `<data dir>/admin.token`.
        #[arg(long)]
        token_file: Option<PathBuf>,
        #[arg(long, env = "KEYWARD_CA_DATA_DIR", default_value = "keyward-ca-data")]
        data_dir: PathBuf,
        #[command(subcommand)]
        action: ReviewAction,
    },
}

#[derive(Subcommand, Debug)]
enum StaffAction {
    /// Make an account; its token is printed once (only its hash is kept).
    Add {
        name: String,
        /// reviewer, station, auditor or admin.
        #[arg(long, value_parser = parse_role)]
        role: StaffRole,
        /// Days the token is valid.
        #[arg(long, default_value_t = keyward_ca::staff::DEFAULT_DAYS)]
        days: i64,
    },
    /// List the accounts.
    List,
    /// Revoke an account: its token stops working at once.
    Revoke { name: String },
}

fn parse_role(s: &str) -> Result<StaffRole, String> {
    StaffRole::parse(s)
        .ok_or_else(|| format!("{s:?} is not a role: reviewer, station, auditor or admin"))
}

#[derive(Subcommand, Debug)]
enum ReviewAction {
    /// List what waits for review.
    List {
        /// Print the service's JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Approve a business.
    Approve {
        id: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Reject a business, saying why.
    Reject {
        id: String,
        #[arg(long)]
        note: String,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve {
                data_dir,
                listen,
                database_url,
                plain_http,
                tls_names,
                clock_offset_days,
                sandbox_payments,
                sandbox_sms,
                payment_key_file,
                rate_per_address,
                burst_per_address,
                rate_overall,
                burst_overall,
            } => {
                let mut config = Config::new(data_dir);
                config.listen = listen;
                config.database_url = database_url;
                config.plain_http = plain_http;
                config.tls_names = tls_names;
                config.sandbox_payments = sandbox_payments;
                config.sandbox_sms = sandbox_sms;
                config.payment_key_file = payment_key_file;
                config.rate_limit = RateLimit {
                    per_address_per_second: rate_per_address,
                    per_address_burst: burst_per_address,
                    overall_per_second: rate_overall,
                    overall_burst: burst_overall,
                };
                if sandbox_payments || sandbox_sms {
                    tracing::warn!(
                        sandbox_payments,
                        sandbox_sms,
                        "sandbox mode: not for a CA that serves real operators"
                    );
                }
                if clock_offset_days != 0 {
                    tracing::warn!(clock_offset_days, "the service's clock is offset (demo)");
                    config
                        .clock
                        .advance(time::Duration::days(clock_offset_days));
                }
                let handle = Server::start(config).await?;
                println!("keyward-ca listening on {}", handle.base_url());
                println!(
                    "bootstrap admin token: {}",
                    handle.data_dir().join("admin.token").display()
                );
                if !plain_http {
                    println!(
                        "trust anchor (pin it): {}",
                        handle.data_dir().join("ca").join("root.crt").display()
                    );
                }
                shutdown_signal().await;
                tracing::info!("shutting down");
                handle.shutdown().await;
                Ok(())
            }
            Command::Review {
                url,
                root,
                token_file,
                data_dir,
                action,
            } => {
                let path = token_file.unwrap_or_else(|| data_dir.join("admin.token"));
                let token = std::fs::read_to_string(&path).map_err(|e| {
                    anyhow::anyhow!("cannot read the admin token {}: {e}", path.display())
                })?;
                let mut builder = reqwest::Client::builder();
                if url.starts_with("https:") {
                    let root = root.unwrap_or_else(|| data_dir.join("ca").join("root.crt"));
                    let pem = std::fs::read(&root).map_err(|e| {
                        anyhow::anyhow!("cannot read the CA root {}: {e}", root.display())
                    })?;
                    builder = builder
                        .tls_built_in_root_certs(false)
                        .add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
                }
                review(builder.build()?, &url, token.trim(), action).await
            }
            // The station and admin tools are blocking clients (PKCS#11, blocking HTTP).
            Command::Issue(a) => {
                tokio::task::spawn_blocking(move || station_cli::issue_key(a)).await?
            }
            Command::Sms { target, json } => {
                tokio::task::spawn_blocking(move || station_cli::sms(&target, json)).await?
            }
            Command::Login { target } => {
                tokio::task::spawn_blocking(move || station_cli::login(&target)).await?
            }
            Command::Staff {
                data_dir,
                database_url,
                action,
            } => staff(&data_dir, database_url.as_deref(), action).await,
        }
    })
}

async fn review(
    client: reqwest::Client,
    url: &str,
    token: &str,
    action: ReviewAction,
) -> anyhow::Result<()> {
    use keyward_ca_api::{ApiError, Business, ReviewDecision, ReviewQueue};
    let base = url.trim_end_matches('/');
    let (path, body) = match &action {
        ReviewAction::List { .. } => ("/admin/v1/reviews".to_owned(), None),
        ReviewAction::Approve { id, note } => (
            format!("/admin/v1/reviews/{id}/approve"),
            Some(ReviewDecision { note: note.clone() }),
        ),
        ReviewAction::Reject { id, note } => (
            format!("/admin/v1/reviews/{id}/reject"),
            Some(ReviewDecision { note: note.clone() }),
        ),
    };
    let request = match &body {
        None => client.get(format!("{base}{path}")),
        Some(d) => client.post(format!("{base}{path}")).json(d),
    };
    let response = request.bearer_auth(token).send().await?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        let e: ApiError =
            serde_json::from_str(&text).map_err(|_| anyhow::anyhow!("HTTP {status}: {text}"))?;
        anyhow::bail!("{}: {}", e.code, e.message);
    }
    match action {
        ReviewAction::List { json: true } => println!("{text}"),
        ReviewAction::List { json: false } => {
            let q: ReviewQueue = serde_json::from_str(&text)?;
            if q.items.is_empty() {
                println!("nothing waits for review");
            }
            for item in q.items {
                let b = item.business;
                let who = item
                    .requester
                    .map(|h| format!("{} {}", h.name, keyward_ca_api::ids::mask_mobile(&h.phone)))
                    .unwrap_or_default();
                println!(
                    "{}  {}  key {}  {}  {} attachment(s)",
                    b.id,
                    b.kind.as_str(),
                    b.key_serial.as_deref().unwrap_or("-"),
                    who,
                    item.attachments.len()
                );
                for a in item.attachments {
                    println!(
                        "    {} {} {} bytes  /admin/v1/attachments/{}",
                        a.kind.as_str(),
                        a.content_type,
                        a.size,
                        a.sha256
                    );
                }
            }
        }
        ReviewAction::Approve { .. } | ReviewAction::Reject { .. } => {
            let b: Business = serde_json::from_str(&text)?;
            println!("{} {}", b.id, b.state.as_str());
        }
    }
    Ok(())
}

/// `keyward-ca staff …`, straight on the service's database.
async fn staff(
    data_dir: &std::path::Path,
    database_url: Option<&str>,
    action: StaffAction,
) -> anyhow::Result<()> {
    let db = keyward_ca::db::connect(database_url, data_dir).await?;
    let mut conn = db.acquire().await?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    match action {
        StaffAction::Add { name, role, days } => {
            let token = keyward_ca::staff::add(&mut conn, &name, role, Some(days), now).await?;
            eprintln!(
                "staff account {name} ({}) made, valid {days} days; its token, shown only now:",
                role.as_str()
            );
            println!("{}", token.as_str());
        }
        StaffAction::List => {
            for s in keyward_ca::staff::list(&mut conn).await? {
                let state = match (s.revoked_at, s.expires_at) {
                    (Some(_), _) => "revoked".to_owned(),
                    (None, Some(at)) if at <= now => "expired".to_owned(),
                    (None, Some(at)) => format!("valid until {}", unix_date(at)),
                    (None, None) => "valid (no expiry)".to_owned(),
                };
                println!("{}\t{}\t{state}", s.name, s.role.as_str());
            }
        }
        StaffAction::Revoke { name } => {
            keyward_ca::staff::revoke(&mut conn, &name, now).await?;
            println!("staff account {name} revoked");
        }
    }
    drop(conn);
    db.close().await;
    Ok(())
}

fn unix_date(at: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at)
        .map(|t| t.date().to_string())
        .unwrap_or_else(|_| at.to_string())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
