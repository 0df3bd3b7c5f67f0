//! The certificate checks a token and a signature share: readable, valid now, allowed to
//! sign, not a CA's, and issued — through the portal's configured intermediates or those a
//! CMS carries — by one of the portal's configured roots. The roots are the portal's own,
//! compared byte for byte; a root the browser sends is never one.

use ::time::OffsetDateTime;
use keyward_pki::CertSummary;
use x509_parser::prelude::{ASN1Time, X509Certificate, parse_x509_certificate};

use crate::{Rule, VerifyError};

/// The longest chain followed from a signer to a root.
const MAX_DEPTH: usize = 6;

/// The CAs a portal trusts.
#[derive(Debug, Clone, Default)]
pub struct TrustAnchors {
    roots: Vec<Vec<u8>>,
    intermediates: Vec<Vec<u8>>,
}

/// What a signature was made with, as the portal records it against an account (绑定).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The signer's certificate, DER.
    pub certificate_der: Vec<u8>,
    /// The organisation it names.
    pub organisation: Option<String>,
    /// Its unified social credit code.
    pub credit_code: Option<String>,
    /// Its serial, hex.
    pub serial: String,
    /// Its issuer's name.
    pub issuer: String,
    /// When it expires.
    pub not_after: OffsetDateTime,
}

/// What the key's signature is for: a login proves control of the key, a CMS signature
/// may also commit to content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Authentication,
    Signing,
}

impl TrustAnchors {
    /// Roots and intermediates, DER.
    pub fn new(roots: Vec<Vec<u8>>, intermediates: Vec<Vec<u8>>) -> Self {
        TrustAnchors {
            roots,
            intermediates,
        }
    }

    /// Roots and intermediates from PEM text (any number of `CERTIFICATE` blocks each).
    pub fn from_pem(roots: &str, intermediates: &str) -> Result<Self, VerifyError> {
        let read = |text: &str| -> Result<Vec<Vec<u8>>, VerifyError> {
            Ok(keyward_pki::pem::decode_all(text)
                .map_err(|e| VerifyError::new(Rule::CertificateMalformed, e.to_string()))?
                .into_iter()
                .filter(|(label, _)| label == "CERTIFICATE")
                .map(|(_, der)| der)
                .collect())
        };
        Ok(TrustAnchors::new(read(roots)?, read(intermediates)?))
    }

    /// Checks `leaf` for `purpose` at `now`, with `carried` certificates (a CMS's) as
    /// further candidate intermediates; who it names.
    pub(crate) fn check(
        &self,
        leaf: &[u8],
        carried: &[Vec<u8>],
        purpose: Purpose,
        now: OffsetDateTime,
    ) -> Result<Identity, VerifyError> {
        let (_, cert) = parse_x509_certificate(leaf)
            .map_err(|e| VerifyError::new(Rule::CertificateMalformed, e.to_string()))?;
        valid_at(&cert, now)?;
        let ca = cert
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|b| b.value.ca);
        if ca {
            return Err(VerifyError::new(
                Rule::CertificateKeyUsage,
                "a CA certificate is not a signer's",
            ));
        }
        if let Ok(Some(ku)) = cert.key_usage() {
            let allowed = match purpose {
                Purpose::Authentication => ku.value.digital_signature(),
                Purpose::Signing => ku.value.digital_signature() || ku.value.non_repudiation(),
            };
            if !allowed {
                return Err(VerifyError::new(
                    Rule::CertificateKeyUsage,
                    format!("key usage {} does not allow this signature", ku.value),
                ));
            }
        }
        self.chain(leaf, carried, now)?;
        let summary = CertSummary::from_der(leaf, now)
            .map_err(|e| VerifyError::new(Rule::CertificateMalformed, e.to_string()))?;
        Ok(Identity {
            certificate_der: leaf.to_vec(),
            organisation: summary.organization,
            credit_code: summary.credit_code,
            serial: summary.serial,
            issuer: summary.issuer,
            not_after: summary.not_after,
        })
    }

    /// Follows issuers from `leaf` to a configured root.
    fn chain(
        &self,
        leaf: &[u8],
        carried: &[Vec<u8>],
        now: OffsetDateTime,
    ) -> Result<(), VerifyError> {
        let candidates: Vec<&[u8]> = self
            .intermediates
            .iter()
            .chain(carried)
            .map(Vec::as_slice)
            .filter(|c| !self.roots.iter().any(|r| r == c))
            .collect();
        let mut current = leaf;
        for _ in 0..MAX_DEPTH {
            for root in &self.roots {
                if keyward_pki::verify::issued_by(current, root).is_ok() && valid_der(root, now) {
                    return Ok(());
                }
            }
            let next = candidates.iter().copied().find(|c| {
                *c != current
                    && keyward_pki::verify::issued_by(current, c).is_ok()
                    && valid_der(c, now)
            });
            match next {
                Some(c) => current = c,
                None => break,
            }
        }
        Err(VerifyError::new(
            Rule::CertificateUntrusted,
            "no chain to a configured root",
        ))
    }
}

fn valid_at(cert: &X509Certificate<'_>, now: OffsetDateTime) -> Result<(), VerifyError> {
    let at = ASN1Time::from_timestamp(now.unix_timestamp())
        .map_err(|e| VerifyError::new(Rule::CertificateMalformed, e.to_string()))?;
    let v = cert.validity();
    if at < v.not_before {
        return Err(VerifyError::new(
            Rule::CertificateNotYetValid,
            format!("valid from {}", v.not_before),
        ));
    }
    if at > v.not_after {
        return Err(VerifyError::new(
            Rule::CertificateExpired,
            format!("expired {}", v.not_after),
        ));
    }
    Ok(())
}

fn valid_der(der: &[u8], now: OffsetDateTime) -> bool {
    parse_x509_certificate(der).is_ok_and(|(_, c)| valid_at(&c, now).is_ok())
}
