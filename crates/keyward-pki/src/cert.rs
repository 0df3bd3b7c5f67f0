//! What a certificate says, in the terms an operator and a renewal rule need.

use ::time::{Duration, OffsetDateTime};
use serde::Serialize;
use sha2::{Digest, Sha256};
use x509_parser::prelude::*;
use x509_parser::public_key::PublicKey;

use crate::{PkiError, uscc};

/// Renewal is open in the last this-many days before expiry (CA rule: 90 days).
pub const RENEWAL_WINDOW_DAYS: i64 = 90;

const OID_ORGANIZATION_IDENTIFIER: &str = "2.5.4.97";
const OID_SERIAL_NUMBER: &str = "2.5.4.5";
const OID_OU: &str = "2.5.4.11";
const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_SM2: &str = "1.2.156.10197.1.301";

/// The key inside a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum KeyAlgorithm {
    /// RSA with its modulus size.
    Rsa {
        /// Modulus length in bits.
        bits: usize,
    },
    /// ECDSA on a named curve.
    Ec {
        /// `P-256`, `P-384`, `SM2`, or the curve's OID.
        curve: String,
    },
    /// Anything else, by OID.
    Other {
        /// The algorithm OID.
        oid: String,
    },
}

impl std::fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyAlgorithm::Rsa { bits } => write!(f, "RSA-{bits}"),
            KeyAlgorithm::Ec { curve } => write!(f, "EC {curve}"),
            KeyAlgorithm::Other { oid } => write!(f, "{oid}"),
        }
    }
}

/// Where a certificate stands for renewal (证书续期).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RenewalStatus {
    /// More than 90 days left: renewal opens later.
    NotYet {
        /// The first instant renewal is accepted.
        #[serde(with = "::time::serde::rfc3339")]
        opens_at: OffsetDateTime,
        /// Days until then, counted on the calendar of `now`'s offset; at least 1.
        opens_in_days: i64,
    },
    /// Inside the 90 days before expiry: renew now.
    Open {
        /// Days until expiry, counted on the calendar of `now`'s offset.
        days_left: i64,
    },
    /// Expired: renewal is no longer possible; a new application is needed.
    Expired,
}

/// A certificate summary: what the operator sees and the rules decide on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertSummary {
    /// The subject as a distinguished-name string.
    pub subject: String,
    /// Organisation name (O), as written in the certificate.
    pub organization: Option<String>,
    /// Common name (CN).
    pub common_name: Option<String>,
    /// The unified social credit code, when the subject carries a valid one.
    pub credit_code: Option<String>,
    /// The issuer as a distinguished-name string.
    pub issuer: String,
    /// The issuer's common name (or organisation), for display.
    pub issuer_name: Option<String>,
    /// Serial number, upper-case hex.
    pub serial: String,
    /// Start of validity.
    #[serde(with = "::time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// End of validity.
    #[serde(with = "::time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// Days from `now` to expiry, counted on the calendar of `now`'s offset (the expiry's
    /// date there minus `now`'s date); negative once expired.
    pub days_left: i64,
    /// The subject key.
    pub key: KeyAlgorithm,
    /// Is this a CA certificate?
    pub is_ca: bool,
    /// SHA-256 over the DER, upper-case hex.
    pub sha256: String,
    /// Renewal status at `now`.
    pub renewal: RenewalStatus,
}

impl CertSummary {
    /// Reads a DER certificate as of `now`. Days are counted on the calendar of `now`'s
    /// offset: pass `now` in the operator's time zone so that "days left" agrees with the
    /// expiry date the operator reads.
    pub fn from_der(der: &[u8], now: OffsetDateTime) -> Result<Self, PkiError> {
        let (rest, cert) =
            parse_x509_certificate(der).map_err(|e| PkiError::Certificate(e.to_string()))?;
        if !rest.is_empty() {
            return Err(PkiError::Certificate(format!(
                "{} bytes after the certificate",
                rest.len()
            )));
        }
        let subject = cert.subject();
        let not_before = cert.validity().not_before.to_datetime();
        let not_after = cert.validity().not_after.to_datetime();
        let days_left = days_to_expiry(not_after, now);
        Ok(CertSummary {
            subject: name_text(subject),
            organization: first_attr(subject.iter_organization()),
            common_name: first_attr(subject.iter_common_name()),
            credit_code: credit_code(subject),
            issuer: name_text(cert.issuer()),
            issuer_name: first_attr(cert.issuer().iter_common_name())
                .or_else(|| first_attr(cert.issuer().iter_organization())),
            serial: hex::encode_upper(cert.raw_serial()),
            not_before,
            not_after,
            days_left,
            key: key_algorithm(cert.public_key()),
            is_ca: cert.is_ca(),
            sha256: hex::encode_upper(Sha256::digest(der)),
            renewal: renewal_status(not_after, now),
        })
    }

    /// The DER SubjectPublicKeyInfo of a certificate, to match it with a key.
    pub fn spki_der(der: &[u8]) -> Result<Vec<u8>, PkiError> {
        let (_, cert) =
            parse_x509_certificate(der).map_err(|e| PkiError::Certificate(e.to_string()))?;
        Ok(cert.public_key().raw.to_vec())
    }
}

/// The parts of a certificate a token object needs: DER subject, issuer and serial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertNames {
    /// DER-encoded subject Name.
    pub subject: Vec<u8>,
    /// DER-encoded issuer Name.
    pub issuer: Vec<u8>,
    /// DER-encoded serial number INTEGER.
    pub serial: Vec<u8>,
    /// Subject common name or organisation, for a label.
    pub display_name: Option<String>,
}

impl CertNames {
    /// Reads the names from a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, PkiError> {
        let (_, cert) =
            parse_x509_certificate(der).map_err(|e| PkiError::Certificate(e.to_string()))?;
        let raw_serial = cert.raw_serial();
        Ok(CertNames {
            subject: cert.subject().as_raw().to_vec(),
            issuer: cert.issuer().as_raw().to_vec(),
            serial: der_integer(raw_serial),
            display_name: first_attr(cert.subject().iter_common_name())
                .or_else(|| first_attr(cert.subject().iter_organization())),
        })
    }
}

/// DER INTEGER from the content octets of an INTEGER (already minimal, as a certificate
/// serial is).
fn der_integer(content: &[u8]) -> Vec<u8> {
    let mut out = vec![0x02];
    crate::der::push_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// Where a certificate expiring at `not_after` stands at `now`.
pub fn renewal_status(not_after: OffsetDateTime, now: OffsetDateTime) -> RenewalStatus {
    if now >= not_after {
        return RenewalStatus::Expired;
    }
    let opens_at = not_after - Duration::days(RENEWAL_WINDOW_DAYS);
    if now >= opens_at {
        RenewalStatus::Open {
            days_left: days_to_expiry(not_after, now),
        }
    } else {
        RenewalStatus::NotYet {
            opens_at,
            opens_in_days: calendar_days(opens_at, now).max(1),
        }
    }
}

/// `at`'s date minus `now`'s date, both read in `now`'s offset.
fn calendar_days(at: OffsetDateTime, now: OffsetDateTime) -> i64 {
    (at.to_offset(now.offset()).date() - now.date()).whole_days()
}

/// Days left on the calendar, never 0 or more once `not_after` has passed.
fn days_to_expiry(not_after: OffsetDateTime, now: OffsetDateTime) -> i64 {
    let days = calendar_days(not_after, now);
    if now >= not_after { days.min(-1) } else { days }
}

fn first_attr<'a>(mut it: impl Iterator<Item = &'a AttributeTypeAndValue<'a>>) -> Option<String> {
    it.next().and_then(|a| a.as_str().ok()).map(str::to_owned)
}

/// A distinguished name as text, with the names a Chinese organisation certificate carries
/// spelled out (the generic formatter writes organizationIdentifier as a bare OID).
fn name_text(name: &X509Name<'_>) -> String {
    let parts: Vec<String> = name
        .iter_attributes()
        .map(|a| {
            let oid = a.attr_type().to_id_string();
            let key = match oid.as_str() {
                "2.5.4.6" => "C",
                "2.5.4.8" => "ST",
                "2.5.4.7" => "L",
                "2.5.4.10" => "O",
                "2.5.4.11" => "OU",
                "2.5.4.3" => "CN",
                OID_SERIAL_NUMBER => "serialNumber",
                OID_ORGANIZATION_IDENTIFIER => "organizationIdentifier",
                _ => oid.as_str(),
            }
            .to_owned();
            let value = a
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|_| format!("#{}", hex::encode(a.as_slice())));
            format!("{key}={value}")
        })
        .collect();
    parts.join(", ")
}

/// Finds a valid unified social credit code in the subject: organizationIdentifier
/// (`NTRCN-` prefix or bare), serialNumber, OU or CN, in that order.
fn credit_code(subject: &X509Name<'_>) -> Option<String> {
    let mut candidates: Vec<(usize, &str)> = Vec::new();
    for attr in subject.iter_attributes() {
        let rank = match attr.attr_type().to_id_string().as_str() {
            OID_ORGANIZATION_IDENTIFIER => 0,
            OID_SERIAL_NUMBER => 1,
            OID_OU => 2,
            _ => 3,
        };
        if let Ok(v) = attr.as_str() {
            candidates.push((rank, v));
        }
    }
    candidates.sort_by_key(|(rank, _)| *rank);
    candidates.into_iter().find_map(|(_, v)| {
        let v = v.trim();
        let bare = v
            .strip_prefix("NTRCN-")
            .or_else(|| v.strip_prefix("NTRCN+"))
            .unwrap_or(v);
        uscc::validate(bare).ok()
    })
}

fn key_algorithm(spki: &SubjectPublicKeyInfo<'_>) -> KeyAlgorithm {
    let oid = spki.algorithm.algorithm.to_id_string();
    match oid.as_str() {
        OID_RSA => match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => KeyAlgorithm::Rsa {
                bits: rsa.key_size(),
            },
            _ => KeyAlgorithm::Other { oid },
        },
        OID_EC => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            let curve = match curve.as_str() {
                OID_P256 => "P-256".to_owned(),
                OID_P384 => "P-384".to_owned(),
                OID_SM2 => "SM2".to_owned(),
                other => other.to_owned(),
            };
            KeyAlgorithm::Ec { curve }
        }
        _ => KeyAlgorithm::Other { oid },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::time::macros::datetime;
    use rcgen::{CertificateParams, DnType, KeyPair};

    fn org_cert(key: &KeyPair, org_id: &str, not_after: OffsetDateTime) -> Vec<u8> {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CountryName, "CN");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "广州市示例科技有限公司");
        params
            .distinguished_name
            .push(DnType::CommonName, "广州市示例科技有限公司");
        params
            .distinguished_name
            .push(DnType::CustomDnType(vec![2, 5, 4, 97]), org_id);
        params.not_before = datetime!(2025-01-01 0:00 UTC);
        params.not_after = not_after;
        params.serial_number = Some(vec![0x01, 0x7f, 0x00, 0x42].into());
        params.self_signed(key).expect("self-signed").der().to_vec()
    }

    #[test]
    fn summary_reads_organisation_code_and_validity() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let der = org_cert(
            &key,
            "NTRCN-91350100M000100Y43",
            datetime!(2027-01-01 0:00 UTC),
        );
        let s = CertSummary::from_der(&der, datetime!(2026-06-01 0:00 UTC)).expect("summary");
        assert_eq!(s.organization.as_deref(), Some("广州市示例科技有限公司"));
        assert_eq!(s.credit_code.as_deref(), Some("91350100M000100Y43"));
        assert_eq!(s.serial, "017F0042");
        assert_eq!(
            s.key,
            KeyAlgorithm::Ec {
                curve: "P-256".into()
            }
        );
        assert_eq!(s.days_left, 214);
        assert!(matches!(
            s.renewal,
            RenewalStatus::NotYet {
                opens_in_days: 124,
                ..
            }
        ));
        assert!(!s.is_ca);
        assert_eq!(
            s.subject,
            "CN=广州市示例科技有限公司, C=CN, O=广州市示例科技有限公司, organizationIdentifier=NTRCN-91350100M000100Y43"
        );
        assert_eq!(s.sha256.len(), 64);
    }

    #[test]
    fn an_invalid_credit_code_is_not_reported() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let der = org_cert(
            &key,
            "NTRCN-91350100M000100Y44",
            datetime!(2027-01-01 0:00 UTC),
        );
        let s = CertSummary::from_der(&der, datetime!(2026-06-01 0:00 UTC)).expect("summary");
        assert_eq!(s.credit_code, None);
    }

    #[test]
    fn renewal_window_edges() {
        let exp = datetime!(2027-01-01 0:00 UTC);
        assert_eq!(
            renewal_status(exp, exp - Duration::days(90)),
            RenewalStatus::Open { days_left: 90 }
        );
        assert!(matches!(
            renewal_status(exp, exp - Duration::days(90) - Duration::seconds(1)),
            RenewalStatus::NotYet {
                opens_in_days: 1,
                ..
            }
        ));
        assert_eq!(
            renewal_status(exp, exp - Duration::hours(1)),
            RenewalStatus::Open { days_left: 1 }
        );
        assert_eq!(renewal_status(exp, exp), RenewalStatus::Expired);
    }

    #[test]
    fn days_are_counted_on_the_calendar_of_the_operator() {
        // 17:30 UTC on 22 October is 01:30 on 23 October in Beijing.
        let exp = datetime!(2026-10-22 17:30 UTC);
        let beijing = ::time::UtcOffset::from_hms(8, 0, 0).expect("offset");
        let now = datetime!(2026-10-22 02:00 UTC);
        assert_eq!(days_to_expiry(exp, now), 0);
        assert_eq!(days_to_expiry(exp, now.to_offset(beijing)), 1);
        // Late on the day before, the expiry is "tomorrow" in both zones; after it, expired.
        let evening = datetime!(2026-10-22 23:00 +8);
        assert_eq!(days_to_expiry(exp, evening), 1);
        assert_eq!(days_to_expiry(exp, datetime!(2026-10-23 01:31 +8)), -1);
        assert_eq!(days_to_expiry(exp, datetime!(2026-10-25 09:00 +8)), -2);
        // Renewal opens 90 days before, and the count of days to it is read there too.
        let open = renewal_status(exp, datetime!(2026-07-25 02:00 +8));
        assert_eq!(open, RenewalStatus::Open { days_left: 90 });
        assert!(matches!(
            renewal_status(exp, datetime!(2026-07-24 23:00 +8)),
            RenewalStatus::NotYet {
                opens_in_days: 1,
                ..
            }
        ));
    }

    #[test]
    fn garbage_is_a_clear_error_not_a_panic() {
        for bad in [&b""[..], b"\x30\x03\x02\x01", b"not a certificate at all"] {
            assert!(matches!(
                CertSummary::from_der(bad, OffsetDateTime::UNIX_EPOCH),
                Err(PkiError::Certificate(_))
            ));
        }
    }

    #[test]
    fn names_for_token_objects() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let der = org_cert(&key, "x", datetime!(2027-01-01 0:00 UTC));
        let n = CertNames::from_der(&der).expect("names");
        assert_eq!(n.serial, vec![0x02, 0x04, 0x01, 0x7f, 0x00, 0x42]);
        assert_eq!(n.subject[0], 0x30);
        assert_eq!(n.display_name.as_deref(), Some("广州市示例科技有限公司"));
    }
}
