//! What a portal's server embeds to check what Keyward's browser bridge hands its pages:
//! Web eID authentication tokens (`keyward.authenticate`) and CMS signatures
//! (`keyward.signMessage`).
//!
//! Nothing the browser sends is believed. The origin is the portal's own, from its
//! configuration; the nonce is the one the portal issued to this browser session, taken from
//! its own [`Nonces`] store (single use, at most five minutes old); the certificate must chain
//! to the CAs the portal configured, be valid now and allow digital signatures; only then is
//! the signature checked. Every refusal names the [`Rule`] that failed.
//!
//! - [`nonce`]: challenges — issued with 256 bits from the system's generator, taken once.
//! - [`token`]: the authentication token.
//! - [`signature`]: CMS SignedData, attached or detached.
//! - [`chain`]: the certificate checks both share.

pub mod chain;
pub mod nonce;
pub mod signature;
pub mod token;

pub use chain::{Identity, TrustAnchors};
pub use nonce::{Challenge, Nonces};
pub use signature::{SignedMessage, verify_cms};
pub use token::{AuthTokenVerifier, parse_origin};

/// The rule a token or signature broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// Not a `web-eid:1` token: a field missing, of the wrong type, or another format.
    TokenFormat,
    /// An algorithm the verifier does not accept, or one that does not fit the key.
    Algorithm,
    /// The nonce was never issued here (or was already taken and forgotten).
    NonceUnknown,
    /// The nonce was already used.
    NonceReused,
    /// The nonce is older than the verifier accepts.
    NonceExpired,
    /// The configured origin is not a serialised https origin.
    Origin,
    /// The certificate cannot be read.
    CertificateMalformed,
    /// The certificate is not valid yet.
    CertificateNotYetValid,
    /// The certificate has expired.
    CertificateExpired,
    /// The certificate does not allow digital signatures, or is a CA's.
    CertificateKeyUsage,
    /// The certificate does not chain to a configured trust anchor.
    CertificateUntrusted,
    /// The signature does not verify.
    Signature,
    /// The CMS structure cannot be read, or is not SignedData with one signer.
    CmsMalformed,
    /// The signer's certificate is not in the CMS.
    CmsSignerCertificate,
    /// The signed attributes are missing, or their content type is not the content's.
    CmsSignedAttributes,
    /// The message digest attribute is not the digest of the content.
    CmsMessageDigest,
    /// A detached signature was given no content, or an attached one other content.
    CmsContent,
}

impl Rule {
    /// The rule's stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::TokenFormat => "token_format",
            Rule::Algorithm => "algorithm",
            Rule::NonceUnknown => "nonce_unknown",
            Rule::NonceReused => "nonce_reused",
            Rule::NonceExpired => "nonce_expired",
            Rule::Origin => "origin",
            Rule::CertificateMalformed => "certificate_malformed",
            Rule::CertificateNotYetValid => "certificate_not_yet_valid",
            Rule::CertificateExpired => "certificate_expired",
            Rule::CertificateKeyUsage => "certificate_key_usage",
            Rule::CertificateUntrusted => "certificate_untrusted",
            Rule::Signature => "signature",
            Rule::CmsMalformed => "cms_malformed",
            Rule::CmsSignerCertificate => "cms_signer_certificate",
            Rule::CmsSignedAttributes => "cms_signed_attributes",
            Rule::CmsMessageDigest => "cms_message_digest",
            Rule::CmsContent => "cms_content",
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal: the rule broken, and what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{rule}: {detail}")]
pub struct VerifyError {
    /// The rule.
    pub rule: Rule,
    /// What was found, for the portal's log (never shown to a stranger as proof of anything).
    pub detail: String,
}

impl VerifyError {
    pub(crate) fn new(rule: Rule, detail: impl Into<String>) -> Self {
        VerifyError {
            rule,
            detail: detail.into(),
        }
    }
}
