//! Pure data for Keyward: nothing in this crate touches a file, a socket or a token.
//!
//! - [`cert`]: a certificate summary read from DER — organisation, unified social credit
//!   code, validity, key algorithm and where the certificate stands for renewal.
//! - [`pin`]: the PIN secret type and the PIN policy, checked before anything touches a key.
//! - [`uscc`]: the unified social credit code (统一社会信用代码) and its check character.
//! - [`csr`]: certificate signing requests built around a [`csr::KeySigner`], so the private
//!   key can stay on a token.
//! - [`cms`]: CMS SignedData (RFC 5652) made through a [`csr::KeySigner`] — attached,
//!   detached, or over a precomputed digest (PAdES) — and checked.
//! - [`der`]: the few DER pieces built by hand (public keys from token attributes).
//! - [`digest`]: the SHA-2 functions a digest is signed under, DigestInfo, ECDSA shapes.
//! - [`pem`]: PEM text as the CA service uses it.
//! - [`verify`]: a signature checked against a public key, in software.
//! - [`seal`]: the GM/T 0031 electronic seal (SES_Seal): build, lenient decode, verify.
//! - [`lang`]: the languages Keyward speaks, for messages built here.

pub mod cert;
pub mod cms;
pub mod csr;
pub mod der;
pub mod digest;
pub mod lang;
pub mod pem;
pub mod pin;
pub mod seal;
pub mod uscc;
pub mod verify;

pub use cert::{CertSummary, KeyAlgorithm, RENEWAL_WINDOW_DAYS, RenewalStatus};
pub use csr::{KeySigner, OrgSubject, SignatureScheme};
pub use digest::HashAlg;
pub use lang::Lang;
pub use pin::{Pin, PinPolicy, PinRule};

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// The bytes are not a certificate this crate can read.
    #[error("malformed certificate: {0}")]
    Certificate(String),
    /// A public key (SubjectPublicKeyInfo) could not be read or is of an unsupported kind.
    #[error("unsupported or malformed public key: {0}")]
    PublicKey(String),
    /// The signer behind a CSR failed; its own error is kept (a token's "key removed" stays
    /// recognisable to the caller).
    #[error("the key could not sign: {0}")]
    Signer(Box<dyn std::error::Error + Send + Sync>),
    /// A certificate signing request could not be built or read.
    #[error("certificate signing request: {0}")]
    Csr(String),
    /// A signature value had the wrong shape for its scheme.
    #[error("malformed signature: {0}")]
    Signature(String),
    /// An electronic seal could not be read, or is not bound or signed as it must be.
    #[error("electronic seal: {0}")]
    Seal(String),
    /// A CMS signature could not be built or read.
    #[error("CMS signature: {0}")]
    Cms(String),
}
