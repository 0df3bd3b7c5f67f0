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

/// The CA's name and support contacts (`GET /v1/ca/profile`); each one not given keeps the
/// reference CA's placeholder.
#[derive(clap::Args, Debug)]
struct SupportArgs {
    /// The CA's name as operators know it.
    #[arg(long, env = "KEYWARD_CA_DISPLAY_NAME")]
    display_name: Option<String>,
    /// The support hotline.
    #[arg(long, env = "KEYWARD_CA_SUPPORT_HOTLINE")]
    support_hotline: Option<String>,
    /// An online support channel (a QQ group, a web chat), as operators should read it.
    #[arg(long, env = "KEYWARD_CA_SUPPORT_ONLINE")]
    support_online: Option<String>,
    /// When support answers.
    #[arg(long, env = "KEYWARD_CA_SUPPORT_HOURS")]
    support_hours: Option<String>,
    /// The CA's web address.
    #[arg(long, env = "KEYWARD_CA_SUPPORT_WEBSITE")]
    support_website: Option<String>,
    /// How to apply for a new certificate (新申请).
    #[arg(long, env = "KEYWARD_CA_SUPPORT_NEW_APPLICATION")]
    support_new_application: Option<String>,
    /// How to replace a lost or broken key (补办).
    #[arg(long, env = "KEYWARD_CA_SUPPORT_REPLACEMENT")]
    support_replacement: Option<String>,
}

impl SupportArgs {
    fn apply(self, p: &mut keyward_ca_api::CaProfile) {
        let set = |field: &mut String, v: Option<String>| {
            if let Some(v) = v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
                *field = v;
            }
        };
        set(&mut p.display_name, self.display_name);
        set(&mut p.hotline, self.support_hotline);
        set(&mut p.online, self.support_online);
        set(&mut p.office_hours, self.support_hours);
        set(&mut p.website, self.support_website);
        set(&mut p.new_application, self.support_new_application);
        set(&mut p.replacement, self.support_replacement);
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the CA online service until interrupted.
    Serve {
        /// The SQLite database lives here, and without --secrets-dir everything else too
        /// (made on first start). Not used on PostgreSQL with --secrets-dir.
        #[arg(long, env = "KEYWARD_CA_DATA_DIR", default_value = "keyward-ca-data")]
        data_dir: PathBuf,
        /// Read the issuing CA, the escrow keyring and the tokens from here (shared by
        /// every instance; made by `root issue` and `secrets init`; never the root's key).
        #[arg(long, env = "KEYWARD_CA_SECRETS_DIR")]
        secrets_dir: Option<PathBuf>,
        /// A balancer in front of this instance whose X-Forwarded-For names the client
        /// (repeat for several).
        #[arg(
            long = "trusted-proxy",
            env = "KEYWARD_CA_TRUSTED_PROXIES",
            value_delimiter = ','
        )]
        trusted_proxies: Vec<std::net::IpAddr>,
        /// Seconds between heartbeats (re-reading the escrow keyring, reporting to the
        /// database which keys this instance holds).
        #[arg(long, default_value_t = keyward_ca::instances::DEFAULT_HEARTBEAT_SECONDS)]
        heartbeat_seconds: u64,
        /// Codes one client address may have sent in a day, all keys together.
        #[arg(long, default_value_t = keyward_ca::limits::AddressCaps::DEFAULT.codes)]
        codes_per_address: i64,
        /// Codes one client address may have sent for one key in a day.
        #[arg(long, default_value_t = keyward_ca::limits::AddressCaps::DEFAULT.codes_per_key)]
        codes_per_key_and_address: i64,
        /// Businesses one client address may open in a day without a key's signature.
        #[arg(long, default_value_t = keyward_ca::limits::AddressCaps::DEFAULT.public_businesses)]
        orders_per_address: i64,
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
        #[command(flatten)]
        support: SupportArgs,
    },
    /// The offline root CA: made, and used to certify the issuing CA, away from the
    /// instances.
    Root {
        /// The root's folder (root.key, root.crt), kept offline.
        #[arg(long, env = "KEYWARD_CA_ROOT_DIR")]
        root_dir: PathBuf,
        #[command(subcommand)]
        action: RootAction,
    },
    /// The secrets directory the instances share.
    Secrets {
        #[command(subcommand)]
        action: SecretsAction,
    },
    /// Re-encrypt every escrowed PIN under a new escrow key, while the instances serve.
    RotateEscrow {
        /// The data directory of a CA that keeps its secrets there.
        #[arg(long, env = "KEYWARD_CA_DATA_DIR", default_value = "keyward-ca-data")]
        data_dir: PathBuf,
        /// The secrets directory holding the escrow keyring (the new key is made there).
        #[arg(long, env = "KEYWARD_CA_SECRETS_DIR")]
        secrets_dir: Option<PathBuf>,
        #[arg(long, env = "KEYWARD_CA_DATABASE_URL")]
        database_url: Option<String>,
        /// Seconds to wait for every live instance to hold the new key.
        #[arg(long, default_value_t = 300)]
        wait_seconds: u64,
        /// Seconds between the switch and the re-encryption, for requests under way.
        #[arg(long, default_value_t = 5)]
        grace_seconds: u64,
        /// Delete the files of the keys no record names any more from the secrets
        /// directory (copies elsewhere are for whoever made them).
        #[arg(long)]
        remove_unused: bool,
    },
    /// A TLS server certificate under the issuing CA, for a balancer that terminates TLS in
    /// front of the instances.
    TlsCert {
        #[arg(long, env = "KEYWARD_CA_SECRETS_DIR")]
        secrets_dir: PathBuf,
        /// A DNS name or IP address the balancer answers to (repeat for several).
        #[arg(long = "name", required = true)]
        names: Vec<String>,
        /// Where to write the chain (PEM: the server certificate, then the issuing CA).
        #[arg(long)]
        cert: PathBuf,
        /// Where to write the private key (PEM, PKCS#8, mode 0600).
        #[arg(long)]
        key: PathBuf,
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
enum RootAction {
    /// Make a new root CA in the root's folder.
    Init {
        /// Years the root is valid.
        #[arg(long, default_value_t = 30)]
        years: i64,
    },
    /// Certify a new issuing CA (a new key) into a secrets directory, with the root's
    /// certificate and the seal maker.
    Issue {
        #[arg(long, env = "KEYWARD_CA_SECRETS_DIR")]
        secrets_dir: PathBuf,
        /// Years the issuing CA is valid (never past the root).
        #[arg(long, default_value_t = 20)]
        years: i64,
        /// Replace an issuing CA that is there (what it issued no longer chains to the
        /// new one).
        #[arg(long)]
        replace: bool,
    },
    /// Certify the issuing CA's key again, for `years` from today.
    Renew {
        #[arg(long, env = "KEYWARD_CA_SECRETS_DIR")]
        secrets_dir: PathBuf,
        #[arg(long, default_value_t = 20)]
        years: i64,
    },
}

#[derive(Subcommand, Debug)]
enum SecretsAction {
    /// Make what a secrets directory lacks: an escrow key, and on request a bootstrap
    /// admin token and the sandbox payment provider's key. What is there is kept.
    Init {
        #[arg(long, env = "KEYWARD_CA_SECRETS_DIR")]
        secrets_dir: PathBuf,
        /// A bootstrap `admin` staff token (admin.token).
        #[arg(long)]
        admin_token: bool,
        /// The sandbox payment provider's key (payment-sandbox.key).
        #[arg(long)]
        sandbox_payments: bool,
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
                secrets_dir,
                trusted_proxies,
                heartbeat_seconds,
                codes_per_address,
                codes_per_key_and_address,
                orders_per_address,
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
                support,
            } => {
                let mut config = Config::new(data_dir);
                support.apply(&mut config.profile);
                config.secrets_dir = secrets_dir;
                config.trusted_proxies = trusted_proxies;
                config.heartbeat_seconds = heartbeat_seconds;
                config.address_caps = keyward_ca::limits::AddressCaps {
                    codes_per_key: codes_per_key_and_address,
                    codes: codes_per_address,
                    public_businesses: orders_per_address,
                };
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
                let secrets = config.secrets().to_owned();
                let handle = Server::start(config).await?;
                println!("keyward-ca listening on {}", handle.base_url());
                if !handle.admin_token().is_empty() {
                    println!(
                        "bootstrap admin token: {}",
                        secrets.join("admin.token").display()
                    );
                }
                if !plain_http {
                    println!(
                        "trust anchor (pin it): {}",
                        secrets.join("ca").join("root.crt").display()
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
            Command::Root { root_dir, action } => root(&root_dir, action),
            Command::Secrets {
                action:
                    SecretsAction::Init {
                        secrets_dir,
                        admin_token,
                        sandbox_payments,
                    },
            } => {
                let made = keyward_ca::offline::init_secrets(
                    &secrets_dir,
                    keyward_ca::offline::SecretsInit {
                        admin_token,
                        sandbox_payments,
                    },
                )?;
                for path in made {
                    println!("made {}", path.display());
                }
                Ok(())
            }
            Command::RotateEscrow {
                data_dir,
                secrets_dir,
                database_url,
                wait_seconds,
                grace_seconds,
                remove_unused,
            } => {
                let dir = secrets_dir.unwrap_or_else(|| data_dir.clone());
                let db = keyward_ca::db::connect(database_url.as_deref(), &data_dir).await?;
                let options = keyward_ca::escrow::RotateOptions {
                    wait: std::time::Duration::from_secs(wait_seconds),
                    grace: std::time::Duration::from_secs(grace_seconds),
                    ..Default::default()
                };
                let done =
                    keyward_ca::escrow::rotate(&db, &dir, options, |step| eprintln!("{step}"))
                        .await;
                db.close().await;
                let done = done?;
                println!(
                    "escrow key {} is current ({}); {} record(s) re-encrypted",
                    done.key_id,
                    done.file.display(),
                    done.reencrypted
                );
                for id in &done.unused {
                    let file = keyward_ca::escrow::key_files(&dir)?.into_iter().find(|f| {
                        keyward_ca::crypto::read_secret(f)
                            .is_ok_and(|k| keyward_ca::crypto::escrow_key_id(&k) == *id)
                    });
                    match (file, remove_unused) {
                        (Some(f), true) => {
                            std::fs::remove_file(&f)?;
                            println!("no record names escrow key {id}: removed {}", f.display());
                        }
                        (Some(f), false) => println!(
                            "no record names escrow key {id}: {} may be removed from every secrets directory",
                            f.display()
                        ),
                        (None, _) => {}
                    }
                }
                Ok(())
            }
            Command::TlsCert {
                secrets_dir,
                names,
                cert,
                key,
            } => {
                keyward_ca::offline::tls_certificate(&secrets_dir, &names, &cert, &key)?;
                println!("wrote {} and {}", cert.display(), key.display());
                Ok(())
            }
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

/// `keyward-ca root …`, on the offline root's folder.
fn root(root_dir: &std::path::Path, action: RootAction) -> anyhow::Result<()> {
    let now = time::OffsetDateTime::now_utc();
    match action {
        RootAction::Init { years } => {
            let crt = keyward_ca::offline::init_root(root_dir, years, now)?;
            println!("made the root CA; what clients pin: {}", crt.display());
        }
        RootAction::Issue {
            secrets_dir,
            years,
            replace,
        } => {
            keyward_ca::offline::issue_issuing_ca(root_dir, &secrets_dir, years, replace, now)?;
            println!(
                "issued the issuing CA into {}",
                secrets_dir.join("ca").display()
            );
        }
        RootAction::Renew { secrets_dir, years } => {
            keyward_ca::offline::renew_issuing_ca(root_dir, &secrets_dir, years, now)?;
            println!(
                "renewed the issuing CA in {}; restart the instances one by one to serve it",
                secrets_dir.join("ca").display()
            );
        }
    }
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
