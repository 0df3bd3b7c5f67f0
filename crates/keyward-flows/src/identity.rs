//! The key's identity: its organisation certificate, the key pair it belongs to, and
//! requests to the CA signed by that key pair.

use keyward_ca_client::RequestSigner;
use keyward_pki::CertSummary;
use keyward_token::TokenSession;
use time::OffsetDateTime;

use crate::FlowError;

/// The organisation certificate on a key and the CKA_ID of its key pair.
#[derive(Debug, Clone)]
pub struct Identity {
    /// CKA_ID of the certificate and its key pair.
    pub key_id: Vec<u8>,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// What it says.
    pub summary: CertSummary,
}

/// Every organisation (non-CA) certificate on the key, newest expiry first.
pub fn identities(session: &TokenSession, now: OffsetDateTime) -> Result<Vec<Identity>, FlowError> {
    let mut out = Vec::new();
    for c in session.certificates()? {
        let Ok(summary) = CertSummary::from_der(&c.der, crate::localtime::local(now)) else {
            tracing::warn!(label = %c.label, "a certificate on the key could not be read; skipped");
            continue;
        };
        if !summary.is_ca {
            out.push(Identity {
                key_id: c.id,
                cert_der: c.der,
                summary,
            });
        }
    }
    out.sort_by_key(|i| std::cmp::Reverse(i.summary.not_after));
    Ok(out)
}

/// The organisation certificate on the key (the one expiring last, should there be two).
pub fn identity(session: &TokenSession, now: OffsetDateTime) -> Result<Identity, FlowError> {
    identities(session, now)?
        .into_iter()
        .next()
        .ok_or(FlowError::NoCertificate)
}

/// Signs CA requests with a key pair on the key; the session must be logged in.
#[derive(Debug)]
pub struct KeySigner<'a> {
    session: &'a TokenSession,
    key_id: Vec<u8>,
}

impl<'a> KeySigner<'a> {
    /// A signer over key pair `key_id`.
    pub fn new(session: &'a TokenSession, key_id: &[u8]) -> Self {
        KeySigner {
            session,
            key_id: key_id.to_vec(),
        }
    }
}

impl RequestSigner for KeySigner<'_> {
    fn key_serial(&self) -> &str {
        &self.session.token().serial
    }

    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.session.sign(&self.key_id, input)?)
    }
}

/// How 导出证书 writes the organisation certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CertFormat {
    /// Base64 between `-----BEGIN CERTIFICATE-----` lines (`.pem`, `.crt`).
    Pem,
    /// The bare DER bytes (`.der`, `.cer`).
    Der,
}

impl CertFormat {
    /// The file name extension that goes with it.
    pub fn extension(self) -> &'static str {
        match self {
            CertFormat::Pem => "pem",
            CertFormat::Der => "cer",
        }
    }
}

/// 导出证书: the key's organisation certificate (the newest, when it holds several) written
/// as a new file at `path` in `format` — never over an existing file. No PIN: a certificate
/// is public. Returns what the certificate says.
pub fn export_certificate(
    module: &std::sync::Arc<keyward_token::Module>,
    token: &keyward_token::TokenRef,
    format: CertFormat,
    path: &std::path::Path,
) -> Result<CertSummary, FlowError> {
    let session = module.session(token)?;
    let id = identities(&session, OffsetDateTime::now_utc())?
        .into_iter()
        .next()
        .ok_or(FlowError::NoCertificate)?;
    let bytes = match format {
        CertFormat::Pem => keyward_pki::pem::encode("CERTIFICATE", &id.cert_der).into_bytes(),
        CertFormat::Der => id.cert_der,
    };
    crate::stamp::write_new_file(path, &bytes)?;
    tracing::info!(path = %path.display(), ?format, "certificate exported");
    Ok(id.summary)
}
