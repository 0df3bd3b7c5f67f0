//! A sample procurement portal (采购平台) over `keyward-verify` and the portal SDK: what a
//! supplier does with the company's key on such a site, served over HTTPS on loopback under a
//! test CA. A test and demo part, never shipped.
//!
//! - a supplier account with a password;
//! - 绑定: the account records the issuer, serial and credit code of one certificate, proven
//!   by a Web eID token over a nonce from this server (one certificate per account, one account
//!   per certificate);
//! - 登录 with the key: a token over a fresh nonce, checked by `keyward-verify` against the
//!   origin in this portal's configuration (never the browser's word), the certificate
//!   looked up among the bindings;
//! - a bid (投标) whose text the server writes, signed by the key as CMS (`signMessage`) and
//!   verified here against the server's own copy of that text and the bound certificate;
//! - a button that opens Keyward's 证书续期 for the bound key (`keyward.open`, in the page).
//!
//! Each refusal says which rule failed: `keyward-verify`'s `Rule` names, or the portal's own.
//! Everything is kept in memory.

mod routes;
mod store;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use keyward_verify::{AuthTokenVerifier, TrustAnchors};
use time::OffsetDateTime;

pub use store::{Bid, Binding};
pub use tls::TestTls;

/// The portal's one error type.
#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    /// The configuration is unusable (an origin that is not https, roots that do not read).
    #[error("configuration: {0}")]
    Config(String),
    /// The test CA or the TLS setup failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// Listening or serving failed.
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
}

/// The portal's clock: tests move it to make a nonce stale.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// How the portal is set up.
#[derive(Clone)]
pub struct PortalConfig {
    /// The portal's own origin (`https://portal.test`): tokens are checked against it.
    pub origin: String,
    /// Host names served the hostile page instead (a site beside the portal that should get
    /// nothing from the key).
    pub hostile_hosts: Vec<String>,
    /// Where to listen (a loopback address).
    pub listen: SocketAddr,
    /// The CA roots whose certificates the portal accepts, PEM.
    pub roots_pem: String,
    /// Intermediate CA certificates, PEM.
    pub intermediates_pem: String,
    /// The bridge's address as the pages use it.
    pub bridge_url: String,
    /// The built SDK (`sdk/dist`), served at `/sdk/`.
    pub sdk_dir: PathBuf,
    /// Now, for nonces and certificate validity.
    pub clock: Clock,
}

impl std::fmt::Debug for PortalConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortalConfig")
            .field("origin", &self.origin)
            .field("hostile_hosts", &self.hostile_hosts)
            .field("listen", &self.listen)
            .field("bridge_url", &self.bridge_url)
            .field("sdk_dir", &self.sdk_dir)
            .finish_non_exhaustive()
    }
}

/// The portal's state: configuration, verifier, accounts, sessions.
pub struct Portal {
    pub(crate) config: PortalConfig,
    pub(crate) verifier: AuthTokenVerifier,
    pub(crate) anchors: TrustAnchors,
    pub(crate) nonces: keyward_verify::Nonces,
    pub(crate) store: store::Store,
}

impl std::fmt::Debug for Portal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Portal")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Portal {
    /// The certificate bound to `account`, if any.
    pub fn binding(&self, account: &str) -> Option<Binding> {
        self.store.binding(account)
    }

    /// The bids `account` submitted, as verified.
    pub fn bids(&self, account: &str) -> Vec<Bid> {
        self.store.bids(account)
    }

    pub(crate) fn now(&self) -> OffsetDateTime {
        (self.config.clock)()
    }
}

/// A running portal; dropping it stops it.
#[derive(Debug)]
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its test CA.
    pub tls: TestTls,
    /// Its state, for tests to read.
    pub portal: Arc<Portal>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the portal on the current tokio runtime.
pub async fn start(config: PortalConfig) -> Result<Running, PortalError> {
    let origin = keyward_verify::parse_origin(&config.origin)
        .map_err(|e| PortalError::Config(e.to_string()))?;
    let host = origin.trim_start_matches("https://").to_owned();
    let host_name = host.split(':').next().unwrap_or_default().to_owned();
    let anchors = TrustAnchors::from_pem(&config.roots_pem, &config.intermediates_pem)
        .map_err(|e| PortalError::Config(e.to_string()))?;
    let verifier = AuthTokenVerifier::new(&origin, anchors.clone())
        .map_err(|e| PortalError::Config(e.to_string()))?;
    let mut names = vec![host_name];
    names.extend(config.hostile_hosts.iter().cloned());
    let tls = TestTls::new(&names)?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let listener = tls::TlsListener::new(listener, &tls)?;
    let portal = Arc::new(Portal {
        config,
        verifier,
        anchors,
        nonces: keyward_verify::Nonces::default(),
        store: store::Store::default(),
    });
    let app = routes::router(Arc::clone(&portal));
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the portal stopped");
        }
    });
    tracing::info!(%addr, origin = %portal.config.origin, "sample portal listening");
    Ok(Running {
        addr,
        tls,
        portal,
        task,
    })
}
