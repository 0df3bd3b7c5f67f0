//! Starting and stopping the service: in-process for other crates' tests, or from the binary.

use crate::app::{AppState, StateParts, router};
use crate::config::{Clock, Config};
use crate::crypto;
use crate::error::{CaError, CaResult};
use crate::escrow::Keyring;
use crate::pki::CaMaterial;
use axum::Router;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

/// The service assembled but not listening: for router-level tests (`tower::ServiceExt::oneshot`).
#[derive(Debug, Clone)]
pub struct App {
    pub router: Router,
    pub state: AppState,
    admin_token: Zeroizing<String>,
}

impl App {
    /// Opens the database and the secrets. With a data directory alone, everything is
    /// there and made on first start (the CA hierarchy with its root, the escrow key, the
    /// bootstrap admin token). With a secrets directory nothing is made: it must hold the
    /// issuing CA and an escrow key, and must not hold the root's key.
    pub async fn build(config: &Config) -> CaResult<Self> {
        let stateless = config.database_url.is_some() && config.secrets_dir.is_some();
        if !stateless {
            create_private_dir(&config.data_dir)?;
        }
        let secrets = config.secrets();
        let generate = config.secrets_dir.is_none();
        if !generate {
            if !secrets.is_dir() {
                return Err(CaError::Config(format!(
                    "the secrets directory {} does not exist",
                    secrets.display()
                )));
            }
            let root_key = secrets.join("ca").join("root.key");
            if root_key.exists() {
                return Err(CaError::Config(format!(
                    "{} is the root CA's key: it stays offline, with `keyward-ca root`; an instance serves with the issuing CA alone",
                    root_key.display()
                )));
            }
        }
        let (db, durability) =
            crate::db::connect_serving(config.database_url.as_deref(), &config.data_dir).await?;
        let ca = if generate {
            CaMaterial::load_or_create(secrets, &config.clock, config.issuing_ca_years)?
        } else {
            CaMaterial::load(secrets, &config.clock)?
        };
        if generate && crate::escrow::key_files(secrets)?.is_empty() {
            crypto::create_secret(&secrets.join(crate::escrow::FIRST_KEY_FILE))?;
        }
        let keyring = Arc::new(Keyring::load(secrets)?);
        let mut payment_keys = Vec::new();
        if let Some(file) = &config.payment_key_file {
            payment_keys.push(crypto::read_secret(file)?);
        }
        // The sandbox provider has a key of its own, used only in sandbox mode.
        let secret = |name: &str| {
            let path = secrets.join(name);
            if generate {
                crypto::load_or_create_secret(&path).map(Some)
            } else if path.exists() {
                crypto::read_secret(&path).map(Some)
            } else {
                Ok(None)
            }
        };
        let sandbox_payment_key = if config.sandbox_payments {
            let key = secret("payment-sandbox.key")?.ok_or_else(|| {
                CaError::Config(format!(
                    "sandbox payments need {}: make it with `keyward-ca secrets init --sandbox-payments`",
                    secrets.join("payment-sandbox.key").display()
                ))
            })?;
            payment_keys.push(key.clone());
            Some(key)
        } else {
            None
        };
        let admin_token = match secret("admin.token")? {
            Some(key) => Zeroizing::new(hex::encode(&key[..])),
            None => Zeroizing::new(String::new()),
        };
        {
            let mut conn = db.acquire().await?;
            if !admin_token.is_empty() {
                crate::staff::bootstrap(&mut conn, &admin_token, config.clock.unix()).await?;
            }
            check_one_root(&mut conn, &ca).await?;
            crate::escrow::check_at_start(
                &mut conn,
                &keyring,
                time::OffsetDateTime::now_utc().unix_timestamp(),
            )
            .await?;
        }
        let state = AppState::new(StateParts {
            db,
            durability,
            ca,
            escrow: keyring,
            clock: config.clock.clone(),
            payment_keys,
            sandbox_payment_key,
            sandbox_sms: config.sandbox_sms,
            rate_limit: config.rate_limit,
            address_caps: config.address_caps,
            trusted_proxies: config.trusted_proxies.clone(),
            data_dir: config.data_dir.clone(),
            profile: config.profile.clone(),
        });
        Ok(App {
            router: router(state.clone())?,
            state,
            admin_token,
        })
    }

    /// The bootstrap admin account's bearer token (`admin.token` among the secrets), or
    /// empty when there is none (a secrets directory without one).
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }
}

/// The database belongs to one CA: the first instance records its root, and an instance
/// with another root (its own data directory, say, where it made a hierarchy of its own)
/// refuses to serve from it.
async fn check_one_root(conn: &mut sqlx::AnyConnection, ca: &CaMaterial) -> CaResult<()> {
    let der = crate::pki::pem_to_der(&ca.root_pem, "CERTIFICATE")
        .ok_or_else(|| CaError::Corrupt("root.crt is not PEM".into()))?;
    let fingerprint = crypto::sha256_hex(&der);
    sqlx::query(
        "INSERT INTO settings (name, value, updated_at) VALUES ('ca_root_sha256', $1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(&fingerprint)
    .bind(time::OffsetDateTime::now_utc().unix_timestamp())
    .execute(&mut *conn)
    .await?;
    let recorded = crate::escrow::setting(conn, "ca_root_sha256")
        .await?
        .unwrap_or_default();
    if recorded != fingerprint {
        return Err(CaError::Config(format!(
            "this database belongs to the CA whose root has SHA-256 {recorded}, not {fingerprint}: serve it with that CA's secrets (--secrets-dir)"
        )));
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> CaResult<()> {
    std::fs::create_dir_all(dir).map_err(|e| CaError::io(dir, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| CaError::io(dir, e))?;
    }
    Ok(())
}

/// Entry point for running the service.
#[derive(Debug)]
pub struct Server;

impl Server {
    /// Builds the service and serves plain HTTP on `config.listen` until the handle is shut down.
    pub async fn start(config: Config) -> CaResult<ServerHandle> {
        if config.plain_http && !config.listen.ip().is_loopback() {
            return Err(CaError::Config(format!(
                "plain HTTP only on a loopback address, not on {}: serve TLS instead",
                config.listen
            )));
        }
        let app = App::build(&config).await?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| CaError::Config(format!("cannot listen on {}: {e}", config.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| CaError::Config(format!("no local address: {e}")))?;
        // Known to the database before the first request: an escrow rotation waits for it.
        // Named by its machine and address, for the people reading about it.
        let instance = crate::db::new_id("in")?;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let named = match host.trim() {
            "" => addr.to_string(),
            host => format!("{host}/{addr}"),
        };
        {
            let mut conn = app.state.db().acquire().await?;
            crate::instances::beat(
                &mut conn,
                &instance,
                &named,
                time::OffsetDateTime::now_utc().unix_timestamp(),
                config.heartbeat_seconds,
                &app.state.escrow().key_ids(),
            )
            .await?;
        }
        let heartbeat = crate::instances::spawn(
            app.state.db().clone(),
            app.state.keyring(),
            config.clock.clone(),
            instance.clone(),
            named,
            config.heartbeat_seconds,
        );
        let stopped = {
            let state = app.state.clone();
            move || async move {
                heartbeat.abort();
                if let Err(e) = crate::instances::remove(state.db(), &instance).await {
                    tracing::warn!(error = %e, "instance not removed from the database");
                }
                state.db().close().await;
            }
        };
        let (tx, rx) = oneshot::channel::<()>();
        let router = app.router.clone();
        let shutdown = async {
            let _ = rx.await;
        };
        let task = if config.plain_http {
            tokio::spawn(async move {
                let result = axum::serve(
                    crate::tls::PlainListener(listener),
                    router.into_make_service_with_connect_info::<crate::limits::Peer>(),
                )
                .with_graceful_shutdown(shutdown)
                .await;
                if let Err(e) = &result {
                    tracing::error!(error = %e, "server stopped with an error");
                }
                stopped().await;
            })
        } else {
            let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
            if !addr.ip().is_unspecified() {
                names.push(addr.ip().to_string());
            }
            names.extend(config.tls_names.iter().cloned());
            names.sort();
            names.dedup();
            let (chain, key) = app
                .state
                .ca()
                // Clients check TLS validity against their own clocks: the service
                // certificate follows the system clock, whatever the business clock says.
                .issue_service_certificate(&names, time::OffsetDateTime::now_utc())?;
            let tls =
                crate::tls::TlsListener::new(listener, crate::tls::server_config(chain, key)?)
                    .map_err(|e| CaError::Config(format!("TLS listener: {e}")))?;
            tokio::spawn(async move {
                let result = axum::serve(
                    tls,
                    router.into_make_service_with_connect_info::<crate::limits::Peer>(),
                )
                .with_graceful_shutdown(shutdown)
                .await;
                if let Err(e) = &result {
                    tracing::error!(error = %e, "server stopped with an error");
                }
                stopped().await;
            })
        };
        tracing::info!(%addr, data_dir = %config.data_dir.display(), "keyward-ca listening");
        Ok(ServerHandle {
            addr,
            tls: !config.plain_http,
            root_pem: app.state.ca().root_pem.clone(),
            data_dir: config.data_dir,
            admin_token: Zeroizing::new(app.admin_token().to_owned()),
            clock: config.clock,
            shutdown: Some(tx),
            task: Some(task),
        })
    }
}

/// A running service.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    tls: bool,
    root_pem: String,
    data_dir: PathBuf,
    admin_token: Zeroizing<String>,
    clock: Clock,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// The bound address (the real port when configured with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// `https://localhost:<port>` (TLS) or `http://<addr>` (plain HTTP).
    pub fn base_url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.addr.port())
        } else {
            format!("http://{}", self.addr)
        }
    }
    /// The CA's root certificate (PEM): the one trust anchor a client pins.
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }
    /// The clock the service reads (tests may advance it).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }
    /// Stops accepting, lets requests in flight finish, closes the database.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
