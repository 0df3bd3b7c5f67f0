//! CMS SignedData (RFC 5652) as `keyward.signMessage` makes it: one signer, signed
//! attributes, the content attached or given separately.
//!
//! In order: the structure (ContentInfo of SignedData, one SignerInfo); the content (attached,
//! or the detached content the portal passes — its own copy of what the form said, never the
//! page's word); the signer's certificate among those carried, by issuer and serial or key
//! identifier; the signed attributes (content type equal to the content's, message digest
//! equal to the content's digest); the signature over the signed attributes' DER; the
//! certificate (valid now, allowed to sign, chained to the configured roots, through the
//! carried certificates if need be).

use cms::cert::x509::Certificate;
use cms::cert::x509::ext::pkix::SubjectKeyIdentifier;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use time::OffsetDateTime;

use crate::chain::{Identity, Purpose, TrustAnchors};
use crate::token::public_key_bits;
use crate::{Rule, VerifyError};

const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// A CMS signature that holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedMessage {
    /// Who signed.
    pub signer: Identity,
    /// What was signed.
    pub content: Vec<u8>,
    /// When the signer's clock said it signed (the signing-time attribute), if given.
    pub signing_time: Option<OffsetDateTime>,
}

fn malformed(what: impl std::fmt::Display) -> VerifyError {
    VerifyError::new(Rule::CmsMalformed, what.to_string())
}

/// Checks CMS SignedData `cms` (DER). `detached` is the content when the signature leaves it
/// out; when the CMS carries its content, `detached` must be absent or the same bytes.
pub fn verify_cms(
    cms: &[u8],
    detached: Option<&[u8]>,
    anchors: &TrustAnchors,
    now: OffsetDateTime,
) -> Result<SignedMessage, VerifyError> {
    let info = ContentInfo::from_der(cms).map_err(malformed)?;
    if info.content_type != SIGNED_DATA {
        return Err(malformed(format!("content type {}", info.content_type)));
    }
    let sd: SignedData = info.content.decode_as().map_err(malformed)?;
    let [signer] = sd.signer_infos.0.as_slice() else {
        return Err(malformed(format!(
            "{} signers, not one",
            sd.signer_infos.0.len()
        )));
    };

    // The content.
    let attached = match &sd.encap_content_info.econtent {
        Some(any) => Some(
            any.decode_as::<OctetString>()
                .map_err(malformed)?
                .as_bytes()
                .to_vec(),
        ),
        None => None,
    };
    let content = match (attached, detached) {
        (Some(a), None) => a,
        (Some(a), Some(d)) if a == d => a,
        (Some(_), Some(_)) => {
            return Err(VerifyError::new(
                Rule::CmsContent,
                "the content carried differs from the content given",
            ));
        }
        (None, Some(d)) => d.to_vec(),
        (None, None) => {
            return Err(VerifyError::new(
                Rule::CmsContent,
                "a detached signature needs its content",
            ));
        }
    };

    // The signer's certificate among those carried.
    let carried: Vec<Vec<u8>> = sd
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|c| match c {
            cms::cert::CertificateChoices::Certificate(c) => c.to_der().ok(),
            cms::cert::CertificateChoices::Other(_) => None,
        })
        .collect();
    let signer_cert = carried
        .iter()
        .find(|der| is_signer(der, &signer.sid))
        .cloned()
        .ok_or_else(|| {
            VerifyError::new(
                Rule::CmsSignerCertificate,
                "the signer's certificate is not in the CMS",
            )
        })?;

    // The signed attributes.
    let attrs = signer
        .signed_attrs
        .as_ref()
        .ok_or_else(|| VerifyError::new(Rule::CmsSignedAttributes, "no signed attributes"))?;
    let value_of = |oid: ObjectIdentifier| {
        attrs
            .iter()
            .find(|a| a.oid == oid)
            .and_then(|a| (a.values.len() == 1).then(|| a.values.get(0)).flatten())
    };
    let content_type = value_of(CONTENT_TYPE)
        .and_then(|v| v.decode_as::<ObjectIdentifier>().ok())
        .ok_or_else(|| VerifyError::new(Rule::CmsSignedAttributes, "no content-type attribute"))?;
    if content_type != sd.encap_content_info.econtent_type {
        return Err(VerifyError::new(
            Rule::CmsSignedAttributes,
            "the content-type attribute is not the content's type",
        ));
    }
    let digest_alg = match signer.digest_alg.oid {
        o if o == SHA256 => &ring::digest::SHA256,
        o if o == SHA384 => &ring::digest::SHA384,
        o if o == SHA512 => &ring::digest::SHA512,
        o => {
            return Err(VerifyError::new(
                Rule::Algorithm,
                format!("digest algorithm {o}"),
            ));
        }
    };
    let claimed = value_of(MESSAGE_DIGEST)
        .and_then(|v| v.decode_as::<OctetString>().ok())
        .ok_or_else(|| {
            VerifyError::new(Rule::CmsSignedAttributes, "no message-digest attribute")
        })?;
    if claimed.as_bytes() != ring::digest::digest(digest_alg, &content).as_ref() {
        return Err(VerifyError::new(
            Rule::CmsMessageDigest,
            "the message digest is not the content's",
        ));
    }
    let signing_time = value_of(SIGNING_TIME)
        .and_then(|v| cms::cert::x509::time::Time::from_der(&v.to_der().ok()?).ok())
        .and_then(|t| {
            OffsetDateTime::from_unix_timestamp(i64::try_from(t.to_unix_duration().as_secs()).ok()?)
                .ok()
        });

    // The signature over the signed attributes' DER (SET OF).
    let signed = attrs.to_der().map_err(malformed)?;
    let alg = verification(
        &signer.signature_algorithm.oid,
        &signer.digest_alg.oid,
        &signer_cert,
    )?;
    UnparsedPublicKey::new(alg, public_key_bits(&signer_cert)?)
        .verify(&signed, signer.signature.as_bytes())
        .map_err(|_| VerifyError::new(Rule::Signature, "the CMS signature does not verify"))?;

    let identity = anchors.check(&signer_cert, &carried, Purpose::Signing, now)?;
    Ok(SignedMessage {
        signer: identity,
        content,
        signing_time,
    })
}

fn is_signer(der: &[u8], sid: &SignerIdentifier) -> bool {
    let Ok(cert) = Certificate::from_der(der) else {
        return false;
    };
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => {
            cert.tbs_certificate.issuer == ias.issuer
                && cert.tbs_certificate.serial_number == ias.serial_number
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => cert
            .tbs_certificate
            .extensions
            .iter()
            .flatten()
            .filter(|e| e.extn_id == ObjectIdentifier::new_unwrap("2.5.29.14"))
            .filter_map(|e| SubjectKeyIdentifier::from_der(e.extn_value.as_bytes()).ok())
            .any(|k| &k == ski),
    }
}

/// The verification algorithm for a signer's signature algorithm, digest and key.
fn verification(
    sig_alg: &ObjectIdentifier,
    digest: &ObjectIdentifier,
    cert: &[u8],
) -> Result<&'static dyn VerificationAlgorithm, VerifyError> {
    let unsupported = || {
        VerifyError::new(
            Rule::Algorithm,
            format!("signature algorithm {sig_alg} with digest {digest}"),
        )
    };
    let rsa = |d: &ObjectIdentifier| -> Option<&'static dyn VerificationAlgorithm> {
        match *d {
            o if o == SHA256 => Some(&signature::RSA_PKCS1_2048_8192_SHA256),
            o if o == SHA384 => Some(&signature::RSA_PKCS1_2048_8192_SHA384),
            o if o == SHA512 => Some(&signature::RSA_PKCS1_2048_8192_SHA512),
            _ => None,
        }
    };
    let found: Option<&'static dyn VerificationAlgorithm> = match *sig_alg {
        o if o == RSA => rsa(digest),
        o if o == RSA_SHA256 => rsa(&SHA256),
        o if o == RSA_SHA384 => rsa(&SHA384),
        o if o == RSA_SHA512 => rsa(&SHA512),
        o if o == ECDSA_SHA256 || o == ECDSA_SHA384 => {
            let (_, c) = x509_parser::parse_x509_certificate(cert)
                .map_err(|e| VerifyError::new(Rule::CertificateMalformed, e.to_string()))?;
            let curve = c
                .public_key()
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string());
            let curve = curve.as_deref();
            let sha256 = o == ECDSA_SHA256;
            match (curve, sha256) {
                (Some(c), true) if c == P256.to_string() => {
                    Some(&signature::ECDSA_P256_SHA256_ASN1)
                }
                (Some(c), false) if c == P256.to_string() => {
                    Some(&signature::ECDSA_P256_SHA384_ASN1)
                }
                (Some(c), true) if c == P384.to_string() => {
                    Some(&signature::ECDSA_P384_SHA256_ASN1)
                }
                (Some(c), false) if c == P384.to_string() => {
                    Some(&signature::ECDSA_P384_SHA384_ASN1)
                }
                _ => None,
            }
        }
        _ => None,
    };
    found.ok_or_else(unsupported)
}
