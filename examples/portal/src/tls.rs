//! HTTPS on loopback under a test CA made at start: a root and one server certificate for the
//! portal's names (and the hostile page's). A browser is told to trust the leaf by its key's
//! SHA-256 (`--ignore-certificate-errors-spki-list`) or the root through its trust store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::PortalError;

/// The portal's test CA and server certificate.
#[derive(Debug, Clone)]
pub struct TestTls {
    /// The root, PEM: what a client trusts.
    pub root_pem: String,
    /// The server certificate, DER.
    pub leaf_der: Vec<u8>,
    /// SHA-256 of the server certificate's SubjectPublicKeyInfo, base64: Chromium's
    /// `--ignore-certificate-errors-spki-list` value.
    pub leaf_spki_sha256: String,
    config: Arc<rustls::ServerConfig>,
}

fn tls_error(e: impl std::fmt::Display) -> PortalError {
    PortalError::Tls(e.to_string())
}

impl TestTls {
    /// A fresh root and a server certificate for `names`.
    pub fn new(names: &[String]) -> Result<TestTls, PortalError> {
        let root_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(tls_error)?;
        let mut root = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
        root.distinguished_name
            .push(DnType::CommonName, "Keyward 示例采购平台测试根 CA");
        root.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let root_cert = root.self_signed(&root_key).map_err(tls_error)?;

        let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(tls_error)?;
        let mut leaf = CertificateParams::new(names.to_vec()).map_err(tls_error)?;
        leaf.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let issuer = Issuer::from_ca_cert_der(root_cert.der(), &root_key).map_err(tls_error)?;
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(tls_error)?;

        let spki = ring::digest::digest(&ring::digest::SHA256, &leaf_key.subject_public_key_info());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?
            .with_no_client_auth()
            .with_single_cert(
                vec![
                    CertificateDer::from(leaf_cert.der().to_vec()),
                    CertificateDer::from(root_cert.der().to_vec()),
                ],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .map_err(tls_error)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TestTls {
            root_pem: root_cert.pem(),
            leaf_der: leaf_cert.der().to_vec(),
            leaf_spki_sha256: STANDARD.encode(spki.as_ref()),
            config: Arc::new(config),
        })
    }
}

/// A listener handing axum finished TLS connections; each handshake in its own task, bounded
/// in time.
pub(crate) struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
    task: tokio::task::AbortHandle,
}

impl TlsListener {
    pub(crate) fn new(listener: TcpListener, tls: &TestTls) -> std::io::Result<TlsListener> {
        let addr = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(Arc::clone(&tls.config));
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, peer)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                    {
                        Ok(Ok(s)) => {
                            let _ = tx.send((s, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            rx,
            addr,
            task: task.abort_handle(),
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}
