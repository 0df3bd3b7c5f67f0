//! The client side of the Keyward CA online service.
//!
//! [`CaClient`] speaks the service's HTTP API with the wire types of `keyward-ca-api`:
//! TLS with exactly one pinned root (the CA's own; no other root is trusted), plain HTTP
//! only to loopback, timeouts, retries only for calls that change nothing, and one error
//! type that says what went wrong in terms the workflows can act on. Requests about a key
//! are signed by the key through a [`RequestSigner`]; the signing input is the one
//! `keyward-ca-api` defines. A business is reached with its own secret or its key's
//! signature ([`BusinessAuth`]).
//!
//! [`credentials`] keeps the service credential (the staff token the issuing station, the
//! reviewer tools and the demo use) in the OS keyring. A PIN is never stored there.

pub mod credentials;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keyward_ca_api::auth::{
    BUSINESS_SECRET_HEADER, NEXT_NONCE_HEADER, NONCE_HEADER, SIGNATURE_HEADER,
};
use keyward_ca_api::{
    ApiError, AuditLog, Business, BusinessForm, BusinessList, CaChain, CaProfile,
    CertificateHistory, CertifyRequest, ChangeForm, CodeSent, CreatedBusiness, CsrSubmission,
    ErrorCode, Health, Invoice, InvoiceDetails, IssuedCertificate, KeyStanding, KeyStatus,
    NonceGrant, NonceRequest, OpenBusinessNotice, PaymentRequest, PaymentStatus, RedeemCodeRequest,
    RefundForm, RegisterKeyRequest, RegisteredKey, RenewalApplication, ReviewDecision, ReviewQueue,
    SandboxOutcome, Secret, SmsOutbox, TransportPinRelease, UnlockApplication, UnlockAuthorisation,
    body_sha256, request_purpose, signing_input,
};
use reqwest::Method;
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Digest;

/// Largest pinned-root file read, in bytes: one certificate is a few kilobytes.
pub const ROOT_FILE_MAX_BYTES: usize = 64 * 1024;

/// Everything that can go wrong talking to the CA.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The service could not be reached (no network, refused, DNS).
    #[error("cannot reach the CA service at {url}: {reason}")]
    Offline {
        /// Where.
        url: String,
        /// Why, as the transport says.
        reason: String,
    },
    /// The TLS connection failed: not the pinned CA, or a broken handshake.
    #[error("the CA service's identity could not be verified: {0}")]
    Tls(String),
    /// The service did not answer in time.
    #[error("the CA service did not answer in time")]
    Timeout,
    /// The service refused the request with one of its error codes.
    #[error("the CA service refused ({status} {code:?}): {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The service's stable code.
        code: ErrorCode,
        /// Its hint, for logs.
        message: String,
        /// With `unlock_under_way`: the open business in the way, masked.
        open_business: Option<OpenBusinessNotice>,
    },
    /// The service failed (5xx) or answered an error without its error body.
    #[error("the CA service failed with HTTP {status}")]
    Server {
        /// HTTP status.
        status: u16,
    },
    /// The answer could not be read.
    #[error("the CA service's answer could not be read: {0}")]
    Malformed(String),
    /// The key could not sign the request; the signer's own error is kept.
    #[error("the key could not sign the request: {0}")]
    Signer(Box<dyn std::error::Error + Send + Sync>),
    /// The client is set up wrongly (bad address, bad pinned root).
    #[error("CA client configuration: {0}")]
    Config(String),
    /// The OS keyring failed.
    #[error("OS keyring: {0}")]
    Credentials(String),
}

impl ClientError {
    /// The service's code, for a refusal.
    pub fn api_code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Could the same call work if tried again later (connection or server trouble)?
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ClientError::Offline { .. } | ClientError::Timeout | ClientError::Server { .. }
        )
    }
}

/// Where the service is and how to trust it.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL, e.g. `https://ca.example:8443`; `http://` only for a loopback address.
    pub base_url: String,
    /// The CA's root certificate (PEM, exactly one certificate), the only one trusted for
    /// TLS and the anchor renewed certificates are checked against. Required for https.
    pub root_pem: Option<String>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Open a new connection for every request instead of keeping them alive (tests that
    /// cut connections one request at a time).
    pub fresh_connections: bool,
}

impl ClientConfig {
    /// A configuration with the default timeout (20 s).
    pub fn new(base_url: impl Into<String>, root_pem: Option<String>) -> Self {
        ClientConfig {
            base_url: base_url.into(),
            root_pem,
            timeout: Duration::from_secs(20),
            fresh_connections: false,
        }
    }
}

/// The one pinned root: its DER and SHA-256 fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedRoot {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// SHA-256 of the DER, upper-case hex pairs joined by colons (as openssl prints it).
    pub fingerprint: String,
}

impl PinnedRoot {
    /// Reads a pinned root: a PEM text of at most [`ROOT_FILE_MAX_BYTES`] holding exactly
    /// one certificate, which must parse. A bundle of several is refused: trusting all of
    /// them while showing one would be a lie.
    pub fn from_pem(pem: &str) -> Result<Self, ClientError> {
        if pem.len() > ROOT_FILE_MAX_BYTES {
            return Err(ClientError::Config(format!(
                "the pinned root file is larger than {} KiB; it should hold one certificate",
                ROOT_FILE_MAX_BYTES / 1024
            )));
        }
        let count = pem.matches("-----BEGIN CERTIFICATE-----").count();
        if count != 1 {
            return Err(ClientError::Config(format!(
                "the pinned root must be exactly one certificate, this file holds {count}"
            )));
        }
        let der = keyward_pki::pem::decode(pem, "CERTIFICATE")
            .map_err(|e| ClientError::Config(format!("pinned root: {e}")))?;
        x509_parser::parse_x509_certificate(&der)
            .map_err(|e| ClientError::Config(format!("pinned root: {e}")))?;
        Ok(PinnedRoot {
            fingerprint: fingerprint(&der),
            der,
        })
    }
}

/// The largest blank form the client accepts from the CA.
pub const FORM_MAX_BYTES: usize = 10 * 1024 * 1024;

/// A blank form the CA hands out: its bytes and the file extension they call for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormFile {
    /// `"pdf"` or `"html"`.
    pub extension: &'static str,
    /// The file as served.
    pub bytes: Vec<u8>,
}

/// SHA-256 fingerprint of a DER certificate, `AB:CD:…`.
pub fn fingerprint(der: &[u8]) -> String {
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Whether `base` (an `http://` URL) names a loopback host.
fn loopback_http(base: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(base) else {
        return false;
    };
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Something that signs requests about one key: the key itself, through the token.
pub trait RequestSigner {
    /// The key's serial number, as the CA registered it.
    fn key_serial(&self) -> &str;
    /// Signs `input` with the key's scheme (the signer hashes), returning the signature in
    /// its X.509 form.
    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>>;
}

/// How a request reaches a business: its secret, or its key's signature.
#[derive(Clone, Copy)]
pub enum BusinessAuth<'a> {
    /// The secret the business was created with (journaled by the client that made it).
    Secret(&'a Secret),
    /// A fresh signature by the business's key.
    Key(&'a dyn RequestSigner),
}

impl std::fmt::Debug for BusinessAuth<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BusinessAuth::Secret(_) => f.write_str("BusinessAuth::Secret(***)"),
            BusinessAuth::Key(s) => write!(f, "BusinessAuth::Key({})", s.key_serial()),
        }
    }
}

/// A client of the CA online service.
#[derive(Debug, Clone)]
pub struct CaClient {
    base: String,
    http: Client,
    admin: Option<Secret>,
    root: Option<PinnedRoot>,
    next_nonces: NextNonces,
}

/// The nonces the CA put in its answers to signed requests ([`NEXT_NONCE_HEADER`]), the
/// latest per key: the next signed request about that key spends it instead of asking
/// `POST /v1/nonces` first. Shared by a client's clones; each is taken once. A nonce is no
/// secret (only the key's signature over it counts), so keeping one here hands nobody
/// anything.
#[derive(Debug, Clone, Default)]
struct NextNonces(Arc<Mutex<HashMap<String, (String, Instant)>>>);

impl NextNonces {
    /// A kept nonce is used only this long after it came: the CA keeps one five minutes.
    const USE_WITHIN: Duration = Duration::from_secs(4 * 60);

    fn take(&self, key_serial: &str) -> Option<String> {
        let (nonce, at) = self.0.lock().ok()?.remove(key_serial)?;
        (at.elapsed() < Self::USE_WITHIN).then_some(nonce)
    }

    fn keep(&self, key_serial: &str, resp: &Response) {
        let Some(nonce) = resp
            .headers()
            .get(NEXT_NONCE_HEADER)
            .and_then(|v| v.to_str().ok())
        else {
            return;
        };
        if let Ok(mut kept) = self.0.lock() {
            kept.insert(key_serial.to_owned(), (nonce.to_owned(), Instant::now()));
        }
    }
}

const RETRIES: usize = 2;

/// Whether an I/O error, or one it wraps (TLS wraps the handshake's in its own), says the
/// connection was closed or reset.
fn connection_cut(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe
    ) || e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<std::io::Error>())
        .is_some_and(connection_cut)
}

fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl CaClient {
    /// Builds a client. An https URL needs the pinned root (exactly one certificate); plain
    /// http is refused unless the host is loopback.
    pub fn new(config: &ClientConfig) -> Result<Self, ClientError> {
        let base = config.base_url.trim_end_matches('/').to_owned();
        let mut builder = Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("keyward/", env!("CARGO_PKG_VERSION")))
            // A redirect could lead a request, and its headers, elsewhere.
            .redirect(reqwest::redirect::Policy::none());
        if config.fresh_connections {
            builder = builder.pool_max_idle_per_host(0);
        }
        let root = match config.root_pem.as_deref() {
            Some(pem) => Some(PinnedRoot::from_pem(pem)?),
            None => None,
        };
        if base.starts_with("https://") {
            let root = root.as_ref().ok_or_else(|| {
                ClientError::Config("an https service needs its root certificate pinned".into())
            })?;
            let cert = reqwest::Certificate::from_der(&root.der)
                .map_err(|e| ClientError::Config(format!("pinned root: {e}")))?;
            builder = builder
                .tls_built_in_root_certs(false)
                .https_only(true)
                .add_root_certificate(cert);
        } else if base.starts_with("http://") {
            if !loopback_http(&base) {
                return Err(ClientError::Config(format!(
                    "plain http only to this computer (loopback), not to {base}; use https"
                )));
            }
        } else {
            return Err(ClientError::Config(format!("not an http(s) URL: {base}")));
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Config(e.to_string()))?;
        Ok(CaClient {
            base,
            http,
            admin: None,
            root,
            next_nonces: NextNonces::default(),
        })
    }

    /// The pinned root, if any (an https client always has one).
    pub fn pinned_root(&self) -> Option<&PinnedRoot> {
        self.root.as_ref()
    }

    /// Uses this admin credential for the admin endpoints.
    pub fn with_admin(mut self, token: Secret) -> Self {
        self.admin = Some(token);
        self
    }

    /// The service's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn transport(&self, e: reqwest::Error) -> ClientError {
        let url = e
            .url()
            .map(ToString::to_string)
            .unwrap_or_else(|| self.base.clone());
        if e.is_timeout() {
            return ClientError::Timeout;
        }
        // reqwest folds TLS failures into connect errors; the causes below it name them
        // (the top message is left out: it holds the URL, which may say anything).
        let mut causes = String::new();
        let mut cut = false;
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            causes.push_str(": ");
            causes.push_str(&s.to_string());
            // A connection closed or reset, even mid-handshake, is the network's doing, not
            // a certificate's: it may be tried again.
            cut |= s
                .downcast_ref::<std::io::Error>()
                .is_some_and(connection_cut);
            src = s.source();
        }
        let chain = format!("{e}{causes}");
        let lower = causes.to_ascii_lowercase();
        if cut {
            ClientError::Offline { url, reason: chain }
        } else if lower.contains("certificate")
            || lower.contains("tls")
            || lower.contains("handshake")
        {
            ClientError::Tls(chain)
        } else if e.is_decode() || e.is_body() {
            ClientError::Malformed(chain)
        } else {
            ClientError::Offline { url, reason: chain }
        }
    }

    fn read<T: DeserializeOwned>(&self, resp: Response) -> Result<T, ClientError> {
        let status = resp.status();
        let bytes = resp.bytes().map_err(|e| self.transport(e))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| ClientError::Malformed(e.to_string()));
        }
        match serde_json::from_slice::<ApiError>(&bytes) {
            Ok(err) if !status.is_server_error() => Err(ClientError::Api {
                status: status.as_u16(),
                code: err.code,
                message: err.message,
                open_business: err.open_business,
            }),
            _ if status.is_server_error() => Err(ClientError::Server {
                status: status.as_u16(),
            }),
            _ => Err(ClientError::Malformed(format!(
                "HTTP {status} without an error body"
            ))),
        }
    }

    /// Sends a request built fresh for every try; only idempotent calls are retried.
    fn send<T: DeserializeOwned>(
        &self,
        idempotent: bool,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<T, ClientError> {
        let mut attempt = 0;
        loop {
            let outcome = build()
                .send()
                .map_err(|e| self.transport(e))
                .and_then(|r| self.read(r));
            match outcome {
                Err(e) if idempotent && e.is_transient() && attempt < RETRIES => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "CA call failed; trying again");
                    std::thread::sleep(Duration::from_millis(200 * attempt as u64));
                }
                other => return other,
            }
        }
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(true, || self.http.get(self.url(path)))
    }

    fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Malformed(e.to_string()))?;
        self.send(false, || self.json(Method::POST, path, bytes.clone()))
    }

    fn json(&self, method: Method, path: &str, body: Vec<u8>) -> RequestBuilder {
        self.http
            .request(method, self.url(path))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
    }

    fn admin_token(&self) -> Result<&Secret, ClientError> {
        self.admin.as_ref().ok_or_else(|| {
            ClientError::Config("no admin credential is stored for this CA service".into())
        })
    }

    fn admin_get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let token = self.admin_token()?;
        self.send(true, || {
            self.http.get(self.url(path)).bearer_auth(token.expose())
        })
    }

    fn admin_post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let token = self.admin_token()?;
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Malformed(e.to_string()))?;
        self.send(false, || {
            self.json(Method::POST, path, bytes.clone())
                .bearer_auth(token.expose())
        })
    }

    /// A request about a key, signed by the key over a fresh nonce: the one the CA's last
    /// answer about this key carried, or else one asked for. Never retried once the CA has
    /// accepted the signature: a nonce is single-use, and the caller decides whether to sign
    /// again. The one retry is for a kept nonce the CA no longer holds (expired, or dropped
    /// for newer ones): that refusal comes before anything is done, so the request is signed
    /// again over a nonce asked for. `body` None sends no body (a signed GET).
    fn signed_request<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: &str,
        signer: &dyn RequestSigner,
    ) -> Result<T, ClientError> {
        let serial = signer.key_serial();
        if let Some(kept) = self.next_nonces.take(serial) {
            match self.signed_once(&method, path, body.clone(), content_type, signer, &kept) {
                Err(ClientError::Api {
                    code: ErrorCode::NonceInvalid | ErrorCode::NonceReplayed,
                    ..
                }) => {}
                other => return other,
            }
        }
        let fresh = self.nonce(serial)?.nonce;
        self.signed_once(&method, path, body, content_type, signer, &fresh)
    }

    fn signed_once<T: DeserializeOwned>(
        &self,
        method: &Method,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: &str,
        signer: &dyn RequestSigner,
        nonce: &str,
    ) -> Result<T, ClientError> {
        let bytes = body.as_deref().unwrap_or_default();
        let input = signing_input(
            &request_purpose(method.as_str(), path),
            nonce,
            &body_sha256(bytes),
        );
        let signature = signer.sign(&input).map_err(ClientError::Signer)?;
        let mut req = self
            .http
            .request(method.clone(), self.url(path))
            .header(NONCE_HEADER, nonce)
            .header(SIGNATURE_HEADER, hex::encode(signature));
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(b);
        }
        let resp = req.send().map_err(|e| self.transport(e))?;
        self.next_nonces.keep(signer.key_serial(), &resp);
        self.read(resp)
    }

    fn signed<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        signer: &dyn RequestSigner,
    ) -> Result<T, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Malformed(e.to_string()))?;
        self.signed_request(Method::POST, path, Some(bytes), "application/json", signer)
    }

    fn signed_get<T: DeserializeOwned>(
        &self,
        path: &str,
        signer: &dyn RequestSigner,
    ) -> Result<T, ClientError> {
        self.signed_request(Method::GET, path, None, "", signer)
    }

    /// A request on a business: with its secret (idempotent reads retried), or signed by its
    /// key.
    fn on_business<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
        auth: BusinessAuth<'_>,
    ) -> Result<T, ClientError> {
        match auth {
            BusinessAuth::Secret(secret) => {
                let idempotent = method == Method::GET;
                self.send(idempotent, || {
                    let mut req = self
                        .http
                        .request(method.clone(), self.url(path))
                        .header(BUSINESS_SECRET_HEADER, secret.expose());
                    if let Some((bytes, ct)) = &body {
                        req = req
                            .header(reqwest::header::CONTENT_TYPE, *ct)
                            .body(bytes.clone());
                    }
                    req
                })
            }
            BusinessAuth::Key(signer) => {
                let (bytes, ct) = match body {
                    Some((b, ct)) => (Some(b), ct),
                    None => (None, ""),
                };
                self.signed_request(method, path, bytes, ct, signer)
            }
        }
    }

    fn business_post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        auth: BusinessAuth<'_>,
    ) -> Result<T, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Malformed(e.to_string()))?;
        self.on_business(Method::POST, path, Some((bytes, "application/json")), auth)
    }

    /// `GET /healthz`.
    pub fn health(&self) -> Result<Health, ClientError> {
        self.get("/healthz")
    }

    /// `GET /healthz`, and the service's clock as its `Date` header gives it (an HTTP-date,
    /// as sent), for a clock-skew check.
    pub fn health_and_date(&self) -> Result<(Health, Option<String>), ClientError> {
        let response = self
            .http
            .get(self.url("/healthz"))
            .send()
            .map_err(|e| self.transport(e))?;
        let date = response
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok((self.read(response)?, date))
    }

    /// `GET /v1/ca/chain`.
    pub fn chain(&self) -> Result<CaChain, ClientError> {
        self.get("/v1/ca/chain")
    }

    /// `GET /v1/ca/profile`: the CA's name and support contacts.
    pub fn profile(&self) -> Result<CaProfile, ClientError> {
        self.get("/v1/ca/profile")
    }

    /// `GET /v1/forms/seal`: the CA's blank electronic seal application form, to print,
    /// stamp and scan before 申请印章. A PDF when the CA holds one, else an HTML page.
    pub fn seal_form(&self) -> Result<FormFile, ClientError> {
        let resp = self
            .http
            .get(self.url("/v1/forms/seal"))
            .send()
            .map_err(|e| self.transport(e))?;
        if !resp.status().is_success() {
            return Err(self.read::<serde_json::Value>(resp).err().unwrap_or(
                ClientError::Malformed("an error status with a success body".into()),
            ));
        }
        let pdf = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/pdf"));
        let bytes = resp.bytes().map_err(|e| self.transport(e))?;
        if bytes.len() > FORM_MAX_BYTES {
            return Err(ClientError::Malformed(format!(
                "the seal form is {} bytes, more than {FORM_MAX_BYTES}",
                bytes.len()
            )));
        }
        if pdf && !bytes.starts_with(b"%PDF-") {
            return Err(ClientError::Malformed(
                "the seal form says it is a PDF but is not one".into(),
            ));
        }
        Ok(FormFile {
            extension: if pdf { "pdf" } else { "html" },
            bytes: bytes.to_vec(),
        })
    }

    /// A single-use nonce for a request about `key_serial`.
    pub fn nonce(&self, key_serial: &str) -> Result<NonceGrant, ClientError> {
        self.post(
            "/v1/nonces",
            &NonceRequest {
                key_serial: key_serial.to_owned(),
            },
        )
    }

    /// The one public read about a key: awaiting activation, and what waits to be
    /// installed. An unknown key reads as one with nothing waiting.
    pub fn standing(&self, serial: &str) -> Result<KeyStanding, ClientError> {
        self.get(&format!("/v1/keys/{}/standing", path_segment(serial)))
    }

    /// Where a key stands at the CA, signed by the key.
    pub fn key_status(&self, signer: &dyn RequestSigner) -> Result<KeyStatus, ClientError> {
        self.signed_get(
            &format!("/v1/keys/{}", path_segment(signer.key_serial())),
            signer,
        )
    }

    /// Every business of a key (办理进度查询), signed by the key.
    pub fn businesses(&self, signer: &dyn RequestSigner) -> Result<BusinessList, ClientError> {
        self.signed_get(
            &format!("/v1/keys/{}/businesses", path_segment(signer.key_serial())),
            signer,
        )
    }

    /// A key's certificates, signed by the key.
    pub fn certificates(
        &self,
        signer: &dyn RequestSigner,
    ) -> Result<CertificateHistory, ClientError> {
        self.signed_get(
            &format!(
                "/v1/keys/{}/certificates",
                path_segment(signer.key_serial())
            ),
            signer,
        )
    }

    /// One business with its timeline.
    pub fn business(&self, id: &str, auth: BusinessAuth<'_>) -> Result<Business, ClientError> {
        self.on_business(
            Method::GET,
            &format!("/v1/businesses/{}", path_segment(id)),
            None,
            auth,
        )
    }

    /// Asks for an activation code to the handler of record; keep the answer's ticket for
    /// [`CaClient::redeem_activation_code`].
    pub fn send_activation_code(&self, serial: &str) -> Result<CodeSent, ClientError> {
        self.post(
            &format!("/v1/keys/{}/activation/code", path_segment(serial)),
            &serde_json::json!({}),
        )
    }

    /// Redeems the activation code, with the ticket it was sent under, for the transport PIN.
    pub fn redeem_activation_code(
        &self,
        serial: &str,
        code: &str,
        ticket: &Secret,
    ) -> Result<TransportPinRelease, ClientError> {
        self.post(
            &format!("/v1/keys/{}/activation/redeem", path_segment(serial)),
            &RedeemCodeRequest {
                code: Secret::new(code),
                ticket: Some(ticket.clone()),
            },
        )
    }

    /// Proves possession of the key; the CA records the activation time.
    pub fn confirm_activation(&self, signer: &dyn RequestSigner) -> Result<KeyStatus, ClientError> {
        let path = format!(
            "/v1/keys/{}/activation/confirm",
            path_segment(signer.key_serial())
        );
        self.signed(&path, &serde_json::json!({}), signer)
    }

    /// Applies for renewal, signed by the current key.
    pub fn apply_renewal(
        &self,
        application: &RenewalApplication,
        signer: &dyn RequestSigner,
    ) -> Result<CreatedBusiness, ClientError> {
        let path = format!("/v1/keys/{}/renewals", path_segment(signer.key_serial()));
        self.signed(&path, application, signer)
    }

    /// The payment request of a business (created on first call, the same one after).
    pub fn payment(
        &self,
        business_id: &str,
        auth: BusinessAuth<'_>,
    ) -> Result<PaymentRequest, ClientError> {
        self.business_post(
            &format!("/v1/businesses/{}/payment", path_segment(business_id)),
            &serde_json::json!({}),
            auth,
        )
    }

    /// The sandbox payer pays (or fails) a payment (a sandbox CA only).
    pub fn sandbox_pay(
        &self,
        payment_id: &str,
        outcome: PaymentStatus,
    ) -> Result<PaymentRequest, ClientError> {
        self.post(
            &format!("/sandbox/payments/{}/complete", path_segment(payment_id)),
            &SandboxOutcome { outcome },
        )
    }

    /// Posts the new key's CSR, authorised by the current key.
    pub fn submit_renewal_csr(
        &self,
        business_id: &str,
        csr_pem: &str,
        signer: &dyn RequestSigner,
    ) -> Result<IssuedCertificate, ClientError> {
        let path = format!(
            "/v1/keys/{}/renewals/{}/certificate",
            path_segment(signer.key_serial()),
            path_segment(business_id)
        );
        self.signed(
            &path,
            &CsrSubmission {
                csr_pem: csr_pem.to_owned(),
            },
            signer,
        )
    }

    /// Confirms the renewed certificate is installed, signed by the new key. The answer
    /// carries the seal business opened to remake the key's seal, with its secret.
    pub fn confirm_renewal_installed(
        &self,
        business_id: &str,
        signer: &dyn RequestSigner,
    ) -> Result<keyward_ca_api::RenewalInstalled, ClientError> {
        let path = format!(
            "/v1/keys/{}/renewals/{}/installed",
            path_segment(signer.key_serial()),
            path_segment(business_id)
        );
        self.signed(&path, &serde_json::json!({}), signer)
    }

    /// Applies to change the organisation's name or address, signed by the key.
    pub fn apply_change(
        &self,
        form: &ChangeForm,
        signer: &dyn RequestSigner,
    ) -> Result<CreatedBusiness, ClientError> {
        let path = format!("/v1/keys/{}/changes", path_segment(signer.key_serial()));
        self.signed(&path, form, signer)
    }

    /// Applies for (or changes) the key's electronic seal, signed by the key.
    pub fn apply_seal(
        &self,
        application: &keyward_ca_api::SealApplication,
        signer: &dyn RequestSigner,
    ) -> Result<CreatedBusiness, ClientError> {
        let path = format!("/v1/keys/{}/seals", path_segment(signer.key_serial()));
        self.signed(&path, application, signer)
    }

    /// The key's latest electronic seal, as the CA made it; signed by the key.
    pub fn seal(
        &self,
        signer: &dyn RequestSigner,
    ) -> Result<keyward_ca_api::SealDocument, ClientError> {
        self.signed_get(
            &format!("/v1/keys/{}/seal", path_segment(signer.key_serial())),
            signer,
        )
    }

    /// Confirms the seal of a seal business is installed on the key, signed by the key.
    pub fn confirm_seal_installed(
        &self,
        business_id: &str,
        signer: &dyn RequestSigner,
    ) -> Result<Business, ClientError> {
        let path = format!(
            "/v1/keys/{}/seals/{}/installed",
            path_segment(signer.key_serial()),
            path_segment(business_id)
        );
        self.signed(&path, &serde_json::json!({}), signer)
    }

    /// Applies to unlock a key (忘记密码): no key signature (the PIN is forgotten). Keep the
    /// answer's secret: it is the only way back to this unlock.
    pub fn apply_unlock(
        &self,
        serial: &str,
        application: &UnlockApplication,
    ) -> Result<CreatedBusiness, ClientError> {
        self.post(
            &format!("/v1/keys/{}/unlocks", path_segment(serial)),
            application,
        )
    }

    /// Sends the unlock SMS code once the unlock is approved.
    pub fn send_unlock_code(
        &self,
        serial: &str,
        business_id: &str,
        secret: &Secret,
    ) -> Result<CodeSent, ClientError> {
        self.business_post(
            &format!(
                "/v1/keys/{}/unlocks/{}/code",
                path_segment(serial),
                path_segment(business_id)
            ),
            &serde_json::json!({}),
            BusinessAuth::Secret(secret),
        )
    }

    /// Redeems the unlock code for the authorisation (current and fresh SO PIN).
    pub fn unlock_authorisation(
        &self,
        serial: &str,
        business_id: &str,
        secret: &Secret,
        code: &str,
    ) -> Result<UnlockAuthorisation, ClientError> {
        self.business_post(
            &format!(
                "/v1/keys/{}/unlocks/{}/authorisation",
                path_segment(serial),
                path_segment(business_id)
            ),
            &RedeemCodeRequest {
                code: Secret::new(code),
                ticket: None,
            },
            BusinessAuth::Secret(secret),
        )
    }

    /// Confirms the SO PIN rotation and the new user PIN, signed by the key.
    pub fn confirm_unlock(
        &self,
        business_id: &str,
        signer: &dyn RequestSigner,
    ) -> Result<Business, ClientError> {
        let path = format!(
            "/v1/keys/{}/unlocks/{}/confirm",
            path_segment(signer.key_serial()),
            path_segment(business_id)
        );
        self.signed(&path, &serde_json::json!({}), signer)
    }

    /// Uploads an attachment (JPEG, PNG or PDF, at most 5 MiB) to a business.
    pub fn upload_attachment(
        &self,
        business_id: &str,
        auth: BusinessAuth<'_>,
        kind: keyward_ca_api::AttachmentKind,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<keyward_ca_api::Attachment, ClientError> {
        let path = format!(
            "/v1/businesses/{}/attachments?kind={}",
            path_segment(business_id),
            kind.as_str()
        );
        self.on_business(Method::POST, &path, Some((bytes, content_type)), auth)
    }

    /// Hands a business with its attachments to the CA's reviewers.
    pub fn submit_for_review(
        &self,
        business_id: &str,
        auth: BusinessAuth<'_>,
    ) -> Result<Business, ClientError> {
        self.business_post(
            &format!("/v1/businesses/{}/submit", path_segment(business_id)),
            &serde_json::json!({}),
            auth,
        )
    }

    /// Orders a business whose key cannot sign (new application, add a certificate,
    /// re-issue); keep the answer's secret.
    pub fn order(&self, form: &BusinessForm) -> Result<CreatedBusiness, ClientError> {
        self.post("/v1/businesses", form)
    }

    /// A fresh secret for a business of the signing key (the old one stops working): for
    /// taking up a business whose creation answer was lost.
    pub fn renew_business_secret(
        &self,
        business_id: &str,
        signer: &dyn RequestSigner,
    ) -> Result<CreatedBusiness, ClientError> {
        self.signed(
            &format!("/v1/businesses/{}/secret", path_segment(business_id)),
            &serde_json::json!({}),
            signer,
        )
    }

    /// Asks for the refund of a business.
    pub fn refund(
        &self,
        business_id: &str,
        auth: BusinessAuth<'_>,
        form: &RefundForm,
    ) -> Result<CreatedBusiness, ClientError> {
        self.business_post(
            &format!("/v1/businesses/{}/refund", path_segment(business_id)),
            form,
            auth,
        )
    }

    /// Asks for the electronic invoice of a finished, paid business.
    pub fn invoice(
        &self,
        business_id: &str,
        auth: BusinessAuth<'_>,
        details: &InvoiceDetails,
    ) -> Result<Invoice, ClientError> {
        self.business_post(
            &format!("/v1/businesses/{}/invoice", path_segment(business_id)),
            details,
            auth,
        )
    }

    /// Staff (station): issue an organisation certificate over a CSR.
    pub fn certify(&self, request: &CertifyRequest) -> Result<IssuedCertificate, ClientError> {
        self.admin_post("/admin/v1/certify", request)
    }

    /// Staff (station): register a key the issuing station provisioned.
    pub fn register_key(&self, request: &RegisterKeyRequest) -> Result<RegisteredKey, ClientError> {
        self.admin_post("/admin/v1/keys", request)
    }

    /// Staff: the SMS outbox (a sandbox CA only).
    pub fn sms_outbox(&self) -> Result<SmsOutbox, ClientError> {
        self.admin_get("/admin/v1/sms")
    }

    /// Staff (auditor): the audit log.
    pub fn audit_log(&self) -> Result<AuditLog, ClientError> {
        self.admin_get("/admin/v1/audit")
    }

    /// Staff (reviewer): businesses waiting for a reviewer.
    pub fn review_queue(&self) -> Result<ReviewQueue, ClientError> {
        self.admin_get("/admin/v1/reviews")
    }

    /// Staff (reviewer): approve a business under review.
    pub fn approve(
        &self,
        business_id: &str,
        decision: &ReviewDecision,
    ) -> Result<Business, ClientError> {
        self.admin_post(
            &format!("/admin/v1/reviews/{}/approve", path_segment(business_id)),
            decision,
        )
    }

    /// Staff (reviewer): reject a business under review.
    pub fn reject(
        &self,
        business_id: &str,
        decision: &ReviewDecision,
    ) -> Result<Business, ClientError> {
        self.admin_post(
            &format!("/admin/v1/reviews/{}/reject", path_segment(business_id)),
            decision,
        )
    }

    /// Staff (station): mark an accepted business done.
    pub fn complete(
        &self,
        business_id: &str,
        decision: &ReviewDecision,
    ) -> Result<Business, ClientError> {
        self.admin_post(
            &format!(
                "/admin/v1/businesses/{}/complete",
                path_segment(business_id)
            ),
            decision,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(path_segment("ab12-_.~"), "ab12-_.~");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn https_needs_a_pinned_root_and_odd_urls_are_refused() {
        assert!(matches!(
            CaClient::new(&ClientConfig::new("https://ca.example", None)),
            Err(ClientError::Config(_))
        ));
        assert!(matches!(
            CaClient::new(&ClientConfig::new("ftp://ca.example", None)),
            Err(ClientError::Config(_))
        ));
        let bad_root = ClientConfig::new("https://ca.example", Some("not a pem".into()));
        assert!(matches!(
            CaClient::new(&bad_root),
            Err(ClientError::Config(_))
        ));
        assert!(CaClient::new(&ClientConfig::new("http://127.0.0.1:1", None)).is_ok());
        assert!(CaClient::new(&ClientConfig::new("http://[::1]:1", None)).is_ok());
        assert!(CaClient::new(&ClientConfig::new("http://localhost:1", None)).is_ok());
    }

    #[test]
    fn plain_http_is_refused_beyond_loopback() {
        for url in [
            "http://ca.example",
            "http://10.0.0.1:8750",
            "http://127.0.0.1.ca.example",
            "http://localhost.ca.example",
            "http://[::ffff:10.0.0.1]",
        ] {
            match CaClient::new(&ClientConfig::new(url, None)) {
                Err(ClientError::Config(m)) => assert!(m.contains("loopback"), "{url}: {m}"),
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    fn self_signed(cn: &str) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![cn.to_owned()]).unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn exactly_one_pinned_root_and_never_a_large_file() {
        let one = self_signed("root one");
        let root = PinnedRoot::from_pem(&one).unwrap();
        assert_eq!(root.fingerprint.len(), 32 * 3 - 1);
        let two = format!("{one}{}", self_signed("root two"));
        match CaClient::new(&ClientConfig::new("https://ca.example", Some(two))) {
            Err(ClientError::Config(m)) => assert!(m.contains("exactly one"), "{m}"),
            other => panic!("a bundle of two roots was taken: {other:?}"),
        }
        let padded = format!("{one}{}", " ".repeat(ROOT_FILE_MAX_BYTES));
        match CaClient::new(&ClientConfig::new("https://ca.example", Some(padded))) {
            Err(ClientError::Config(m)) => assert!(m.contains("larger"), "{m}"),
            other => panic!("a large root file was taken: {other:?}"),
        }
        let client = CaClient::new(&ClientConfig::new("https://ca.example", Some(one))).unwrap();
        assert_eq!(client.pinned_root(), Some(&root));
    }
}
