//! Starting and stopping the service: in-process for other crates' tests, or from the binary.

use crate::app::{AppState, StateParts, router};
use crate::config::{Clock, Config};
use crate::crypto::{self, Escrow};
use crate::error::{CaError, CaResult};
use crate::pki::CaMaterial;
use axum::Router;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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
    /// Opens the data dir (creating the database, CA hierarchy and secrets on first start).
    pub async fn build(config: &Config) -> CaResult<Self> {
        create_private_dir(&config.data_dir)?;
        let db = crate::db::connect(config.database_url.as_deref(), &config.data_dir).await?;
        let ca =
            CaMaterial::load_or_create(&config.data_dir, &config.clock, config.issuing_ca_years)?;
        let escrow_key = crypto::load_or_create_secret(&config.data_dir.join("escrow.key"))?;
        let escrow = Escrow::new(&escrow_key)?;
        let mut payment_keys = Vec::new();
        if let Some(file) = &config.payment_key_file {
            payment_keys.push(crypto::read_secret(file)?);
        }
        // The sandbox provider has a key of its own, used only in sandbox mode.
        let sandbox_payment_key = if config.sandbox_payments {
            let key = crypto::load_or_create_secret(&config.data_dir.join("payment-sandbox.key"))?;
            payment_keys.push(key.clone());
            Some(key)
        } else {
            None
        };
        let admin_key = crypto::load_or_create_secret(&config.data_dir.join("admin.token"))?;
        let admin_token = Zeroizing::new(hex::encode(&admin_key[..]));
        {
            let mut conn = db.acquire().await?;
            crate::staff::bootstrap(&mut conn, &admin_token, config.clock.unix()).await?;
        }
        let state = AppState::new(StateParts {
            db,
            ca,
            escrow,
            clock: config.clock.clone(),
            payment_keys,
            sandbox_payment_key,
            sandbox_sms: config.sandbox_sms,
            rate_limit: config.rate_limit,
            address_caps: config.address_caps,
            data_dir: config.data_dir.clone(),
        });
        Ok(App {
            router: router(state.clone())?,
            state,
            admin_token,
        })
    }

    /// The bootstrap admin account's bearer token (also in `<data dir>/admin.token`).
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }
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
        let (tx, rx) = oneshot::channel::<()>();
        let state = app.state.clone();
        let router = app.router.clone();
        let shutdown = async {
            let _ = rx.await;
        };
        let task = if config.plain_http {
            tokio::spawn(async move {
                let result = axum::serve(
                    listener,
                    router.into_make_service_with_connect_info::<crate::limits::Peer>(),
                )
                .with_graceful_shutdown(shutdown)
                .await;
                if let Err(e) = &result {
                    tracing::error!(error = %e, "server stopped with an error");
                }
                state.db().close().await;
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
                state.db().close().await;
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
