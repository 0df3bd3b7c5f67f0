//! Using the key: what a web page may ask of it through the browser bridge — the
//! organisation certificates plugged in, a Web eID authentication token, a signature over a
//! digest, a CMS signature of a message — each private-key operation through the login
//! guard, logged out afterwards.
//!
//! Nothing here decides who may ask: the bridge checks the origin and the operator's consent
//! and confirmation before calling in. What is signed is exactly what the caller passes; the
//! origin that goes into an authentication token is the one the bridge took from the
//! browser's handshake.

use std::sync::Arc;

use keyward_pki::{CertSummary, HashAlg, Pin, SignatureScheme, cms, pem};
use keyward_token::{FinalTry, Module, PinStatus, TokenError, TokenRef, TokenSession};
use serde::Serialize;
use time::OffsetDateTime;

use crate::identity::identity;
use crate::{Env, FlowError};

/// The keys a web page may use: those of every module loaded, on a clock. Keys are named by
/// serial and looked up afresh for every operation, as one may be pulled out and another
/// plugged in between two calls.
#[derive(Clone)]
pub struct WebKeys {
    modules: Vec<Arc<Module>>,
    clock: Arc<dyn Fn() -> OffsetDateTime + Send + Sync>,
}

impl std::fmt::Debug for WebKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebKeys")
            .field("modules", &self.modules.len())
            .finish_non_exhaustive()
    }
}

impl WebKeys {
    /// The keys of `modules`, on the system clock.
    pub fn new(modules: Vec<Arc<Module>>) -> Self {
        WebKeys {
            modules,
            clock: Arc::new(OffsetDateTime::now_utc),
        }
    }

    /// The keys of a workflow environment's module, on its clock.
    pub fn from_env(env: &Env) -> Self {
        WebKeys {
            modules: vec![Arc::clone(&env.module)],
            clock: Arc::clone(&env.clock),
        }
    }

    fn now(&self) -> OffsetDateTime {
        (self.clock)()
    }

    /// The key with serial `serial`, in whichever module has it.
    fn find(&self, serial: &str) -> Result<(&Arc<Module>, TokenRef), FlowError> {
        for m in &self.modules {
            if let Some(t) = m.tokens()?.into_iter().find(|t| t.serial == serial) {
                return Ok((m, t));
            }
        }
        Err(FlowError::Token(TokenError::NoSuchToken(format!(
            "serial {serial}"
        ))))
    }

    /// Every key plugged in that holds an organisation certificate with its key pair, by
    /// serial. Keys without one (blank, awaiting issue) are left out, as is a key pulled
    /// out while it is read.
    pub fn certificates(&self) -> Result<Vec<KeyCertificate>, FlowError> {
        let mut out = Vec::new();
        for m in &self.modules {
            for token in m.tokens()? {
                match self.certificate_on(m, &token) {
                    Ok(c) => out.push(c),
                    Err(FlowError::NoCertificate) => {}
                    Err(FlowError::Token(e)) if e.is_key_removed() => {}
                    Err(e) => return Err(e),
                }
            }
        }
        out.sort_by(|a, b| a.serial.cmp(&b.serial));
        Ok(out)
    }

    /// The organisation certificate on the key with serial `serial`.
    pub fn certificate(&self, serial: &str) -> Result<KeyCertificate, FlowError> {
        let (m, token) = self.find(serial)?;
        self.certificate_on(m, &token)
    }

    fn certificate_on(
        &self,
        m: &Arc<Module>,
        token: &TokenRef,
    ) -> Result<KeyCertificate, FlowError> {
        let session = m.session(token)?;
        let id = identity(&session, self.now())?;
        Ok(KeyCertificate {
            serial: token.serial.clone(),
            label: token.label.clone(),
            certificate_der: id.cert_der,
            summary: id.summary,
        })
    }

    /// The PIN state of the key with serial `serial`, read without a login: what the
    /// confirmation shows beside the PIN field, and whether a locked key is refused before
    /// the operator is asked.
    pub fn pin_status(&self, serial: &str) -> Result<PinStatus, FlowError> {
        let (m, token) = self.find(serial)?;
        Ok(m.pin_status(&token)?)
    }

    fn login(&self, serial: &str, pin: &Pin, confirm: FinalTry) -> Result<LoggedIn, FlowError> {
        let (m, token) = self.find(serial)?;
        let session = m.session(&token)?;
        session.login(pin, confirm)?;
        Ok(LoggedIn(session))
    }

    /// Makes a Web eID authentication token for `origin` and `nonce` with the key with
    /// serial `serial`, the PIN through the login guard. `app_version` names the application
    /// (a URI).
    pub fn authenticate(
        &self,
        serial: &str,
        pin: &Pin,
        confirm: FinalTry,
        origin: &str,
        nonce: &str,
        app_version: &str,
    ) -> Result<AuthToken, FlowError> {
        let session = self.login(serial, pin, confirm)?;
        let id = identity(&session.0, self.now())?;
        let scheme = session.0.key_scheme(&id.key_id)?;
        let (algorithm, hash) = jwa(scheme);
        let signature = session
            .0
            .sign(&id.key_id, &auth_signed_data(hash, origin, nonce))?;
        let signature = match scheme {
            SignatureScheme::EcdsaP256Sha256 => {
                keyward_pki::digest::ecdsa_der_to_raw(&signature, 32)?
            }
            SignatureScheme::RsaPkcs1Sha256 => signature,
        };
        tracing::info!(serial, algorithm, "authentication token made");
        Ok(AuthToken {
            unverified_certificate: pem::base64(&id.cert_der),
            algorithm: algorithm.to_owned(),
            signature: pem::base64(&signature),
            format: WEB_EID_FORMAT.to_owned(),
            app_version: app_version.to_owned(),
        })
    }

    /// Signs `digest`, made by `hash` elsewhere, with the organisation key pair on the key
    /// with serial `serial`, the PIN through the login guard.
    pub fn sign_digest(
        &self,
        serial: &str,
        pin: &Pin,
        confirm: FinalTry,
        hash: HashAlg,
        digest: &[u8],
    ) -> Result<DigestSignature, FlowError> {
        hash.check(digest)?;
        let session = self.login(serial, pin, confirm)?;
        let id = identity(&session.0, self.now())?;
        let (scheme, signature) = session.0.sign_prehashed(&id.key_id, hash, digest)?;
        tracing::info!(serial, hash = hash.name(), "digest signed");
        Ok(DigestSignature {
            signature,
            scheme,
            hash,
        })
    }
}

impl WebKeys {
    /// Signs `data` as CMS SignedData (RFC 5652) with the organisation key pair on the key
    /// with serial `serial`, the PIN through the login guard: the content carried inside, or
    /// left out when `detached`; signed attributes content type, message digest, signing
    /// time and signing-certificate-v2; the certificate and the CA certificates the key
    /// holds. DER.
    pub fn sign_message(
        &self,
        serial: &str,
        pin: &Pin,
        confirm: FinalTry,
        data: &[u8],
        detached: bool,
    ) -> Result<Vec<u8>, FlowError> {
        let session = self.login(serial, pin, confirm)?;
        let now = self.now();
        let id = identity(&session.0, now)?;
        let chain: Vec<Vec<u8>> = session
            .0
            .certificates()?
            .into_iter()
            .filter(|c| CertSummary::from_der(&c.der, now).is_ok_and(|s| s.is_ca))
            .map(|c| c.der)
            .collect();
        let signer = session.0.signer(&id.key_id)?;
        let content = if detached {
            cms::Content::Detached(data)
        } else {
            cms::Content::Attached(data)
        };
        let der = cms::sign(
            &signer,
            &id.cert_der,
            &chain,
            content,
            &cms::SignOptions::message(now),
        )?;
        tracing::info!(serial, bytes = data.len(), detached, "message signed");
        Ok(der)
    }
}

/// An organisation certificate on a key that is plugged in.
#[derive(Debug, Clone)]
pub struct KeyCertificate {
    /// The key's serial.
    pub serial: String,
    /// The key's label.
    pub label: String,
    /// The certificate, DER.
    pub certificate_der: Vec<u8>,
    /// What it says.
    pub summary: CertSummary,
}

/// A logged-in session that logs out when dropped, whatever happened in between.
struct LoggedIn(TokenSession);

impl Drop for LoggedIn {
    fn drop(&mut self) {
        if let Err(e) = self.0.logout() {
            tracing::debug!(error = %e, "logout after a bridge operation");
        }
    }
}

/// The format identifier of the authentication tokens Keyward makes.
pub const WEB_EID_FORMAT: &str = "web-eid:1.0";

/// A Web eID authentication token (`web-eid:1.0`): the certificate, and a signature over
/// `hash(origin) ‖ hash(nonce)` a portal checks against the origin and nonce it keeps itself.
/// Field names are those of the format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthToken {
    /// The certificate, base64 DER; unverified until the portal checks its chain.
    pub unverified_certificate: String,
    /// The JWA name of the signature algorithm: `RS256` or `ES256`.
    pub algorithm: String,
    /// The signature, base64; ECDSA as the fixed-length `r‖s` of JWA.
    pub signature: String,
    /// [`WEB_EID_FORMAT`].
    pub format: String,
    /// Which application made it, and its version.
    pub app_version: String,
}

/// The JWA name and hash function of a scheme, as authentication tokens use them.
fn jwa(scheme: SignatureScheme) -> (&'static str, HashAlg) {
    match scheme {
        SignatureScheme::RsaPkcs1Sha256 => ("RS256", HashAlg::Sha256),
        SignatureScheme::EcdsaP256Sha256 => ("ES256", HashAlg::Sha256),
    }
}

/// What an authentication token's signature covers: `hash(origin) ‖ hash(nonce)`, each the
/// hash of its UTF-8 text.
pub fn auth_signed_data(hash: HashAlg, origin: &str, nonce: &str) -> Vec<u8> {
    let mut data = hash.hash(origin.as_bytes());
    data.extend(hash.hash(nonce.as_bytes()));
    data
}

/// A signature over a digest, and how it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestSignature {
    /// The signature: the RSA block (PKCS#1 v1.5), or ECDSA's fixed-length `r‖s`.
    pub signature: Vec<u8>,
    /// The key's scheme.
    pub scheme: SignatureScheme,
    /// The hash function that made the digest.
    pub hash: HashAlg,
}

impl DigestSignature {
    /// The algorithm as a portal verifies it: `{cryptoAlgorithm, hashFunction, paddingScheme}`.
    pub fn algorithm(&self) -> SignatureAlgorithm {
        let (crypto, padding) = match self.scheme {
            SignatureScheme::RsaPkcs1Sha256 => ("RSA", "PKCS1.5"),
            SignatureScheme::EcdsaP256Sha256 => ("ECC", "NONE"),
        };
        SignatureAlgorithm {
            crypto_algorithm: crypto.to_owned(),
            hash_function: self.hash.name().to_owned(),
            padding_scheme: padding.to_owned(),
        }
    }
}

/// A signature algorithm as named to a web page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureAlgorithm {
    /// `RSA` or `ECC`.
    pub crypto_algorithm: String,
    /// `SHA-256`, `SHA-384` or `SHA-512`.
    pub hash_function: String,
    /// `PKCS1.5` for RSA, `NONE` for ECDSA.
    pub padding_scheme: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_data_separates_origin_from_nonce() {
        // Without a hash per field, "https://a.test" + "x…" and "https://a.testx" + "…"
        // would sign the same bytes.
        let n = "A".repeat(44);
        let a = auth_signed_data(HashAlg::Sha256, "https://a.test", &format!("x{n}"));
        let b = auth_signed_data(HashAlg::Sha256, "https://a.testx", &n);
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
    }
}
