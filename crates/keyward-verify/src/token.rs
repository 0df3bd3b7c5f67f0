//! The Web eID authentication token (`web-eid:1.0`) by its rules.
//!
//! In order: the token's shape and format; the nonce taken from the portal's own store (spent
//! even if what follows fails); the algorithm; the certificate (valid now, allowed to sign,
//! chained to the configured roots); then the signature over `hash(origin) ‖ hash(nonce)`
//! rebuilt from the portal's configured origin and the nonce it issued. A token made for
//! another site, for another nonce, or replayed, fails one of those.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::chain::{Identity, Purpose, TrustAnchors};
use crate::nonce::Nonces;
use crate::{Rule, VerifyError};

/// Checks a portal's origin: a serialised `https` origin (`https://host[:port]`).
pub fn parse_origin(origin: &str) -> Result<String, VerifyError> {
    let bad = || VerifyError::new(Rule::Origin, format!("{origin} is not an https origin"));
    let url = url::Url::parse(origin).map_err(|_| bad())?;
    let serialised = url.origin().ascii_serialization();
    if url.scheme() != "https" || serialised != origin {
        return Err(bad());
    }
    Ok(serialised)
}

/// Checks authentication tokens for one portal.
#[derive(Debug, Clone)]
pub struct AuthTokenVerifier {
    origin: String,
    anchors: TrustAnchors,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Token {
    unverified_certificate: String,
    algorithm: String,
    signature: String,
    format: String,
    // Informative only: read so a token without it is malformed, never used.
    #[allow(dead_code)]
    app_version: String,
}

/// A JWA name: the verification algorithm for the token's signature, and the hash function
/// of the signed value.
fn algorithm(
    name: &str,
) -> Option<(
    &'static dyn VerificationAlgorithm,
    &'static ring::digest::Algorithm,
)> {
    use ring::digest::{SHA256, SHA384, SHA512};
    Some(match name {
        "RS256" => (&signature::RSA_PKCS1_2048_8192_SHA256, &SHA256),
        "RS384" => (&signature::RSA_PKCS1_2048_8192_SHA384, &SHA384),
        "RS512" => (&signature::RSA_PKCS1_2048_8192_SHA512, &SHA512),
        "PS256" => (&signature::RSA_PSS_2048_8192_SHA256, &SHA256),
        "PS384" => (&signature::RSA_PSS_2048_8192_SHA384, &SHA384),
        "PS512" => (&signature::RSA_PSS_2048_8192_SHA512, &SHA512),
        "ES256" => (&signature::ECDSA_P256_SHA256_FIXED, &SHA256),
        "ES384" => (&signature::ECDSA_P384_SHA384_FIXED, &SHA384),
        _ => return None,
    })
}

impl AuthTokenVerifier {
    /// A verifier for the portal at `origin` (from its configuration), trusting `anchors`.
    pub fn new(origin: &str, anchors: TrustAnchors) -> Result<Self, VerifyError> {
        Ok(AuthTokenVerifier {
            origin: parse_origin(origin)?,
            anchors,
        })
    }

    /// Checks `token` (its JSON text) against `nonce`, the one this portal issued to the
    /// session the token came from, taken from `nonces`. Who signed, when it holds.
    pub fn verify(
        &self,
        token: &str,
        nonce: &str,
        nonces: &Nonces,
        now: OffsetDateTime,
    ) -> Result<Identity, VerifyError> {
        let t: Token = serde_json::from_str(token)
            .map_err(|e| VerifyError::new(Rule::TokenFormat, e.to_string()))?;
        if !(t.format == "web-eid:1" || t.format.starts_with("web-eid:1.")) {
            return Err(VerifyError::new(
                Rule::TokenFormat,
                format!("format {}", t.format),
            ));
        }
        nonces.take(nonce, now)?;
        let (alg, hash) = algorithm(&t.algorithm).ok_or_else(|| {
            VerifyError::new(Rule::Algorithm, format!("algorithm {}", t.algorithm))
        })?;
        let der = STANDARD
            .decode(&t.unverified_certificate)
            .map_err(|e| VerifyError::new(Rule::CertificateMalformed, e.to_string()))?;
        let identity = self
            .anchors
            .check(&der, &[], Purpose::Authentication, now)?;
        let sig = STANDARD
            .decode(&t.signature)
            .map_err(|e| VerifyError::new(Rule::Signature, format!("signature: {e}")))?;
        let mut signed = ring::digest::digest(hash, self.origin.as_bytes())
            .as_ref()
            .to_vec();
        signed.extend_from_slice(ring::digest::digest(hash, nonce.as_bytes()).as_ref());
        let key = public_key_bits(&der)?;
        UnparsedPublicKey::new(alg, key)
            .verify(&signed, &sig)
            .map_err(|_| {
                VerifyError::new(
                    Rule::Signature,
                    "the signature does not verify for this origin and nonce with this certificate",
                )
            })?;
        Ok(identity)
    }
}

/// The subjectPublicKey bits of a certificate: what ring verifies with.
pub(crate) fn public_key_bits(cert: &[u8]) -> Result<Vec<u8>, VerifyError> {
    let (_, c) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| VerifyError::new(Rule::CertificateMalformed, e.to_string()))?;
    Ok(c.public_key().subject_public_key.data.to_vec())
}
